// Package webhook delivers ward's notifications (alerts, playbook actions,
// approval requests and their outcomes) to HTTP endpoints: signed, retried
// with backoff, and every delivery's outcome recorded.
//
// # The request
//
// A delivery is a POST of a JSON object:
//
//	POST /hook HTTP/1.1
//	Content-Type: application/json
//	Ward-Event: approval.pending
//	Ward-Delivery: 6f1c…            (the same on every attempt: deduplicate on it)
//	Ward-Signature: t=1765083600,v1=5d41…
//
//	{"id":"6f1c…","event":"approval.pending","time":"2026-12-07T05:00:00Z","data":{…}}
//
// v1 is the lowercase hex HMAC-SHA256, keyed with the endpoint's secret, of
// the timestamp t (Unix seconds, as sent), a period, and the body's bytes
// exactly as received: HMAC(secret, "1765083600." + body). A receiver
// recomputes it, compares in constant time, and refuses a t more than five
// minutes from its clock, and one it accepted before (a replay):
// wardhook.Receiver does both. Each attempt is signed anew, at a later t
// than the attempt before.
//
// # The answer
//
// A 2xx answer delivers. Its body, if any, must be one JSON object (read
// strictly, at most [MaxAnswer] bytes) — ward reads nothing from it, but an
// answer it cannot parse is not taken as delivered: something other than
// the receiver may have answered. 408, 429 and 5xx answers and transport
// errors are retried after 1s, 2s, 4s… (with jitter, at most
// Config.MaxBackoff), up to Config.Attempts attempts; any other answer
// fails the delivery at once. Redirects are not followed.
//
// # The record
//
// Every delivery ends in one call of Config.Record with its outcome
// (delivered or failed, attempts, last status, why), naming the endpoint
// by name and never by URL or secret, which may carry credentials.
package webhook

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/strictjson"
	"github.com/ward-dev/ward/wardhook"
)

// Defaults for [Config].
const (
	// DefaultAttempts is how many times a delivery is tried.
	DefaultAttempts = 5
	// DefaultBackoff is the wait before the first retry; it doubles.
	DefaultBackoff = time.Second
	// DefaultMaxBackoff bounds the wait between attempts.
	DefaultMaxBackoff = time.Minute
	// DefaultTimeout bounds one attempt.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxPending bounds the deliveries in progress; beyond it a
	// notification is recorded as failed without being sent.
	DefaultMaxPending = 256
	// MaxAnswer bounds the answer body read.
	MaxAnswer = 64 << 10
	// MinSecret is the shortest secret accepted.
	MinSecret = 16
)

// Endpoint is one receiver.
type Endpoint struct {
	// Name names the endpoint in records and logs.
	Name string
	// URL is where deliveries are POSTed (http or https).
	URL string
	// Secret keys the signature; at least MinSecret bytes.
	Secret []byte
	// Events are the notifications sent here, as path.Match patterns
	// over event names ("alert", "playbook.*", "approval.*"); none: all.
	Events []string
}

// Delivery is the outcome of one notification to one endpoint.
type Delivery struct {
	ID        string `json:"id"`
	Endpoint  string `json:"endpoint"`
	Event     string `json:"event"`
	Delivered bool   `json:"delivered"`
	Attempts  int    `json:"attempts"`
	Status    int    `json:"status,omitempty"` // the last HTTP status, if any
	Error     string `json:"error,omitempty"`  // why it failed
}

// Config configures a [Sender].
type Config struct {
	Endpoints []Endpoint
	// Record is told the outcome of every delivery; it must not block for
	// long. Nil: outcomes are not recorded (tests only).
	Record func(Delivery)
	// Client sends the requests; nil: one with no proxy from the
	// environment and no redirects.
	Client     *http.Client
	Attempts   int           // default DefaultAttempts
	Backoff    time.Duration // default DefaultBackoff
	MaxBackoff time.Duration // default DefaultMaxBackoff
	Timeout    time.Duration // per attempt; default DefaultTimeout
	MaxPending int           // default DefaultMaxPending
	Now        func() time.Time
}

// Sender delivers notifications. Its methods are safe for concurrent use.
type Sender struct {
	cfg     Config
	pending chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex // orders Send's wg.Add before Close's Wait
	closed bool
	wg     sync.WaitGroup
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	seen := map[string]bool{}
	for _, e := range cfg.Endpoints {
		switch {
		case e.Name == "" || seen[e.Name]:
			return nil, fmt.Errorf("webhook %q: every webhook needs a name of its own", e.Name)
		case len(e.Secret) < MinSecret:
			return nil, fmt.Errorf("webhook %q: the secret must be at least %d bytes (set it from the environment: secret: ${VAR})", e.Name, MinSecret)
		}
		if err := checkURL(e.URL); err != nil {
			return nil, fmt.Errorf("webhook %q: %w", e.Name, err)
		}
		for _, p := range e.Events {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("webhook %q: event pattern %q: %w", e.Name, p, err)
			}
		}
		seen[e.Name] = true
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, pending: make(chan struct{}, cfg.MaxPending), ctx: ctx, cancel: cancel}, nil
}

