package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestRedteamMetricsSpoofedLocal: a remote client cannot pass for a local
// one with proxy headers, a Host of localhost, or an IPv4-mapped IPv6
// spelling of a remote address.
func TestRedteamMetricsSpoofedLocal(t *testing.T) {
	n := newNode(t)
	for name, tc := range map[string]struct {
		remote string
		hdr    map[string]string
		want   int
	}{
		"X-Forwarded-For":  {"203.0.113.7:5000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, http.StatusUnauthorized},
		"X-Real-IP":        {"203.0.113.7:5000", map[string]string{"X-Real-IP": "127.0.0.1"}, http.StatusUnauthorized},
		"Forwarded":        {"203.0.113.7:5000", map[string]string{"Forwarded": "for=127.0.0.1"}, http.StatusUnauthorized},
		"Host localhost":   {"203.0.113.7:5000", map[string]string{"Host": "localhost"}, http.StatusUnauthorized},
		"mapped remote":    {"[::ffff:203.0.113.7]:5000", nil, http.StatusUnauthorized},
		"unspecified v6":   {"[::]:5000", nil, http.StatusUnauthorized},
		"unspecified v4":   {"0.0.0.0:5000", nil, http.StatusUnauthorized},
		"link-local zone":  {"[fe80::1%lo]:5000", nil, http.StatusUnauthorized},
		"no port":          {"127.0.0.1", nil, http.StatusUnauthorized},
		"mapped loopback":  {"[::ffff:127.0.0.1]:5000", nil, http.StatusOK},
		"long v6 loopback": {"[0:0:0:0:0:0:0:1]:5000", nil, http.StatusOK},
	} {
		req := request("GET", "/metrics", "")
		req.RemoteAddr = tc.remote
		for k, v := range tc.hdr {
			if k == "Host" {
				req.Host = v
			}
			req.Header.Set(k, v)
		}
		rec := n.serve(req)
		if rec.Code != tc.want {
			t.Errorf("%s: GET /metrics from %s: %d, want %d", name, tc.remote, rec.Code, tc.want)
		}
		if tc.want != http.StatusOK && strings.Contains(rec.Body.String(), "# TYPE") {
			t.Errorf("%s: refused scrape carries metrics", name)
		}
	}
}
