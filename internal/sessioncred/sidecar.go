package sessioncred

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// Sidecar returns the handler of `ward mcp serve`: it accepts requests only
// for /mcp with a loopback Host on port and, if an Origin is sent, a loopback
// Origin; it forwards them to target through rt (which authenticates as the
// session) and streams responses back unbuffered.
func Sidecar(target *url.URL, rt http.RoundTripper, port int) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path, pr.Out.URL.RawPath = target.Scheme, target.Host, target.Path, ""
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("DPoP")
			pr.Out.Header.Del("Cookie")
		},
		Transport:     rt,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "ward sidecar: cannot reach the gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	allowedHost := map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		allowedHost[fmt.Sprintf("%s:%d", h, port)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost[strings.ToLower(r.Host)] {
			http.Error(w, "ward sidecar: Host "+r.Host+" refused (DNS rebinding protection): use 127.0.0.1", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !allowedHost[strings.ToLower(u.Host)] {
				http.Error(w, "ward sidecar: Origin "+o+" refused (DNS rebinding protection)", http.StatusForbidden)
				return
			}
		}
		if r.URL.Path != "/mcp" {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}
