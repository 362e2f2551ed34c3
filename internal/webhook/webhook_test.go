package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ward-dev/ward/wardhook"
)

var secret = []byte("0123456789abcdef-secret")

// receiver is an endpoint as a user would write it: it verifies each
// delivery's signature and answers with the statuses (and bodies) given,
// one per attempt, the last one repeating.
func receiver(t *testing.T, answers ...string) (*httptest.Server, *atomic.Int32, chan map[string]any) {
	var n atomic.Int32
	got := make(chan map[string]any, 16)
	// It refuses replays: ward's retries (here within one second) must
	// not be taken for one.
	rc := wardhook.NewReceiver(secret, 5*time.Minute)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rc.Verify(r.Header.Get("Ward-Signature"), body, time.Now()); err != nil {
			t.Errorf("delivery does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var msg map[string]any
		if err := json.Unmarshal(body, &msg); err != nil || msg["event"] != r.Header.Get("Ward-Event") || msg["id"] != r.Header.Get("Ward-Delivery") {
			t.Errorf("delivery body %s does not match its headers", body)
		}
		i := int(n.Add(1)) - 1
		a := answers[min(i, len(answers)-1)]
		code, rest, _ := strings.Cut(a, " ")
		switch code {
		case "200":
			w.WriteHeader(http.StatusOK)
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "400":
			w.WriteHeader(http.StatusBadRequest)
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, rest)
		got <- msg
	}))
	t.Cleanup(srv.Close)
	return srv, &n, got
}

func newSender(t *testing.T, eps ...Endpoint) (*Sender, chan Delivery) {
	out := make(chan Delivery, 16)
	s, err := New(Config{Endpoints: eps, Record: func(d Delivery) { out <- d }, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Attempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, out
}

func TestDelivery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answers   []string
		delivered bool
		attempts  int
		status    int
		err       string
	}{
		{"delivered at once", []string{`200 {"ok":true}`}, true, 1, 200, ""},
		{"empty answer", []string{"204"}, true, 1, 204, ""},
		{"retried after 503", []string{"503", "503", `200 {}`}, true, 3, 200, ""},
		{"gives up after the attempts", []string{"503"}, false, 4, 503, "answered 503"},
		{"400 is not retried", []string{"400"}, false, 1, 400, "answered 400"},
		{"a 2xx that is not a JSON object", []string{"200 <html>ok</html>"}, false, 1, 200, "not one JSON object"},
		{"a 2xx with duplicate keys", []string{`200 {"ok":true,"ok":false}`}, false, 1, 200, "not one JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n, got := receiver(t, tc.answers...)
			s, out := newSender(t, Endpoint{Name: "siem", URL: srv.URL + "/hook", Secret: secret})
			s.Send("approval.pending", map[string]string{"id": "a1"})
			d := <-out
			if d.Delivered != tc.delivered || d.Attempts != tc.attempts || d.Status != tc.status || !strings.Contains(d.Error, tc.err) || d.Endpoint != "siem" || d.Event != "approval.pending" || d.ID == "" {
				t.Fatalf("delivery %+v, want delivered=%v attempts=%d status=%d error ~%q", d, tc.delivered, tc.attempts, tc.status, tc.err)
			}
			if int(n.Load()) != tc.attempts {
				t.Fatalf("receiver saw %d requests, want %d", n.Load(), tc.attempts)
			}
			msg := <-got
			if data, _ := msg["data"].(map[string]any); data["id"] != "a1" {
				t.Fatalf("payload %v", msg)
			}
		})
	}
}

func TestDeliveryRouting(t *testing.T) {
	srvA, nA, _ := receiver(t, "204")
	srvB, nB, _ := receiver(t, "204")
	s, out := newSender(t, Endpoint{Name: "approvers", URL: srvA.URL, Secret: secret, Events: []string{"approval.*"}},
		Endpoint{Name: "soc", URL: srvB.URL, Secret: secret, Events: []string{"alert", "playbook.*"}})
	s.Send("alert", map[string]string{})
	if d := <-out; d.Endpoint != "soc" || !d.Delivered {
		t.Fatalf("alert went to %+v", d)
	}
	s.Send("approval.approved", map[string]string{})
	if d := <-out; d.Endpoint != "approvers" || !d.Delivered {
		t.Fatalf("approval went to %+v", d)
	}
	s.Send("session.start", map[string]string{}) // nobody's
	s.Close(context.Background())
	if nA.Load() != 1 || nB.Load() != 1 || len(out) != 0 {
		t.Fatalf("requests %d/%d, records left %d", nA.Load(), nB.Load(), len(out))
	}
}

