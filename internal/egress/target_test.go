package egress

import (
	"bytes"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		err  string
	}{
		{"example.com:443", "example.com", 443, ""},
		{"API.Example.COM.:8443", "api.example.com", 8443, ""},
		{"127.0.0.1:80", "127.0.0.1", 80, ""},
		{"[::1]:443", "::1", 443, ""},
		{"[::ffff:10.0.0.1]:443", "10.0.0.1", 443, ""},
		{"[2001:DB8::1]:1", "2001:db8::1", 1, ""},
		{"_srv.example.com:443", "_srv.example.com", 443, ""},
		{"example.com", "", 0, "missing port"},
		{"example.com:", "", 0, "bad port"},
		{":443", "", 0, "empty host"},
		{"[::1", "", 0, "missing ']'"},
		{"[::1]", "", 0, "missing port"},
		{"[::1]x:443", "", 0, "unexpected text"},
		{"[fe80::1%eth0]:443", "", 0, "bad IPv6"},
		{"[1.2.3.4]:443", "", 0, "bad IPv6"},
		{"::1:443", "", 0, "bad host name"},
		{"example.com:0", "", 0, "out of range"},
		{"example.com:65536", "", 0, "out of range"},
		{"example.com:080080", "", 0, "bad port"},
		{"example.com:-1", "", 0, "bad port"},
		{"user@example.com:443", "", 0, "bad host name"},
		{"exa mple.com:443", "", 0, "bad host name"},
		{"-bad.com:443", "", 0, "bad host name"},
		{"a..b:443", "", 0, "bad host name"},
		{"bücher.de:443", "", 0, "bad host name"},
		{"2130706433:443", "", 0, "numeric"},
		{"127.1:443", "", 0, "numeric"},
		{"0x7f.1:443", "", 0, "numeric"},
		{"010.0.0.1:443", "", 0, "numeric"},
		{strings.Repeat("a.", 130) + "com:443", "", 0, "too long"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := parseAuthority(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v, want error with %q", r, err, tc.err)
				}
				return
			}
			want := Request{Method: "CONNECT", Host: tc.host, Port: tc.port, Tunnel: true}
			if err != nil || r != want {
				t.Fatalf("got %+v, %v, want %+v", r, err, want)
			}
		})
	}
}

