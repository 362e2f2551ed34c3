package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/api"
)

// TestTokenExchangeOversizeIs413: a token-exchange form over the body
// limit is answered 413 (in the RFC 6749 error format), whether its length
// is announced or not, so the client knows to send less rather than to fix
// its form; it used to be answered 400. A form at the limit is read.
func TestTokenExchangeOversizeIs413(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.echo")
	s := n.start("base")
	form := baseForm(t, s).Encode() + "&agent="
	pad := func(total int) string { return form + strings.Repeat("a", total-len(form)) }
	chunked := func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ContentLength = -1
	}
	for _, tc := range []struct {
		name   string
		body   string
		mutate func(*http.Request)
		status int
	}{
		{"one byte over", pad(api.DefaultMaxBody + 1), nil, http.StatusRequestEntityTooLarge},
		{"far over", pad(4 * api.DefaultMaxBody), nil, http.StatusRequestEntityTooLarge},
		{"over, length not announced", pad(api.DefaultMaxBody + 1), chunked, http.StatusRequestEntityTooLarge},
		// Read, then refused for what it says: the agent does not exist.
		{"at the limit", pad(api.DefaultMaxBody), nil, 0},
		{"at the limit, length not announced", pad(api.DefaultMaxBody), chunked, 0},
	} {
		status, out := n.exchange(t, s, tc.body, tc.mutate)
		desc, _ := out["error_description"].(string)
		switch {
		case tc.status == 0:
			if status == http.StatusRequestEntityTooLarge || strings.Contains(desc, "exceeds") {
				t.Errorf("%s: %d %v; a form at the limit must be read", tc.name, status, out)
			}
		case status != tc.status || out["error"] != "invalid_request" || !strings.Contains(desc, "exceeds") || strings.Contains(desc, s.view.Grant):
			t.Errorf("%s: %d %v; want %d invalid_request saying the body exceeds the limit", tc.name, status, out, tc.status)
		}
	}
}
