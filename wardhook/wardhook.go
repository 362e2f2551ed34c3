// Package wardhook is what a service that receives ward's webhooks puts in
// front of its handler: it checks each delivery's signature and refuses
// one it has already accepted.
//
//	r := wardhook.NewReceiver(secret, wardhook.DefaultSkew)
//	http.Handle("/ward", r.Wrap(handler))
//
// A delivery is a POST whose Ward-Signature header is "t=UNIX,v1=HEX", HEX
// being the lowercase hex HMAC-SHA256, keyed with the endpoint's secret, of
// t, a period and the body exactly as sent. [Verify] recomputes it,
// compares in constant time and refuses a t further than the skew from
// now. That alone lets whoever captured a delivery send it again within
// the skew; a [Receiver] also remembers the signatures it accepted until
// they leave the window and refuses them a second time ([ErrReplay]).
// ward signs every attempt of a delivery anew, each with a later t, so
// its retries are never taken for replays; they carry the same
// Ward-Delivery id and body "id", on which a receiver deduplicates the
// work a retry would repeat.
package wardhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultSkew is how far a delivery's t may be from the receiver's clock.
const DefaultSkew = 5 * time.Minute

// MaxBody bounds the body [Receiver.Wrap] reads.
const MaxBody = 1 << 20

// MaxRemembered bounds the signatures a Receiver remembers at once; a
// delivery beyond it is refused until older ones leave the window.
const MaxRemembered = 100_000

var (
	// ErrSignature: the request does not carry a valid signature for its
	// body in the accepted window (answer 401).
	ErrSignature = errors.New("wardhook: bad signature")
	// ErrReplay: this very request was accepted before (answer 409).
	ErrReplay = errors.New("wardhook: delivery already received (a replay)")
)

// Sign is the v1 signature of body sent at ts (Unix seconds, as sent):
// lowercase hex HMAC-SHA256(secret, ts + "." + body).
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's Ward-Signature header against body and the
// shared secret, in constant time, refusing a timestamp further than skew
// from now. It does not remember what it accepted: see [Receiver].
func Verify(secret []byte, header string, body []byte, now time.Time, skew time.Duration) error {
	_, _, err := verify(secret, header, body, now, skew)
	return err
}

// verify is Verify returning the signature's time and value.
func verify(secret []byte, header string, body []byte, now time.Time, skew time.Duration) (int64, string, error) {
	var ts, sig string
	for _, part := range bytes.Split([]byte(header), []byte(",")) {
		k, v, ok := bytes.Cut(part, []byte("="))
		if !ok {
			return 0, "", ErrSignature
		}
		switch string(k) {
		case "t":
			if ts != "" {
				return 0, "", ErrSignature
			}
			ts = string(v)
		case "v1":
			if sig != "" {
				return 0, "", ErrSignature
			}
			sig = string(v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" || strconv.FormatInt(sec, 10) != ts {
		return 0, "", ErrSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > skew || d < -skew {
		return 0, "", fmt.Errorf("%w: timestamp outside the accepted window", ErrSignature)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return 0, "", ErrSignature
	}
	return sec, sig, nil
}

// Receiver verifies the deliveries of one endpoint and refuses a delivery
// it accepted before. It is safe for concurrent use.
type Receiver struct {
	secret []byte
	skew   time.Duration

	mu   sync.Mutex
	seen map[string]int64 // accepted signature → its t
}

// NewReceiver returns a Receiver for the endpoint's secret, accepting a t
// at most skew from the clock (DefaultSkew if skew ≤ 0).
func NewReceiver(secret []byte, skew time.Duration) *Receiver {
	if skew <= 0 {
		skew = DefaultSkew
	}
	return &Receiver{secret: append([]byte(nil), secret...), skew: skew, seen: map[string]int64{}}
}

// Verify checks the signature as [Verify] does and refuses a request whose
// signature it accepted before ([ErrReplay]).
func (r *Receiver) Verify(header string, body []byte, now time.Time) error {
	sec, sig, err := verify(r.secret, header, body, now, r.skew)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[sig]; ok {
		return ErrReplay
	}
	if len(r.seen) >= MaxRemembered {
		oldest := now.Add(-r.skew).Unix()
		for k, t := range r.seen {
			if t < oldest {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= MaxRemembered {
			return fmt.Errorf("%w: more than %d deliveries in the window; try again later", ErrSignature, MaxRemembered)
		}
	}
	r.seen[sig] = sec
	return nil
}

// Wrap returns a handler that passes next only POSTs of at most MaxBody
// bytes whose signature verifies and was not accepted before, with the body
// readable again; it answers 405, 413, 401 (bad signature) or 409 (replay)
// otherwise, with a JSON {"error": "..."}.
func (r *Receiver) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fail := func(code int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, "{\"error\":%q}\n", msg)
		}
		if req.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "ward delivers webhooks by POST")
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxBody+1))
		if err != nil {
			fail(http.StatusBadRequest, "the body could not be read")
			return
		}
		if len(body) > MaxBody {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBody))
			return
		}
		sigs := req.Header.Values("Ward-Signature")
		if len(sigs) != 1 {
			fail(http.StatusUnauthorized, "exactly one Ward-Signature header is required")
			return
		}
		switch err := r.Verify(sigs[0], body, time.Now()); {
		case errors.Is(err, ErrReplay):
			fail(http.StatusConflict, "this delivery was already received")
			return
		case err != nil:
			fail(http.StatusUnauthorized, "the Ward-Signature does not verify")
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, req)
	})
}
