package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedteamRedirectNotFollowed: an endpoint that answers with a
// redirect to another host is not delivered to, and the other host never
// sees the payload or its signature.
func TestRedteamRedirectNotFollowed(t *testing.T) {
	var other atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer elsewhere.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/steal", code)
		}))
		s, out := newSender(t, Endpoint{Name: "soc", URL: srv.URL, Secret: secret})
		s.Send("alert", map[string]string{"x": "y"})
		if d := <-out; d.Delivered {
			t.Errorf("%d: delivered through a redirect: %+v", code, d)
		}
		srv.Close()
	}
	if other.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", other.Load())
	}
}

// TestRedteamAnswerBounds: a 2xx answer over MaxAnswer, or one JSON
// object followed by more, is not taken as delivered.
func TestRedteamAnswerBounds(t *testing.T) {
	for name, body := range map[string]string{
		"huge":          `{"a":"` + strings.Repeat("x", MaxAnswer) + `"}`,
		"two objects":   `{}{}`,
		"array":         `[{}]`,
		"null":          `null`,
		"bad utf-8":     "{\"a\":\"\xff\"}",
		"trailing text": `{} ok`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body)
		}))
		s, out := newSender(t, Endpoint{Name: "soc", URL: srv.URL, Secret: secret})
		s.Send("alert", nil)
		if d := <-out; d.Delivered {
			t.Errorf("%s: taken as delivered: %+v", name, d)
		}
		srv.Close()
	}
}

// TestRedteamVerifyHeaderVariants: spaces, case and duplicate parts in the
// signature header are refused, not read leniently; a window of zero or
// less accepts nothing but the exact second, and a timestamp far in the
// past or future does not overflow into the window.
func TestRedteamVerifyHeaderVariants(t *testing.T) {
	now := time.Unix(1765083600, 0)
	body := []byte(`{"id":"x"}`)
	sig := Sign(secret, "1765083600", body)
	for name, h := range map[string]string{
		"space after comma": "t=1765083600, v1=" + sig,
		"space before ts":   " t=1765083600,v1=" + sig,
		"upper-case hex":    "t=1765083600,v1=" + strings.ToUpper(sig),
		"upper-case keys":   "T=1765083600,V1=" + sig,
		"sig then dup t":    "t=1765083600,v1=" + sig + ",t=1765083600",
		"huge ts":           "t=9223372036854775807,v1=" + Sign(secret, "9223372036854775807", body),
		"very negative ts":  "t=-9223372036854775808,v1=" + Sign(secret, "-9223372036854775808", body),
		"prefix of sig":     "t=1765083600,v1=" + sig[:32],
	} {
		if err := Verify(secret, h, body, now, time.Minute); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	later := "t=1765083601,v1=" + Sign(secret, "1765083601", body)
	if Verify(secret, later, body, now, 0) == nil || Verify(secret, later, body, now, -time.Hour) == nil {
		t.Error("a window of zero or less accepted another second")
	}
}
