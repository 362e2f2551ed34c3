package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/authority"
)

// TestFeedFreshness: a node is fresh while its last up-to-date poll began
// at most FreshnessBound ago, and refuses with ErrUnavailable after.
func TestFeedFreshness(t *testing.T) {
	base := time.Now()
	now := base
	f := &feed{n: &Node{nodeID: "node-x"}, base: base, now: func() time.Time { return now }}
	f.fresh.Store(int64(100 * time.Millisecond))
	for _, tc := range []struct {
		at    time.Duration
		stale bool
	}{
		{100 * time.Millisecond, false},
		{100*time.Millisecond + FreshnessBound, false},
		{100*time.Millisecond + FreshnessBound + time.Nanosecond, true},
		{time.Hour, true},
	} {
		now = base.Add(tc.at)
		err := f.check()
		if (err != nil) != tc.stale {
			t.Fatalf("at %s: %v", tc.at, err)
		}
		if err != nil && (!errors.Is(err, authority.ErrUnavailable) || !strings.Contains(err.Error(), "node node-x cannot confirm")) {
			t.Fatalf("at %s: %v", tc.at, err)
		}
	}
}
