package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"unicode/utf8"
)

// Validate returns the diagnostic Decide would deny req with as an invalid
// request ("invalid request: no session", …), or nil if Decide would
// evaluate policies for it. Loaders of test cases and traces use it to
// refuse what could never be decided.
func (r Request) Validate() error {
	var uncached *preparedCache
	_, msg := uncached.get(r)
	if msg == "" {
		if _, err := argumentsValue(r.Arguments); err != nil {
			msg = err.Error()
		}
	}
	if msg != "" {
		return errors.New(invalidPrefix + msg)
	}
	return nil
}

// checkCall validates what prepare does not (the fields that vary from call
// to call and are not in preparedKey), for a request prepare accepted. It
// returns a diagnostic, or "".
func checkCall(req *Request) string {
	for _, l := range req.Taint {
		if !validLabel(l) {
			return fmt.Sprintf("taint label %q is not 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or digit", l)
		}
	}
	switch req.Action {
	case ActionHTTPRequest, ActionExec:
		if f := mcpField(req); f != "" {
			return fmt.Sprintf("%s takes no %s", req.Action, f)
		}
		if req.Action == ActionHTTPRequest {
			if req.Exec != nil {
				return "http_request with Exec"
			}
			return checkHTTP(req.HTTP)
		}
		if req.HTTP != nil {
			return "exec with HTTP"
		}
		return checkExec(req.Exec)
	}
	if req.HTTP != nil || req.Exec != nil {
		return fmt.Sprintf("%s with HTTP or Exec", req.Action)
	}
	if req.Path != "" {
		return checkFilePath("path", req.Path, false)
	}
	return ""
}

// mcpField names a field of req that only the MCP actions take, or "".
func mcpField(req *Request) string {
	switch {
	case len(req.Arguments) > 0:
		return "arguments"
	case req.Verb != "":
		return "verb"
	case req.Impact != nil:
		return "impact"
	case req.Dataset != "":
		return "dataset"
	case req.Path != "":
		return "path"
	}
	return ""
}

// checkHTTP validates an HTTP request but its host (prepare checks that).
// The path is not quoted in diagnostics: it may hold secrets.
func checkHTTP(h *HTTPRequest) string {
	switch {
	case !validMethod(h.Method):
		return fmt.Sprintf("method %q is not an HTTP method: 1-32 characters of an RFC 9110 token without lowercase letters", h.Method)
	case h.Port < 1 || h.Port > 65535:
		return fmt.Sprintf("port %d is not in 1-65535", h.Port)
	case h.Method == MethodConnect:
		if h.Scheme != "" || h.Path != "" {
			return `a CONNECT tunnel has scheme "" and path "": what goes through it is not seen`
		}
	case h.Scheme != "http" && h.Scheme != "https":
		return fmt.Sprintf("scheme %q is not http or https", h.Scheme)
	case !normalPath(h.Path):
		if _, err := CleanHTTPPath(h.Path); err != nil {
			return err.Error()
		}
		return "path is not in RFC 3986 normal form (see CleanHTTPPath)"
	}
	return ""
}

// checkExec validates an exec but its command (prepare checks that).
// Arguments are not quoted in diagnostics: they may hold secrets.
func checkExec(e *ExecRequest) string {
	for i, a := range e.Args {
		if !utf8.ValidString(a) || strings.IndexByte(a, 0) >= 0 {
			return fmt.Sprintf("argument %d is not valid UTF-8 without NUL", i+1)
		}
	}
	return checkFilePath("cwd", e.Dir, true)
}

// checkFilePath returns what is wrong with p, named what in the diagnostic,
// as an absolute, clean file path ("" allowed if emptyOK), or "".
func checkFilePath(what, p string, emptyOK bool) string {
	switch {
	case p == "" && emptyOK:
		return ""
	case p == "":
		return "no " + what
	case !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0:
		return what + " is not valid UTF-8 without NUL"
	case !path.IsAbs(p) || path.Clean(p) != p:
		return fmt.Sprintf("%s %q is not an absolute, clean path", what, p)
	}
	return ""
}

