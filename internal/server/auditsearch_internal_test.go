package server

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEntryEvent: an entry read from the store (another node's, not
// trusted) is accepted only as the log's exact encoding of an event at
// its index: what is accepted re-encodes to the same bytes.
func FuzzEntryEvent(f *testing.F) {
	f.Add([]byte(`{"v":2,"index":7,"time":"2026-12-07T18:00:00Z","type":"decision","actor":"a","data":{"name":"demo.echo"}}`), uint64(7))
	f.Add([]byte(`{"v":2,"index":7,"time":"2026-12-07T18:00:00Z","type":"decision","type":"x"}`), uint64(7))
	f.Add([]byte(`{"v":2, "index":7,"time":"2026-12-07T18:00:00Z","type":"decision"}`), uint64(7))
	f.Add([]byte(`{"v":2,"index":8,"time":"2026-12-07T18:00:00Z","type":"decision"}`), uint64(7))
	f.Fuzz(func(t *testing.T, entry []byte, i uint64) {
		e, err := entryEvent(entry, i)
		if err != nil {
			return
		}
		b, err := json.Marshal(e)
		if err != nil || !bytes.Equal(b, entry) || e.Index != i {
			t.Fatalf("accepted %q at %d: re-encodes to %q", entry, i, b)
		}
	})
}
