package keyring

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func newRing(t testing.TB, now time.Time) *Ring {
	t.Helper()
	var keys []Key
	for _, kind := range Kinds {
		k, err := NewKey(kind, td, now)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	r, err := New(1, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLifecycle: a rotated key is retiring until its not_after, verifies
// until then, and is retired (its material gone) by the sweep after it.
func TestLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(t, t0)
	for _, kind := range Kinds {
		prev := r.Active(kind)
		next, err := NewKey(kind, td, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r2, err := r.Rotate(next, t0.Add(time.Hour), 10*time.Minute)
		if err != nil {
			t.Fatalf("rotate %s: %v", kind, err)
		}
		if r.Active(kind).KID != prev.KID {
			t.Fatal("Rotate changed its receiver")
		}
		r = r2
		if r.Active(kind).KID != next.KID {
			t.Fatalf("%s: the new key is not active", kind)
		}
		v := r.Verifying(kind, t0.Add(time.Hour+9*time.Minute))
		if len(v) != 2 || v[0].KID != next.KID || v[1].KID != prev.KID {
			t.Fatalf("%s: verifying %v", kind, v)
		}
		old := v[1]
		if (old.Private != "") != (kind == CA) {
			t.Fatalf("%s: the retiring key keeps its private key: %v", kind, old.Private != "")
		}
		if len(r.Verifying(kind, t0.Add(time.Hour+10*time.Minute))) != 1 {
			t.Fatalf("%s: a key verifies at its not_after", kind)
		}
	}
	if r.Sequence != 5 {
		t.Fatalf("sequence %d after four rotations", r.Sequence)
	}
	if _, changed := r.Sweep(t0.Add(time.Hour + 9*time.Minute)); changed {
		t.Fatal("a sweep before not_after changed the ring")
	}
	swept, changed := r.Sweep(t0.Add(time.Hour + 10*time.Minute))
	if !changed || swept.Sequence != 6 {
		t.Fatalf("sweep: changed %v, sequence %d", changed, swept.Sequence)
	}
	retired := 0
	for _, k := range swept.Keys {
		if k.State == Retired {
			retired++
			if k.Private != "" || k.Public != "" || k.Cert != "" {
				t.Fatalf("retired %s keeps material", k.Kind)
			}
			if !swept.Known(k.Kind, k.KID) {
				t.Fatal("a retired key is not known")
			}
		}
	}
	if retired != 4 {
		t.Fatalf("%d retired", retired)
	}
	b, err := swept.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("a swept ring does not parse back: %v", err)
	}
	if again, err := back.Marshal(); err != nil || string(again) != string(b) {
		t.Fatal("the ring changed through its format")
	}
	views := swept.Views(t0.Add(2 * time.Hour))
	if len(views) != 8 || views[0].Kind != CA || views[0].State != Active || views[1].State != Retired || views[1].NotAfter == nil {
		t.Fatalf("views %+v", views)
	}
	vb, _ := json.Marshal(views)
	if bytes.Contains(vb, []byte("PRIVATE")) || bytes.Contains(vb, []byte("PUBLIC")) || bytes.Contains(vb, []byte("CERTIFICATE")) {
		t.Fatal("a view shows key material")
	}
}

// TestRetiredHistoryBounded: only the newest MaxRetired retired keys of a
// kind are remembered.
func TestRetiredHistoryBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(t, t0)
	now := t0
	for range MaxRetired + 3 {
		now = now.Add(time.Hour)
		next, err := NewKey(Grant, td, now)
		if err != nil {
			t.Fatal(err)
		}
		if r, err = r.Rotate(next, now, time.Minute); err != nil {
			t.Fatal(err)
		}
		r, _ = r.Sweep(now.Add(time.Minute))
	}
	n := 0
	for _, k := range r.Keys {
		if k.Kind == Grant && k.State == Retired {
			n++
		}
	}
	if n != MaxRetired {
		t.Fatalf("%d retired grant keys remembered", n)
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestParseRefuses: anything but a well-formed ring is refused whole.
func TestParseRefuses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(t, t0)
	next, _ := NewKey(JWT, td, t0)
	r, err := r.Rotate(next, t0.Add(time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := r.Marshal()
	if _, err := Parse(good); err != nil {
		t.Fatalf("good ring: %v", err)
	}
	other := newRing(t, t0)
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	key := func(m map[string]any, i int) map[string]any { return m["keys"].([]any)[i].(map[string]any) }
	retiringJWT := -1
	for i, k := range r.Keys {
		if k.Kind == JWT && k.State == Retiring {
			retiringJWT = i
		}
	}
	cases := map[string][]byte{
		"empty":           nil,
		"not json":        []byte("ring"),
		"duplicate":       bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 1, "version": 1,`), 1),
		"unknown member":  bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 1, "extra": 1,`), 1),
		"case variant":    bytes.Replace(good, []byte(`"version"`), []byte(`"Version"`), 1),
		"version 2":       mutate(func(m map[string]any) { m["version"] = 2 }),
		"too large":       append(good, bytes.Repeat([]byte(" "), MaxSize)...),
		"no keys":         mutate(func(m map[string]any) { m["keys"] = []any{} }),
		"unknown kind":    mutate(func(m map[string]any) { key(m, 0)["kind"] = "log" }),
		"unknown state":   mutate(func(m map[string]any) { key(m, 0)["state"] = "paused" }),
		"wrong kid":       mutate(func(m map[string]any) { key(m, 0)["kid"] = key(m, 1)["kid"] }),
		"two active":      mutate(func(m map[string]any) { key(m, retiringJWT)["state"] = "active" }),
		"swapped private": mutate(func(m map[string]any) { key(m, 2)["private"] = key(m, 3)["private"] }),
		"foreign cert":    mutate(func(m map[string]any) { key(m, 0)["cert"] = other.Active(CA).Cert }),
		"active no cert":  mutate(func(m map[string]any) { delete(key(m, 0), "cert") }),
		"retiring keeps private": mutate(func(m map[string]any) {
			key(m, retiringJWT)["private"] = other.Active(JWT).Private
		}),
		"retired keeps public": mutate(func(m map[string]any) { key(m, retiringJWT)["state"] = "retired" }),
		"no not_after":         mutate(func(m map[string]any) { delete(key(m, retiringJWT), "not_after") }),
		"not_after first": mutate(func(m map[string]any) {
			key(m, retiringJWT)["not_after"] = t0.Add(-time.Hour).Format(time.RFC3339)
		}),
		"pem with headers": mutate(func(m map[string]any) {
			key(m, 2)["private"] = strings.Replace(key(m, 2)["private"].(string), "KEY-----\n", "KEY-----\nProc-Type: 4,ENCRYPTED\n\n", 1)
		}),
		"two pem blocks": mutate(func(m map[string]any) {
			key(m, 2)["private"] = key(m, 2)["private"].(string) + key(m, 2)["private"].(string)
		}),
	}
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRotateRefuses: a rotation needs a well-formed new active key and a
// positive lifetime, and never leaves two keys with one ID.
func TestRotateRefuses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(t, t0)
	if _, err := r.Rotate(r.Active(Grant), t0, time.Hour); err == nil {
		t.Error("rotating to the active key itself was accepted")
	}
	next, _ := NewKey(Grant, td, t0)
	if _, err := r.Rotate(next, t0, 0); err == nil {
		t.Error("zero lifetime accepted")
	}
	bad := next
	bad.KID = r.Active(Receipt).KID
	if _, err := r.Rotate(bad, t0, time.Hour); err == nil {
		t.Error("a key whose kid is not its thumbprint accepted")
	}
	for i := range MaxRetiring + 1 {
		next, _ := NewKey(Receipt, td, t0)
		r2, err := r.Rotate(next, t0, time.Hour)
		if i < MaxRetiring {
			if err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
			r = r2
		} else if !errors.Is(err, ErrTooMany) {
			t.Fatalf("rotation beyond %d retiring keys: %v", MaxRetiring, err)
		}
	}
	if _, err := ParseKind("Grant"); err == nil {
		t.Error("ParseKind folds case")
	}
}

// FuzzParse: whatever Parse accepts hangs together and reads back the
// same through Marshal.
func FuzzParse(f *testing.F) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(f, t0)
	next, _ := NewKey(CA, td, t0)
	r, _ = r.Rotate(next, t0.Add(time.Minute), time.Hour)
	good, _ := r.Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1,"sequence":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if err := r.Check(); err != nil {
			t.Fatalf("parsed ring fails its check: %v", err)
		}
		for _, kind := range Kinds {
			if _, err := r.Active(kind).PrivateKey(); err != nil {
				t.Fatalf("active %s key without its private key: %v", kind, err)
			}
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if again, err := back.Marshal(); err != nil || string(again) != string(out) {
			t.Fatalf("round trip changed the ring: %v", err)
		}
	})
}