// validLabel reports whether l is a taint label: 1-64 characters of a-z,
// 0-9, '.', '_' and '-', starting with a letter or digit.
func validLabel(l string) bool {
	if l == "" || len(l) > 64 || !isLowerAlnum(l[0]) {
		return false
	}
	for i := 1; i < len(l); i++ {
		if c := l[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// validMethod reports whether m is an RFC 9110 token of at most 32
// characters without lowercase letters. Methods are case-sensitive, so a
// forbid on DELETE must not be dodged by "delete", which some servers
// accept.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if 'a' <= c && c <= 'z' || !isTokenChar(c) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkHost returns what is wrong with h as an HTTPRequest.Host, or "".
func checkHost(h string) string {
	if h == "" {
		return "no host"
	}
	if validName(h) == "" {
		return "" // a lowercase name, the common case, without allocating
	}
	c, err := CanonicalHost(h)
	if err != nil {
		return err.Error()
	}
	if c != h {
		return fmt.Sprintf("host %+q is not in canonical form %q", h, c)
	}
	return ""
}

// CanonicalHost returns the host of a URL (without port) in the form
// [HTTPRequest].Host requires: a DNS name in lowercase (ASCII letters only:
// internationalized names must be in their xn-- form), an IP address in
// canonical form (IPv6 without brackets, an IPv4-mapped IPv6 address as
// IPv4). It fails on a host with a port or a zone, a trailing dot, a name
// with characters other than letters, digits, '.', '_' and '-', with empty
// labels, labels longer than 63 characters or starting or ending with '-',
// longer than 253 characters, and a name whose last label is a number
// ("127.1", "0x7f.1"), which resolvers may read as an IPv4 address.
func CanonicalHost(host string) (string, error) {
	ip := host
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		ip = host[1 : len(host)-1]
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("host %+q has a zone", host)
		}
		if ip != host && !a.Is6() {
			return "", fmt.Errorf("host %+q: only IPv6 addresses go in brackets", host)
		}
		return a.Unmap().String(), nil
	}
	if ip != host || strings.Contains(host, ":") {
		return "", fmt.Errorf("host %+q is neither a name nor an IP address (a port goes in Port)", host)
	}
	name := asciiLower(host)
	if msg := validName(name); msg != "" {
		return "", fmt.Errorf("host %+q %s", host, msg)
	}
	return name, nil
}

// validName returns what is wrong with name as a lowercase DNS name, or "".
func validName(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > 253 {
		return "is longer than 253 characters"
	}
	var last string
	for l := range strings.SplitSeq(name, ".") {
		last = l
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "has an empty label, one longer than 63 characters, or one starting or ending with '-'"
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isLowerAlnum(c) && c != '_' && c != '-' {
				r, _ := utf8.DecodeRuneInString(l[i:])
				return fmt.Sprintf("has the character %+q: a name is lowercase a-z, 0-9, '.', '_' and '-'", r)
			}
		}
	}
	hex, isHex := strings.CutPrefix(last, "0x")
	if strings.Trim(last, "0123456789") == "" || isHex && strings.Trim(hex, "0123456789abcdef") == "" {
		return "ends in a number, so resolvers may read it as an IPv4 address; write the address in dotted decimal"
	}
	return ""
}

// asciiLower lowercases ASCII letters only: strings.ToLower maps some
// non-ASCII letters (the Kelvin sign) to ASCII ones.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

const upperHex = "0123456789ABCDEF"

// CleanHTTPPath returns the escaped URL path p (as in a request line, or
// url.URL.EscapedPath) in the RFC 3986 normal form [HTTPRequest].Path
// requires, so that a policy on "/admin/*" cannot be dodged with
// "/x/../admin/" or "/%61dmin": percent-encoded unreserved characters
// decoded, other percent-encodings with uppercase hex digits, characters
// that may not appear raw percent-encoded, dot segments removed (RFC 3986
// section 5.2.4), and "" made "/". It fails on a path that does not start
// with "/", holds '?' or '#' (a query or fragment is not part of the path)
// or a malformed percent-encoding. Errors do not quote the path, which may
// hold secrets.
func CleanHTTPPath(p string) (string, error) {
	if normalPath(p) {
		return p, nil
	}
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' {
		return "", errors.New(`path does not start with "/"`)
	}
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '?' || c == '#':
			return "", fmt.Errorf("path holds %q at offset %d: a query or fragment is not part of the path", c, i)
		case c == '%':
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return "", fmt.Errorf("path has a malformed percent-encoding at offset %d", i)
			}
			c = byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			if unreserved(c) {
				b.WriteByte(c)
				continue
			}
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		case pathChar(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return removeDotSegments(b.String()), nil
}

// normalPath reports whether p is what CleanHTTPPath returns for it.
func normalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) || unreserved(byte(unhex(p[i+1])<<4|unhex(p[i+2]))) {
				return false
			}
			i += 2
			continue
		}
		if !pathChar(c) {
			return false
		}
	}
	return !hasDotSegment(p)
}

// hasDotSegment reports whether the path p (starting with "/") has a "."
// or ".." segment.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// removeDotSegments is RFC 3986's remove_dot_segments for a path that
// starts with "/".
func removeDotSegments(p string) string {
	if !hasDotSegment(p) {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch s {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			continue
		}
		if i == len(segs)-1 { // a trailing dot segment leaves a trailing "/"
			out = append(out, "")
		}
	}
	return "/" + strings.Join(out, "/")
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// pathChar reports whether c may appear raw in an RFC 3986 path: a pchar
// other than a percent-encoding, or '/'.
func pathChar(c byte) bool {
	return unreserved(c) || strings.IndexByte("!$&'()*+,;=:@/", c) >= 0
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// unhex returns the value of the hex digit c, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