func TestParseAbsolute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		err  string
	}{
		{"http://example.com", Request{Method: "GET", Scheme: "http", Host: "example.com", Port: 80, Path: "/"}, ""},
		{"HTTPS://Example.com/a%2Fb?q=1#f", Request{Method: "GET", Scheme: "https", Host: "example.com", Port: 443, Path: "/a%2Fb"}, ""},
		{"http://[::1]:8080/x", Request{Method: "GET", Scheme: "http", Host: "::1", Port: 8080, Path: "/x"}, ""},
		{"http://user@example.com/", Request{}, "userinfo"},
		{"http://:pw@example.com/", Request{}, "userinfo"},
		{"ftp://example.com/", Request{}, "not http or https"},
		{"http:///path", Request{}, "no host"},
		{"http://example.com:99999/", Request{}, "out of range"},
		{"http://example.com:/", Request{}, "bad port"},
		{"http://127.0.0.1.5/", Request{}, "numeric"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseAbsolute("GET", u)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v, want error with %q", r, err, tc.err)
				}
				return
			}
			if err != nil || r != tc.want {
				t.Fatalf("got %+v, %v, want %+v", r, err, tc.want)
			}
		})
	}
}

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1:248:1893:25c8:1946", true},
		{"64:ff9b::5db8:d822", true}, // NAT64 of 93.184.216.34
		{"127.0.0.1", false},
		{"127.255.0.9", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.1.2.3", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fd00::1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"100.100.100.100", false},
		{"198.18.0.1", false},
		{"240.0.0.1", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"64:ff9b:1::1", false},
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
		{"2001:db8::1", false},
		{"::127.0.0.1", false},
	} {
		if got := PublicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("PublicAddr(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
	if PublicAddr(netip.Addr{}) {
		t.Errorf("PublicAddr(zero) = true")
	}
}

func TestParseProxyAuth(t *testing.T) {
	for _, tc := range []struct {
		h, user, pass string
		ok            bool
	}{
		{"Basic czE6dG9r", "s1", "tok", true},
		{"basic czE6dG9r", "s1", "tok", true},
		{"Basic czE6dG9rOmV4dHJh", "s1", "tok:extra", true},
		{"Basic czE6", "", "", false},     // "s1:"
		{"Basic OnRvaw==", "", "", false}, // ":tok"
		{"Basic czE", "", "", false},
		{"Bearer czE6dG9r", "", "", false},
		{"Basic", "", "", false},
		{"", "", "", false},
	} {
		user, pass, ok := parseProxyAuth(tc.h)
		if user != tc.user || pass != tc.pass || ok != tc.ok {
			t.Errorf("parseProxyAuth(%q) = %q, %q, %v", tc.h, user, pass, ok)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	ca, caKey := newCA(t)
	_, otherKey := newCA(t)
	const secret = "Bearer top-secret-value-123"
	base := func() Config {
		return Config{Auth: fakeAuth{t}, Decider: &fakeDecider{t: t}, Recorder: newRecorder(t), CA: ca, CAKey: caKey}
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		err    string
	}{
		{"ok", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "Authorization", secret}} }, ""},
		{"no decider", func(c *Config) { c.Decider = nil }, "required"},
		{"no recorder", func(c *Config) { c.Recorder = nil }, "required"},
		{"negative limit", func(c *Config) { c.MaxTunnels = -1 }, "negative"},
		{"no CA", func(c *Config) {
			c.CA = nil
			c.Credentials = []Credential{{"api.example.com", "Authorization", secret}}
		}, "need CA"},
		{"wrong CA key", func(c *Config) {
			c.CAKey = otherKey
			c.Credentials = []Credential{{"api.example.com", "Authorization", secret}}
		}, "does not match"},
		{"bad host", func(c *Config) { c.Credentials = []Credential{{"api.example.com/x", "Authorization", secret}} }, "host"},
		{"duplicate", func(c *Config) {
			c.Credentials = []Credential{{"api.example.com", "Authorization", secret}, {"API.example.com", "X-Key", secret}}
		}, "duplicate"},
		{"hop header", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "Connection", secret}} }, "cannot carry"},
		{"proxy header", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "Proxy-Authorization", secret}} }, "cannot carry"},
		{"bad header", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "X Key", secret}} }, "cannot carry"},
		{"newline", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "X-Key", secret + "\r\nX-Evil: 1"}} }, "control"},
		{"empty value", func(c *Config) { c.Credentials = []Credential{{"api.example.com", "X-Key", ""}} }, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.change(&cfg)
			_, err := New(cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want error with %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "top-secret") {
				t.Errorf("error leaks the credential: %v", err)
			}
		})
	}
}

func TestCredentialString(t *testing.T) {
	c := Credential{Host: "api.example.com", Header: "Authorization", Value: "Bearer top-secret-value-123"}
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, "top-secret") || !strings.Contains(s, "api.example.com") {
			t.Errorf("Credential formats as %q", s)
		}
	}
}

func TestMaskReader(t *testing.T) {
	m := newMasker([][]byte{[]byte("Bearer sk-0123456789"), []byte("sk-0123456789")})
	in := "a Bearer sk-0123456789 b sk-0123456789sk-0123456789 Bearer sk-01234 Bearer"
	want := "a ******************** b ************************** Bearer sk-01234 Bearer"
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
	} {
		got, err := io.ReadAll(newMaskReader(io.NopCloser(r), m, nil))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v, want %q", name, got, err, want)
		}
	}
	if got := m.bytes([]byte(in)); !bytes.Equal(got, []byte(want)) {
		t.Errorf("bytes: %q", got)
	}
}
