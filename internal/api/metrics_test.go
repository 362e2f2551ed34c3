package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestMetricsAccess: /metrics answers a loopback client without a
// credential and an admin from anywhere; anyone else, a sponsor included,
// is refused and the refusal recorded.
func TestMetricsAccess(t *testing.T) {
	n := newNode(t)
	n.must("POST", "/v1/sponsors", `{"name":"acme","kind":"platform","ceiling":{"tools":["*"]}}`, nil)
	var sponsor struct{ Credential string }
	n.must("POST", "/v1/sponsors/acme/credentials", "", &sponsor)
	for _, tc := range []struct {
		name, remote, token string
		want                int
	}{
		{"loopback v4", "127.0.0.1:5000", "", http.StatusOK},
		{"loopback v6", "[::1]:5000", "", http.StatusOK},
		{"loopback range", "127.8.9.10:5000", "", http.StatusOK},
		{"remote without credential", "203.0.113.7:5000", "", http.StatusUnauthorized},
		{"remote with a bad credential", "203.0.113.8:5000", "ward_nonsense", http.StatusUnauthorized},
		{"remote sponsor", "203.0.113.9:5000", sponsor.Credential, http.StatusForbidden},
		{"remote admin", "203.0.113.10:5000", n.admin, http.StatusOK},
		{"unparsable address", "somewhere", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.refusalCount()
			req := request("GET", "/metrics", "")
			req.RemoteAddr = tc.remote
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := n.serve(req)
			if rec.Code != tc.want {
				t.Fatalf("GET /metrics from %s: %d %s, want %d", tc.remote, rec.Code, rec.Body, tc.want)
			}
			if tc.want == http.StatusOK {
				if !strings.Contains(rec.Body.String(), "# TYPE ward_audit_append_duration_seconds histogram") {
					t.Fatalf("no ward metrics served:\n%s", rec.Body)
				}
				return
			}
			if strings.Contains(rec.Body.String(), "# TYPE") {
				t.Fatalf("a refused scrape carries metrics: %s", rec.Body)
			}
			n.n.API.Close() // flush the refusal summaries
			if got := n.refusalCount(); got <= before {
				t.Fatalf("refusal not recorded (%d events before, %d after)", before, got)
			}
		})
	}
}
