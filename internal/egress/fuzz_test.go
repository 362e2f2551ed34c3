package egress

import (
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// checkCanonical states what every parsed Request's host and port satisfy.
func checkCanonical(t *testing.T, in string, r Request) {
	t.Helper()
	if r.Port < 1 || r.Port > 65535 {
		t.Fatalf("%q: port %d", in, r.Port)
	}
	if r.Host == "" || len(r.Host) > maxHostLen || r.Host != strings.ToLower(r.Host) || strings.HasSuffix(r.Host, ".") {
		t.Fatalf("%q: host %q is not canonical", in, r.Host)
	}
	if a, err := netip.ParseAddr(r.Host); err == nil {
		if a.String() != r.Host || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("%q: address %q is not canonical", in, r.Host)
		}
	} else if strings.Trim(r.Host, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		t.Fatalf("%q: host %q has characters outside a DNS name", in, r.Host)
	}
}

// FuzzParseAuthority: whatever a CONNECT line says, an accepted target is
// canonical, and parsing its canonical form gives the same request.
func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{
		"example.com:443", "Example.COM.:1", "[::1]:443", "[::ffff:127.0.0.1]:80", "127.0.0.1:8080",
		"example.com", "[::1", "[fe80::1%eth0]:443", "example.com:0", "example.com:99999", "2130706433:80",
		"0x7f.1:80", "a@b:1", "::1:443", "[::1]:", "host:+1", "_a.b:1", "é.com:443",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseAuthority(s)
		if err != nil {
			if r != (Request{}) {
				t.Fatalf("%q: error %v with request %+v", s, err, r)
			}
			return
		}
		if !r.Tunnel || r.Method != "CONNECT" || r.Scheme != "" || r.Path != "" {
			t.Fatalf("%q: %+v is not a tunnel request", s, r)
		}
		checkCanonical(t, s, r)
		if strings.ContainsAny(s, "@/?#% \t\r\n") {
			t.Fatalf("%q accepted", s)
		}
		again, err := parseAuthority(net.JoinHostPort(r.Host, strconv.Itoa(r.Port)))
		if err != nil || again != r {
			t.Fatalf("%q: canonical form parses to %+v, %v, want %+v", s, again, err, r)
		}
	})
}

// FuzzParseAbsolute: an accepted absolute-form target has an http(s)
// scheme, no userinfo, a path, a canonical host, and its canonical URL
// parses to the same request.
func FuzzParseAbsolute(f *testing.F) {
	for _, s := range []string{
		"http://example.com/", "HTTPS://Example.com:8443/a%2Fb?q", "http://[::1]:80", "http://user:pw@example.com/",
		"ftp://example.com/", "http://example.com:99999/", "http://127.1/", "http:///x", "http://a_b.c/~x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.ParseRequestURI(s)
		if err != nil {
			return
		}
		r, err := parseAbsolute("GET", u)
		if err != nil {
			return
		}
		if u.User != nil {
			t.Fatalf("%q: userinfo accepted", s)
		}
		if r.Scheme != "http" && r.Scheme != "https" || r.Tunnel || !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("%q: %+v", s, r)
		}
		checkCanonical(t, s, r)
		canon := r.Scheme + "://" + hostPort(&r) + r.Path
		cu, err := url.ParseRequestURI(canon)
		if err != nil {
			t.Fatalf("%q: canonical URL %q: %v", s, canon, err)
		}
		if again, err := parseAbsolute("GET", cu); err != nil || again != r {
			t.Fatalf("%q: canonical URL %q parses to %+v, %v, want %+v", s, canon, again, err, r)
		}
	})
}

// FuzzParseProxyAuth: accepted credentials are non-empty, the user has no
// colon, and encoding them again gives the same credentials.
func FuzzParseProxyAuth(f *testing.F) {
	for _, s := range []string{"Basic czE6dG9r", "basic czE6", "Basic OnRvaw==", "Bearer x", "Basic !!", "Basic czE6dG9rOjp4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		user, pass, ok := parseProxyAuth(h)
		if !ok {
			if user != "" || pass != "" {
				t.Fatalf("%q: rejected but returned %q, %q", h, user, pass)
			}
			return
		}
		if user == "" || pass == "" || strings.Contains(user, ":") {
			t.Fatalf("%q: user %q password %q", h, user, pass)
		}
		u2, p2, ok := parseProxyAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		if !ok || u2 != user || p2 != pass {
			t.Fatalf("%q: round trip gave %q, %q, %v", h, u2, p2, ok)
		}
	})
}

// FuzzMask: streaming a body through the masker in any chunking gives what
// masking it whole gives, has the body's length, and contains no secret.
func FuzzMask(f *testing.F) {
	f.Add([]byte("token abcdefgh and Bearer abcdefgh"), "Bearer abcdefgh", "abcdefgh", uint8(3))
	f.Add([]byte("aaaaaaa"), "aa", "aaa", uint8(1))
	f.Add([]byte("xyzw xy"), "xyzw", "xy", uint8(2))
	f.Add([]byte("**a*b"), "a*", "*b", uint8(1))
	f.Add([]byte(`{"t":"S3CRET\/tok%2Ben","b":"czNjcmV0L1RvaytlbjAx","h":"73336372"}`), "s3cret/Tok+en01", "Bearer s3cret/Tok+en01", uint8(4))
	f.Add([]byte(`&#x73;3cret&#47;tok\u002ben%`), "s3cret/tok+en", "x", uint8(5))
	f.Fuzz(func(t *testing.T, body []byte, s1, s2 string, chunk uint8) {
		var secrets [][]byte
		for _, s := range []string{s1, s2} {
			// Credential values: non-empty, no control characters.
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return
			}
			secrets = append(secrets, []byte(s))
		}
		m := newMasker(secrets)
		want := m.bytes(bytes.Clone(body))
		got, err := io.ReadAll(newMaskReader(io.NopCloser(&chunkReader{body, int(chunk%17) + 1}), m, nil))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("streamed %q, whole %q", got, want)
		}
		if len(got) != len(body) {
			t.Fatalf("length %d, want %d", len(got), len(body))
		}
		for _, s := range secrets {
			if bytes.Contains(got, s) {
				t.Fatalf("output %q contains secret %q", got, s)
			}
		}
		for i := range got {
			if got[i] != body[i] && got[i] != m.with {
				t.Fatalf("byte %d changed to %q", i, got[i])
			}
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}
