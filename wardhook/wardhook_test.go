package wardhook_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/wardhook"
)

var secret = []byte("0123456789abcdef-secret")

func header(ts int64, body string) string {
	t := strconv.FormatInt(ts, 10)
	return "t=" + t + ",v1=" + wardhook.Sign(secret, t, []byte(body))
}

func TestReceiverRefusesReplays(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := wardhook.NewReceiver(secret, time.Minute)
	body := `{"id":"d1","event":"alert","time":"2027-01-15T08:00:00Z","data":{}}`
	h := header(now.Unix(), body)
	if err := r.Verify(h, []byte(body), now); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	if err := r.Verify(h, []byte(body), now.Add(30*time.Second)); !errors.Is(err, wardhook.ErrReplay) {
		t.Fatalf("the same request again: %v, want a replay", err)
	}
	// A retry of the same delivery, signed at a later t, is not a replay.
	if err := r.Verify(header(now.Unix()+1, body), []byte(body), now.Add(time.Second)); err != nil {
		t.Fatalf("a retry signed later: %v", err)
	}
	// Outside the window it is refused as such (and forgetting it is safe).
	if err := r.Verify(h, []byte(body), now.Add(2*time.Minute)); !errors.Is(err, wardhook.ErrSignature) || errors.Is(err, wardhook.ErrReplay) {
		t.Fatalf("the request after the window: %v", err)
	}
	for name, c := range map[string]struct{ h, body string }{
		"other body":         {h, body + " "},
		"other secret":       {"t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + wardhook.Sign([]byte("another-secret-of-16"), strconv.FormatInt(now.Unix(), 10), []byte(body)), body},
		"t with a plus sign": {strings.Replace(header(now.Unix(), body), "t=", "t=+", 1), body},
		"t twice":            {header(now.Unix(), body) + ",t=1", body},
		"no v1":              {"t=" + strconv.FormatInt(now.Unix(), 10), body},
		"upper-case hex":     {strings.ToUpper(header(now.Unix()+2, body)), body},
	} {
		if err := wardhook.NewReceiver(secret, time.Minute).Verify(c.h, []byte(c.body), now); !errors.Is(err, wardhook.ErrSignature) {
			t.Errorf("%s: %v, want a bad signature", name, err)
		}
	}
}

// The receiver forgets signatures that left the window, and refuses new
// deliveries (rather than forgetting ones still in it) when it would
// remember more than MaxRemembered.
func TestReceiverBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("signs MaxRemembered deliveries")
	}
	now := time.Unix(1_800_000_000, 0)
	r := wardhook.NewReceiver(secret, time.Minute)
	for i := range wardhook.MaxRemembered {
		body := fmt.Sprint(i)
		if err := r.Verify(header(now.Unix()-59, body), []byte(body), now); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if err := r.Verify(header(now.Unix(), "x"), []byte("x"), now); err == nil || errors.Is(err, wardhook.ErrReplay) {
		t.Fatalf("over the bound: %v, want a refusal", err)
	}
	// Two seconds later the first ones have left the window.
	later := now.Add(2 * time.Second)
	if err := r.Verify(header(later.Unix(), "x"), []byte("x"), later); err != nil {
		t.Fatalf("after the window moved: %v", err)
	}
}

func TestWrap(t *testing.T) {
	var got []string
	h := wardhook.NewReceiver(secret, 0).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := `{"id":"d2"}`
	sig := header(time.Now().Unix(), body)
	send := func(method, body string, sigs ...string) int {
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		for _, s := range sigs {
			req.Header.Add("Ward-Signature", s)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name   string
		code   int
		method string
		body   string
		sigs   []string
	}{
		{"delivery", 200, "POST", body, []string{sig}},
		{"replay", 409, "POST", body, []string{sig}},
		{"GET", 405, "GET", "", []string{sig}},
		{"two signatures", 401, "POST", body, []string{sig, sig}},
		{"no signature", 401, "POST", body, nil},
		{"too large", 413, "POST", strings.Repeat("a", wardhook.MaxBody+1), []string{sig}},
	} {
		if code := send(c.method, c.body, c.sigs...); code != c.code {
			t.Errorf("%s: %d, want %d", c.name, code, c.code)
		}
	}
	if len(got) != 1 || got[0] != body {
		t.Fatalf("the handler got %q, want the one delivery with its body", got)
	}
}

// FuzzVerify: no header other than the one ward makes for body verifies.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(header(now.Unix(), "{}"), "{}")
	f.Add("t=1800000000,v1=", "")
	f.Add("v1=ab,t=1800000000", "x")
	f.Fuzz(func(t *testing.T, h, body string) {
		err := wardhook.Verify(secret, h, []byte(body), now, time.Minute)
		if err != nil {
			return
		}
		var ts, v1 string
		for _, part := range strings.Split(h, ",") {
			switch k, v, _ := strings.Cut(part, "="); k {
			case "t":
				ts = v
			case "v1":
				v1 = v
			}
		}
		mustInt(t, ts)
		if v1 != wardhook.Sign(secret, ts, []byte(body)) {
			t.Fatalf("verified %q for %q", h, body)
		}
	})
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("verified a header whose t is %q", s)
	}
	return n
}
