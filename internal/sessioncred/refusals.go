package sessioncred

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultRefusalInterval is the shortest time between two reports of
// refused requests: the first refusal is reported at once, later ones are
// counted and reported together, so a flood costs one line and one record
// per interval.
const DefaultRefusalInterval = 10 * time.Second

// maxRefusalKinds bounds the distinct (reason, uid) pairs kept between two
// reports; more are counted under "other".
const maxRefusalKinds = 32

// refusal is the kind of a refused request: a fixed phrase and the uid of
// the process that sent it (-1 when the system cannot say).
type refusal struct {
	Reason string `json:"reason"`
	UID    int64  `json:"uid"`
}

type refusalCount struct {
	refusal
	Count   int    `json:"count"`
	Example string `json:"example,omitempty"` // the refused Host or Origin, never a token
}

// refusals aggregates refused requests and reports them: a log line and,
// if post is set, a record posted to the node.
type refusals struct {
	log   *slog.Logger
	post  func(context.Context, []byte) error
	every time.Duration

	mu          sync.Mutex
	kinds       []*refusalCount
	first, last time.Time

	wake chan struct{}
}

func newRefusals(log *slog.Logger, post func(context.Context, []byte) error, every time.Duration) *refusals {
	if every <= 0 {
		every = DefaultRefusalInterval
	}
	return &refusals{log: log, post: post, every: every, wake: make(chan struct{}, 1)}
}

// add counts one refusal. example is shown as given, cut to 128 bytes.
func (r *refusals) add(k refusal, example string) {
	if r == nil {
		return
	}
	if len(example) > 128 {
		example = example[:128] + "…"
	}
	example = strings.ToValidUTF8(example, string(utf8.RuneError))
	now := time.Now().UTC()
	r.mu.Lock()
	var c *refusalCount
	for _, kc := range r.kinds {
		if kc.refusal == k {
			c = kc
			break
		}
	}
	if c == nil && len(r.kinds) >= maxRefusalKinds {
		k, example = refusal{Reason: "other", UID: -1}, ""
		for _, kc := range r.kinds {
			if kc.refusal == k {
				c = kc
			}
		}
	}
	if c == nil {
		c = &refusalCount{refusal: k, Example: example}
		r.kinds = append(r.kinds, c)
	}
	c.Count++
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run reports until ctx is done, then reports what is left and returns.
func (r *refusals) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-r.wake:
		}
		r.flush()
		t := time.NewTimer(r.every)
		select {
		case <-ctx.Done():
			t.Stop()
			r.flush()
			return
		case <-t.C:
		}
	}
}

// flush reports what was counted since the last report.
func (r *refusals) flush() {
	r.mu.Lock()
	kinds, first, last := r.kinds, r.first, r.last
	r.kinds, r.first, r.last = nil, time.Time{}, time.Time{}
	r.mu.Unlock()
	if len(kinds) == 0 {
		return
	}
	total := 0
	var summary []string
	for _, k := range kinds {
		total += k.Count
		s := fmt.Sprintf("%s ×%d", k.Reason, k.Count)
		if k.UID >= 0 {
			s = fmt.Sprintf("%s (uid %d) ×%d", k.Reason, k.UID, k.Count)
		}
		if k.Example != "" {
			s += fmt.Sprintf(" e.g. %q", k.Example)
		}
		summary = append(summary, s)
	}
	if r.log != nil {
		r.log.Warn("ward mcp serve refused requests", "count", total, "refused", strings.Join(summary, "; "))
	}
	if r.post == nil {
		return
	}
	content, _ := json.Marshal(map[string]any{
		"event":   "ward mcp serve refused requests",
		"count":   total,
		"refused": kinds,
		"first":   first,
		"last":    last,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.post(ctx, content); err != nil && r.log != nil {
		r.log.Error("cannot record the refusals with the node", "err", err)
	}
}
