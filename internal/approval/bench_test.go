package approval

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
)

// BenchmarkSubmitVote: one escalated call submitted and approved by one
// voter, each in its own session.
func BenchmarkSubmitVote(b *testing.B) {
	ctx := context.Background()
	q, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	in := request("", `{"to":"x@example.org","rows":10,"opts":{"b":[1,2],"a":null}}`, 1)
	i := 0
	for b.Loop() {
		i++
		in.Session = strconv.Itoa(i)
		r, err := q.Submit(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if r, err = q.Vote(ctx, r.ID, alice, true, ""); err != nil || r.State != StateApproved {
			b.Fatal(r.State, err)
		}
	}
}

func BenchmarkCallHash(b *testing.B) {
	args := json.RawMessage(`{"to":"x@example.org","rows":10,"opts":{"b":[1,2,{"y":"\u00e9","x":3.5}],"a":null}}`)
	b.SetBytes(int64(len(args)))
	for b.Loop() {
		if _, err := CallHash("tools/call", "db.export", args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedeem(b *testing.B) {
	ctx := context.Background()
	q, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	in := request("s1", `{"to":"x@example.org","rows":10}`, 1)
	r, err := q.Submit(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := q.Vote(ctx, r.ID, alice, true, ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok, err := q.Redeem(ctx, "s1", in.Method, in.Name, in.Arguments); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
