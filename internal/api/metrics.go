package api

import (
	"fmt"
	"net"
	"net/http"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/store"
)

// metrics serves GET /metrics (Config.Metrics) to two kinds of caller:
//
//   - a client on a loopback address (127.0.0.0/8, ::1), without a
//     credential: a Prometheus on the node's own host, or a sidecar
//     scraper. The counts name configured servers and tools, never an
//     argument, a result or a secret. A reverse proxy on the same host
//     makes every client look local: put the proxy's own access control
//     in front of /metrics, or keep it off the proxied paths;
//   - anyone else with an admin credential (Authorization: Bearer ward_…):
//     Prometheus's authorization.credentials_file holds it.
//
// Everything else is refused (401, or 403 for a sponsor's credential) and
// the refusal recorded, like every refusal.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if !loopback(r.RemoteAddr) {
		p, err := s.operator(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if p.Kind != store.KindAdmin {
			s.fail(w, r, fmt.Errorf("%w: only an admin may read /metrics from a non-loopback address", authority.ErrForbidden))
			return
		}
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// loopback reports whether a request's remote address is a loopback one.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
