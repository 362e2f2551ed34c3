package egress

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// maxHostLen is the longest host name accepted (RFC 1035).
const maxHostLen = 253

var errMissingPort = errors.New("missing port")

// parseAuthority parses a CONNECT target, "host:port" or "[v6]:port", into a
// tunnel request.
func parseAuthority(s string) (Request, error) {
	host, port, hasPort, err := parseHostPort(s)
	if err == nil && !hasPort {
		err = errMissingPort
	}
	if err != nil {
		return Request{}, fmt.Errorf("CONNECT target %s: %w", quote(s), err)
	}
	return Request{Method: http.MethodConnect, Host: host, Port: port, Tunnel: true}, nil
}

// parseAbsolute checks the absolute-form target u of a proxy request: scheme
// http or https, a host, no userinfo. A missing port is the scheme's default
// and a missing path is "/".
func parseAbsolute(method string, u *url.URL) (Request, error) {
	scheme := strings.ToLower(u.Scheme)
	port := 0
	switch scheme {
	case "http":
		port = 80
	case "https":
		port = 443
	default:
		return Request{}, fmt.Errorf("URL scheme %s is not http or https", quote(u.Scheme))
	}
	if u.User != nil {
		return Request{}, errors.New("URL must not contain userinfo")
	}
	if u.Opaque != "" || u.Host == "" {
		return Request{}, errors.New("URL has no host")
	}
	host, p, hasPort, err := parseHostPort(u.Host)
	if err != nil {
		return Request{}, fmt.Errorf("URL host %s: %w", quote(u.Host), err)
	}
	if hasPort {
		port = p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return Request{Method: method, Scheme: scheme, Host: host, Port: port, Path: path}, nil
}

// parseHostPort splits "host", "host:port", "[v6]" or "[v6]:port" and
// returns the host in canonical form (see [Request]) and the port if there
// is one.
func parseHostPort(s string) (host string, port int, hasPort bool, err error) {
	if len(s) > maxHostLen+len("[]:65535") {
		return "", 0, false, errors.New("too long")
	}
	var portStr string
	if rest, ok := strings.CutPrefix(s, "["); ok {
		v6, after, ok := strings.Cut(rest, "]")
		if !ok {
			return "", 0, false, errors.New("missing ']'")
		}
		a, err := netip.ParseAddr(v6)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, false, errors.New("bad IPv6 literal")
		}
		host = a.Unmap().String()
		if after != "" {
			if portStr, hasPort = strings.CutPrefix(after, ":"); !hasPort {
				return "", 0, false, errors.New("unexpected text after ']'")
			}
		}
	} else {
		host = s
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, portStr, hasPort = s[:i], s[i+1:], true
		}
		if host, err = checkHost(host); err != nil {
			return "", 0, false, err
		}
	}
	if hasPort {
		if port, err = parsePort(portStr); err != nil {
			return "", 0, false, err
		}
	}
	return host, port, hasPort, nil
}

// parsePort accepts 1 to 5 decimal digits naming a port in 1..65535.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad port %s", quote(s))
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return n, nil
}

// checkHost returns h as a lower-case DNS name without a trailing dot, or as
// a canonical IPv4 address. Labels are letters, digits, '-' and '_'. A name
// whose last label is a number (decimal or 0x hex) must be a dotted-quad
// IPv4 address: resolvers read "127.1" or "2130706433" as addresses, and
// policy must see the address, not a name that hides it.
func checkHost(h string) (string, error) {
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return a.String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if name == "" {
		return "", errors.New("empty host")
	}
	if len(name) > maxHostLen {
		return "", errors.New("host name too long")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("bad host name %s", quote(h))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("bad host name %s", quote(h))
			}
		}
	}
	last := labels[len(labels)-1]
	hex, isHex := strings.CutPrefix(last, "0x")
	if strings.Trim(last, "0123456789") == "" || isHex && strings.Trim(hex, "0123456789abcdef") == "" {
		return "", fmt.Errorf("host %s is numeric but not a dotted-quad IPv4 address", quote(h))
	}
	return name, nil
}

// hostPort is the authority for r's URL: the host, bracketed if IPv6, with
// the port unless it is the scheme's default.
func hostPort(r *Request) string {
	host := r.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if r.Scheme == "http" && r.Port == 80 || r.Scheme == "https" && r.Port == 443 {
		return host
	}
	return host + ":" + strconv.Itoa(r.Port)
}

// parseProxyAuth returns the user and password of a Proxy-Authorization
// header using the Basic scheme; both must be non-empty.
func parseProxyAuth(h string) (user, password string, ok bool) {
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(b), ":")
	if !ok || user == "" || password == "" {
		return "", "", false
	}
	return user, password, true
}

// quote quotes untrusted text for an error message, cut to a readable length.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
