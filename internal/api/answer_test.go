package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// POST /v1/guard/answer (`ward mcp wrap`) records a client's answer to a
// server's request, and refuses one that cannot describe an answer.
func TestGuardAnswer(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.*")
	s := n.start("base")
	digest := strings.Repeat("ab", 32)
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"server":"w","method":"elicitation/create","answer":{"sha256":"` + digest + `","bytes":12,"is_error":false}}`, http.StatusOK, `"recorded": true`},
		{`{"server":"w","method":"elicitation/create","answer":{"sha256":"` + strings.ToUpper(digest) + `","bytes":12}}`, http.StatusBadRequest, "answer.sha256"},
		{`{"server":"w","method":"elicitation/create","answer":{"sha256":"abcd","bytes":12}}`, http.StatusBadRequest, "answer.sha256"},
		{`{"server":"w","method":"elicitation/create","answer":{"sha256":"` + digest + `","bytes":-1}}`, http.StatusBadRequest, "answer.bytes"},
		{`{"server":"w","method":"","answer":{"sha256":"` + digest + `","bytes":1}}`, http.StatusBadRequest, "method"},
		{`{"server":"w","method":"a\nb","answer":{"sha256":"` + digest + `","bytes":1}}`, http.StatusBadRequest, "method"},
	} {
		before := n.n.Audit.Size()
		rec := n.serve(s.sign(t, request("POST", "/v1/guard/answer", c.body)))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.body, rec.Code, rec.Body, c.status, c.want)
			continue
		}
		recorded := false
		for _, e := range n.events(before) {
			if e.Type == "server.request.answer" && strings.Contains(string(e.Data), digest) {
				recorded = true
			}
		}
		if recorded != (c.status == http.StatusOK) {
			t.Errorf("%s: recorded %v", c.body, recorded)
		}
	}
}
