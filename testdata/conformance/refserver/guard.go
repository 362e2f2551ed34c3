package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// loopbackOnly serves next only requests whose Host, and Origin when there is
// one, name a loopback host; it refuses the others with 403 and a JSON-RPC
// error, as the MCP transport asks local servers to (DNS rebinding).
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHostPort(r.Host) {
			refuse(w, fmt.Sprintf("host %q is not a loopback name; this server answers only localhost, 127.0.0.1 and [::1]", r.Host))
			return
		}
		origins := r.Header.Values("Origin")
		if len(origins) > 1 {
			refuse(w, "more than one Origin header")
			return
		}
		if len(origins) == 1 && !loopbackOrigin(origins[0]) {
			refuse(w, fmt.Sprintf("origin %q is not a loopback origin; this server answers only pages served from localhost, 127.0.0.1 and [::1]", origins[0]))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers 403 with a JSON-RPC error that says why.
func refuse(w http.ResponseWriter, why string) {
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      nil,
		"error":   map[string]any{"code": -32000, "message": "forbidden: " + why},
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	w.Write(body)
}

// loopbackName reports whether host (no port, brackets allowed) is
// localhost or a loopback IP address.
func loopbackName(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHostPort reports whether a Host header value, with or without a
// port, names a loopback host.
func loopbackHostPort(hostport string) bool {
	if hostport == "" {
		return false
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole value is the host; a bare IPv6 literal must
		// then be bracketed, as in a URL.
		host = hostport
		if strings.Contains(host, ":") && !(strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]")) {
			return false
		}
	} else if !validPort(port) {
		return false
	}
	return loopbackName(host)
}

// loopbackOrigin reports whether an Origin header value is an http or https
// origin on a loopback host.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return false
	}
	return loopbackName(u.Hostname())
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