// checkURL accepts an absolute http or https URL. The URL is never shown
// in an error: it may carry a token.
func checkURL(u string) error {
	req, err := http.NewRequest(http.MethodPost, u, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return errors.New("url must be an absolute http:// or https:// URL")
	}
	return nil
}

// Send queues event, with data as its payload, to every endpoint whose
// patterns match it, and returns without waiting. A notification that
// cannot be queued (too many pending) is recorded as failed.
func (s *Sender) Send(event string, data any) {
	if s == nil {
		return
	}
	payload, err := json.Marshal(data)
	if err != nil {
		payload, _ = json.Marshal(map[string]string{"error": "payload could not be encoded"})
	}
	for _, e := range s.cfg.Endpoints {
		if !matches(e.Events, event) {
			continue
		}
		d := Delivery{ID: newID(), Endpoint: e.Name, Event: event}
		body, _ := json.Marshal(struct {
			ID    string          `json:"id"`
			Event string          `json:"event"`
			Time  time.Time       `json:"time"`
			Data  json.RawMessage `json:"data"`
		}{d.ID, event, s.cfg.Now().UTC(), payload})
		select {
		case s.pending <- struct{}{}:
		default:
			d.Error = fmt.Sprintf("not sent: %d deliveries already pending", cap(s.pending))
			s.record(d)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			<-s.pending
			d.Error = "not sent: ward is stopping"
			s.record(d)
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.pending }()
			s.record(s.deliver(e, d, body))
		}()
	}
}

// Close stops retrying and waits, until ctx ends, for deliveries in
// progress to be recorded. A delivery cut short is recorded as failed.
func (s *Sender) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sender) record(d Delivery) {
	if s.cfg.Record != nil {
		s.cfg.Record(d)
	}
}

// deliver tries one delivery until it succeeds, fails for good, runs out
// of attempts or the sender closes.
func (s *Sender) deliver(e Endpoint, d Delivery, body []byte) Delivery {
	wait := s.cfg.Backoff
	var lastTS int64
	for d.Attempts < s.cfg.Attempts {
		if d.Attempts > 0 {
			// Full jitter on the upper half: retries of many deliveries
			// do not arrive together.
			sleep := wait/2 + rand.N(wait/2+1)
			t := time.NewTimer(sleep)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				d.Error += " (then ward stopped before the next attempt)"
				return d
			}
			wait = min(2*wait, s.cfg.MaxBackoff)
		}
		d.Attempts++
		ts := s.cfg.Now().Unix()
		if ts <= lastTS {
			// Every attempt is signed at a later t than the one before, so
			// that a receiver refusing replays (wardhook.Receiver) never
			// takes a retry for one.
			ts = lastTS + 1
		}
		lastTS = ts
		status, retry, err := s.attempt(e, d, body, ts)
		d.Status = status
		if err == nil {
			d.Delivered, d.Error = true, ""
			return d
		}
		d.Error = err.Error()
		if !retry {
			return d
		}
	}
	return d
}

// attempt makes one signed request and reads its answer strictly.
func (s *Sender) attempt(e Endpoint, d Delivery, body []byte, unix int64) (status int, retry bool, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return 0, false, errors.New("the request could not be made")
	}
	ts := strconv.FormatInt(unix, 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ward-webhook")
	req.Header.Set("Ward-Event", d.Event)
	req.Header.Set("Ward-Delivery", d.ID)
	req.Header.Set("Ward-Signature", "t="+ts+",v1="+Sign(e.Secret, ts, body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL; say what happened without it.
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, true, errors.New("no answer in time")
		}
		return 0, true, errors.New("the endpoint could not be reached")
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if rerr != nil {
			return code, true, errors.New("the answer could not be read")
		}
		if len(answer) > MaxAnswer {
			return code, false, fmt.Errorf("answer over %d bytes", MaxAnswer)
		}
		if len(bytes.TrimSpace(answer)) > 0 {
			var obj map[string]any
			if err := strictjson.UnmarshalOpen(answer, &obj); err != nil || obj == nil {
				return code, false, errors.New("the 2xx answer is not one JSON object: not taken as delivered")
			}
		}
		return code, false, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return code, true, fmt.Errorf("answered %d", code)
	default:
		return code, false, fmt.Errorf("answered %d", code)
	}
}

// Sign is the v1 signature of body sent at ts (see [wardhook.Sign]).
func Sign(secret []byte, ts string, body []byte) string { return wardhook.Sign(secret, ts, body) }

// ErrSignature is returned by [Verify] for a request whose signature does
// not hold (a receiver answers 401).
var ErrSignature = wardhook.ErrSignature

// Verify checks a delivery's Ward-Signature header (see [wardhook.Verify];
// a receiver uses [wardhook.Receiver], which also refuses replays).
func Verify(secret []byte, header string, body []byte, now time.Time, skew time.Duration) error {
	return wardhook.Verify(secret, header, body, now, skew)
}

func matches(patterns []string, event string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, event); ok {
			return true
		}
	}
	return false
}

func newID() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}