// TestNoSecretsInRecords: an endpoint whose URL carries a token and that
// cannot be reached is recorded by name, without the URL or the secret.
func TestNoSecretsInRecords(t *testing.T) {
	s, out := newSender(t, Endpoint{Name: "down", URL: "http://user:tok3n@127.0.0.1:1/hook?key=tok3n", Secret: secret})
	s.Send("alert", nil)
	d := <-out
	raw, _ := json.Marshal(d)
	if d.Delivered || d.Attempts != 4 || strings.Contains(string(raw), "tok3n") || strings.Contains(string(raw), string(secret)) {
		t.Fatalf("record %s", raw)
	}
}

func TestConfig(t *testing.T) {
	for _, eps := range [][]Endpoint{
		{{Name: "", URL: "https://x/", Secret: secret}},
		{{Name: "a", URL: "https://x/", Secret: []byte("short")}},
		{{Name: "a", URL: "ftp://x/", Secret: secret}},
		{{Name: "a", URL: "/relative", Secret: secret}},
		{{Name: "a", URL: "https://x/", Secret: secret}, {Name: "a", URL: "https://y/", Secret: secret}},
		{{Name: "a", URL: "https://x/", Secret: secret, Events: []string{"["}}},
	} {
		if _, err := New(Config{Endpoints: eps}); err == nil {
			t.Errorf("accepted %+v", eps)
		} else if strings.Contains(err.Error(), string(secret)) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1765083600, 0)
	body := []byte(`{"id":"x"}`)
	good := "t=1765083600,v1=" + Sign(secret, "1765083600", body)
	if err := Verify(secret, good, body, now, time.Minute); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	for name, h := range map[string]string{
		"tampered body":   good,
		"wrong secret":    "t=1765083600,v1=" + Sign([]byte("another secret of 16+"), "1765083600", body),
		"old":             "t=1765083000,v1=" + Sign(secret, "1765083000", body),
		"two signatures":  good + ",v1=" + Sign(secret, "1765083600", body),
		"two timestamps":  "t=1765083600," + good,
		"no signature":    "t=1765083600",
		"garbage":         "nonsense",
		"empty":           "",
		"signed other ts": "t=1765083601,v1=" + Sign(secret, "1765083600", body),
	} {
		b := body
		if name == "tampered body" {
			b = []byte(`{"id":"y"}`)
		}
		if err := Verify(secret, h, b, now, time.Minute); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("t=1765083600,v1=00", []byte("{}"))
	f.Add("t=1,v1="+Sign(secret, "1", []byte("{}")), []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(secret, header, body, time.Unix(1765083600, 0), time.Minute)
		if err == nil {
			// Accepted: then it must be exactly the signature of this body
			// at a timestamp in the window.
			ts, sig, _ := strings.Cut(strings.TrimPrefix(header, "t="), ",v1=")
			if !strings.HasPrefix(header, "t=") || sig != Sign(secret, ts, body) {
				t.Fatalf("accepted %q for %q", header, body)
			}
		}
	})
}

// TestSendAfterClose: a notification sent while ward stops is recorded as
// not sent, never lost without a record.
func TestSendAfterClose(t *testing.T) {
	srv, n, _ := receiver(t, "204")
	s, out := newSender(t, Endpoint{Name: "soc", URL: srv.URL, Secret: secret})
	s.Close(context.Background())
	s.Send("alert", nil)
	if d := <-out; d.Delivered || d.Attempts != 0 || !strings.Contains(d.Error, "stopping") {
		t.Fatalf("delivery after close: %+v", d)
	}
	if n.Load() != 0 {
		t.Fatal("sent after close")
	}
}
