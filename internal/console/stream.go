package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/audit"
)

// The session page's live stream of calls: GET
// /console/api/stream/sessions/{id} answers with Server-Sent Events, one
// "audit" event per event of the session appended to the audit log (its
// id the event's index, its data the event as /v1/audit/events gives it),
// as the log's appends wake it. A stream starts after the index in
// Last-Event-ID (sent by a reconnecting EventSource) or in ?after=, else at
// the log's end; it ends after MaxStreamTime, when the console session
// ends or its account goes, and the browser's EventSource reconnects
// through the same login checks. Each user may hold MaxStreamsPerUser
// streams at once (429 beyond: the page polls instead).

// Defaults of the live stream.
const (
	// MaxStreamsPerUser bounds the live streams one console user holds
	// at once (a page in each of a few tabs).
	MaxStreamsPerUser = 4
	// maxStreamsTotal bounds the live streams of all users.
	maxStreamsTotal = 256
	// MaxStreamTime is how long one stream lasts before the browser
	// reconnects (and the login is checked afresh).
	MaxStreamTime = 10 * time.Minute
	// streamHeartbeat is how often a quiet stream sends a comment, which
	// keeps proxies from closing it and notices an ended login.
	streamHeartbeat = 15 * time.Second
	// streamBacklog bounds how far back from the log's end a stream may
	// start: older events are on the page already, read by search.
	streamBacklog = 10000
	// streamChunk bounds the events read from the log at once.
	streamChunk = 256
)

// Tail reads the audit log as it grows (audit.Log does).
type Tail interface {
	Size() uint64
	Read(from, to uint64) ([]audit.Event, error)
}

// Signal wakes waiters each time Notify is called: the node notifies it
// after each audit append, and live streams wait on it. The zero Signal is
// ready; Notify costs nothing while nobody waits.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Notify wakes everyone waiting on a channel Wait returned.
func (s *Signal) Notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Wait returns a channel closed at the next Notify.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// takeStream counts a stream of user against the bounds; false if over.
func (c *Console) takeStream(user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[user] >= MaxStreamsPerUser || c.streamsAll >= maxStreamsTotal {
		return false
	}
	c.streams[user]++
	c.streamsAll++
	return true
}

func (c *Console) dropStream(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streamsAll--
	if c.streams[user]--; c.streams[user] <= 0 {
		delete(c.streams, user)
	}
}

// live reports whether the session named key is still valid, without
// counting the check as use (a quiet stream does not keep a login alive).
func (c *Console) live(key [32]byte, s *session) bool {
	now := c.cfg.Now()
	c.mu.Lock()
	ok := c.sessions[key] == s && now.Sub(s.created) <= c.cfg.SessionTTL && now.Sub(s.used) <= c.cfg.IdleTimeout
	c.mu.Unlock()
	if !ok {
		return false
	}
	_, exists, err := c.account(s)
	return err == nil && exists
}

func (c *Console) streamSession(w http.ResponseWriter, r *http.Request, u User, s *session) {
	if c.cfg.Tail == nil || c.cfg.Appended == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "live streams are not available on this node"})
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "session: want a session id"})
		return
	}
	next := c.cfg.Tail.Size()
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("after")
	}
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "after: want an event number"})
			return
		}
		next = min(next, n+1)
	}
	if size := c.cfg.Tail.Size(); size > streamBacklog {
		next = max(next, size-streamBacklog)
	}
	if !c.takeStream(u.Name) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": fmt.Sprintf("at most %d live streams per user", MaxStreamsPerUser)})
		return
	}
	defer c.dropStream(u.Name)
	_, key := c.session(r)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The browser waits this long before reconnecting a stream that ended.
	fmt.Fprint(w, "retry: 2000\n\n")
	if rc.Flush() != nil {
		return
	}
	end := time.NewTimer(MaxStreamTime)
	defer end.Stop()
	beat := time.NewTicker(streamHeartbeat)
	defer beat.Stop()
	for {
		wake := c.cfg.Appended() // before reading: an append after the read wakes us
		for size := c.cfg.Tail.Size(); next < size; {
			to := min(next+streamChunk, size)
			evs, err := c.cfg.Tail.Read(next, to)
			if err != nil {
				c.cfg.Logger.Error("console stream: read the audit log", "err", err)
				return
			}
			for _, e := range evs {
				if e.Session != id {
					continue
				}
				b, err := json.Marshal(e)
				if err != nil {
					return
				}
				// json.Marshal writes no newline: one data line.
				if _, err := fmt.Fprintf(w, "id: %d\nevent: audit\ndata: %s\n\n", e.Index, b); err != nil {
					return
				}
			}
			next = to
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-s.gone: // logged out, or the session expired
			return
		case <-beat.C:
			if !c.live(key, s) {
				return
			}
			if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil {
				return
			}
		case <-wake:
		}
	}
}