// TestRetireNow: only a retiring key is retired ahead of its time; the
// ring that results holds its name, not its material.
func TestRetireNow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRing(t, t0)
	prev := r.Active(Grant)
	next, _ := NewKey(Grant, td, t0)
	r, _ = r.Rotate(next, t0.Add(time.Minute), time.Hour)
	for _, kid := range []string{next.KID, "nope", r.Active(CA).KID} {
		if _, _, err := r.RetireNow(kid, t0.Add(2*time.Minute)); !errors.Is(err, ErrNotRetiring) {
			t.Errorf("retire %s: %v", kid, err)
		}
	}
	r2, was, err := r.RetireNow(prev.KID, t0.Add(2*time.Minute))
	if err != nil || was.State != Retiring {
		t.Fatal(err)
	}
	if len(r2.Verifying(Grant, t0.Add(2*time.Minute))) != 1 || r2.Sequence != r.Sequence+1 {
		t.Fatal("the retired key still verifies")
	}
	if _, _, err := r2.RetireNow(prev.KID, t0.Add(3*time.Minute)); !errors.Is(err, ErrNotRetiring) {
		t.Fatalf("retired twice: %v", err)
	}
	b, _ := r2.Marshal()
	if _, err := Parse(b); err != nil || bytes.Contains(b, []byte(prev.Private)) {
		t.Fatalf("retired ring: %v", err)
	}
}
