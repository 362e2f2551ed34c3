package replay

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkRun replays a 10,000-call trace of 100 sessions mixing allowed,
// denied and escalated calls.
func BenchmarkRun(b *testing.B) {
	var buf bytes.Buffer
	calls := []string{
		`{"type":"call","method":"tools/call","server":"fs","name":"fs.read_text_file","arguments":{"path":"/srv/share/q3.csv"},"result":{"content":[{"type":"text","text":"total,42"}]},"time":"2026-11-20T10:00:00Z"}`,
		`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":{"sql":"select sum(total) from orders","limit":100}}`,
		`{"type":"call","method":"tools/call","server":"db","name":"db.delete_rows","arguments":{"table":"tmp"},"verb":"delete","impact":{"rows":500}}`,
		`{"type":"call","method":"resources/read","server":"docs","name":"docs://handbook/expenses"}`,
		`{"type":"call","method":"tools/call","server":"db","name":"db.drop_table","arguments":{"table":"orders"}}`,
	}
	for s := range 100 {
		fmt.Fprintf(&buf, `{"type":"session","session":"s%d","agent":"reporter","sponsor":"alice","groups":["analytics"]}`+"\n", s)
		for i := range 100 {
			buf.WriteString(calls[i%len(calls)])
			buf.WriteByte('\n')
		}
	}
	set := testSet(b)
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Run(set, bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Summary.Calls != 10_000 {
			b.Fatalf("%d calls", rep.Summary.Calls)
		}
	}
}
