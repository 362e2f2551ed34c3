package policy

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/google/go-cmp/cmp"
)

// httpReq is a GET of https://host:443/path by session s1 of agent bot in
// group analytics.
func httpReq(host, path string) Request {
	return Request{
		Session: "s1", Agent: "bot", Sponsor: "alice", Groups: []string{"analytics"},
		Action: ActionHTTPRequest,
		HTTP:   &HTTPRequest{Method: "GET", Scheme: "https", Host: host, Port: 443, Path: path},
	}
}

// execReq runs command with args in /work by session s1 of agent bot in
// group dev.
func execReq(command string, args ...string) Request {
	return Request{
		Session: "s1", Agent: "bot", Groups: []string{"dev"},
		Action: ActionExec,
		Exec:   &ExecRequest{Command: command, Args: args, Dir: "/work"},
	}
}

func TestDecideHTTPAndExec(t *testing.T) {
	const policies = `
@id("api-read")
permit (principal in Group::"analytics", action == Action::"http_request", resource == Host::"api.example.com")
when { ["GET", "HEAD"].contains(context.method) && context.scheme == "https" && context.port == 443 && context.path like "/v1/*" };

@id("internal")
permit (principal, action == Action::"http_request", resource is Host)
when { context.host like "*.internal" };

@id("ipv6-loopback")
permit (principal, action, resource in Host::"::1");

@id("lethal-trifecta")
forbid (principal, action == Action::"http_request", resource)
when { context.taint.containsAll(["private", "untrusted"]) };

@id("git")
permit (principal in Group::"dev", action == Action::"exec", resource == Path::"/usr/bin/git")
when { context.cwd like "/work*" };

@id("no-force-push")
forbid (principal, action == Action::"exec", resource == Path::"/usr/bin/git")
when { context.args.contains("--force") || context.cmdline like "push -f*" };

@id("usr-bin")
permit (principal, action == Action::"exec", resource is Path)
when { context.command like "/usr/local/bin/*" && context.taint.isEmpty() };

@id("sales-data")
permit (principal, action == Action::"call_tool", resource == Tool::"db.query")
when { context has dataset && context.dataset == Dataset::"sales" };

@id("share-files")
permit (principal, action == Action::"call_tool", resource == Tool::"fs.read")
when { context has path && context.path like "/srv/share/*" };

@id("tainted-tools")
forbid (principal, action == Action::"call_tool", resource) when { context.taint.contains("untrusted") };
`
	set := mustParse(t, policies)
	if err := set.Validate(); err != nil {
		t.Fatalf("the test's policies do not validate: %v", err)
	}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	api := httpReq("api.example.com", "/v1/reports")
	tool := func(name, dataset, path string, taint ...string) Request {
		r := toolReq(strings.Split(name, ".")[0], strings.Split(name, ".")[1], "")
		r.Dataset, r.Path, r.Taint = dataset, path, taint
		return r
	}
	tests := []struct {
		name    string
		req     Request
		explain string
	}{
		{"host, method, scheme, port and path", api, `allowed by policy "api-read" (test.cedar:2:1)`},
		{"name set to the host", with(api, func(r *Request) { r.Name = "api.example.com" }), `allowed by policy "api-read" (test.cedar:2:1)`},
		{"HEAD", with(api, func(r *Request) {
			r.HTTP = &HTTPRequest{Method: "HEAD", Scheme: "https", Host: "api.example.com", Port: 443, Path: "/v1/"}
		}), `allowed by policy "api-read" (test.cedar:2:1)`},
		{"POST", with(api, func(r *Request) {
			r.HTTP = &HTTPRequest{Method: "POST", Scheme: "https", Host: "api.example.com", Port: 443, Path: "/v1/x"}
		}),
			`no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"plain http", with(api, func(r *Request) {
			r.HTTP = &HTTPRequest{Method: "GET", Scheme: "http", Host: "api.example.com", Port: 443, Path: "/v1/x"}
		}),
			`no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"other port", with(api, func(r *Request) {
			r.HTTP = &HTTPRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Port: 8443, Path: "/v1/x"}
		}),
			`no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"other path", httpReq("api.example.com", "/admin"), `no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"other group", with(api, func(r *Request) { r.Groups = []string{"sales"} }), `no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"subdomain is another host", httpReq("x.api.example.com", "/v1/a"), `no policy permits http_request on Host::"x.api.example.com" (default deny)`},
		{"host pattern", httpReq("db.internal", "/"), `allowed by policy "internal" (test.cedar:6:1)`},
		{"tunnel", with(api, func(r *Request) { r.HTTP = &HTTPRequest{Method: MethodConnect, Host: "api.example.com", Port: 443} }),
			`no policy permits http_request on Host::"api.example.com" (default deny)`},
		{"tunnel by host pattern", with(api, func(r *Request) { r.HTTP = &HTTPRequest{Method: MethodConnect, Host: "db.internal", Port: 5432} }),
			`allowed by policy "internal" (test.cedar:6:1)`},
		{"resource in a host", httpReq("::1", "/"), `allowed by policy "ipv6-loopback" (test.cedar:10:1)`},
		{"one taint label", with(api, func(r *Request) { r.Taint = []string{"private"} }), `allowed by policy "api-read" (test.cedar:2:1)`},
		{"lethal trifecta", with(api, func(r *Request) { r.Taint = []string{"untrusted", "private"} }), `denied by policy "lethal-trifecta" (test.cedar:13:1)`},
		{"exec", execReq("/usr/bin/git", "status"), `allowed by policy "git" (test.cedar:17:1)`},
		{"exec, name set to the command", with(execReq("/usr/bin/git"), func(r *Request) { r.Name = "/usr/bin/git" }), `allowed by policy "git" (test.cedar:17:1)`},
		{"exec elsewhere", with(execReq("/usr/bin/git"), func(r *Request) { r.Exec.Dir = "/etc" }), `no policy permits exec on Path::"/usr/bin/git" (default deny)`},
		{"exec, unknown cwd", with(execReq("/usr/bin/git"), func(r *Request) { r.Exec.Dir = "" }), `no policy permits exec on Path::"/usr/bin/git" (default deny)`},
		{"exec argument", execReq("/usr/bin/git", "push", "--force", "origin"), `denied by policy "no-force-push" (test.cedar:21:1)`},
		{"exec command line", execReq("/usr/bin/git", "push", "-f", "origin"), `denied by policy "no-force-push" (test.cedar:21:1)`},
		{"exec other group", with(execReq("/usr/bin/git"), func(r *Request) { r.Groups = nil }), `no policy permits exec on Path::"/usr/bin/git" (default deny)`},
		{"exec directory pattern", execReq("/usr/local/bin/tool"), `allowed by policy "usr-bin" (test.cedar:25:1)`},
		{"exec directory pattern, tainted", with(execReq("/usr/local/bin/tool"), func(r *Request) { r.Taint = []string{"untrusted"} }),
			`no policy permits exec on Path::"/usr/local/bin/tool" (default deny)`},
		{"dataset", tool("db.query", "sales", ""), `allowed by policy "sales-data" (test.cedar:29:1)`},
		{"other dataset", tool("db.query", "hr", ""), `no policy permits call_tool on Tool::"db.query" (default deny)`},
		{"no dataset", tool("db.query", "", ""), `no policy permits call_tool on Tool::"db.query" (default deny)`},
		{"path", tool("fs.read", "", "/srv/share/q3.csv"), `allowed by policy "share-files" (test.cedar:33:1)`},
		{"other path", tool("fs.read", "", "/etc/passwd"), `no policy permits call_tool on Tool::"fs.read" (default deny)`},
		{"no path", tool("fs.read", "", ""), `no policy permits call_tool on Tool::"fs.read" (default deny)`},
		{"tainted tool call", tool("fs.read", "", "/srv/share/q3.csv", "untrusted"), `denied by policy "tainted-tools" (test.cedar:37:1)`},
	}
	full := fullPolicySet(set)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.Decide(tt.req)
			if got := d.Explain(tt.req); got != tt.explain {
				t.Fatalf("Explain =\n  %s\nwant\n  %s", got, tt.explain)
			}
			if len(d.Errors) > 0 {
				t.Errorf("errors: %q", d.Errors)
			}
			if dec, _ := reference(t, full, tt.req); d.Allow != (dec == cedar.Allow) {
				t.Errorf("Decide allows %v, cedar.Authorize %v", d.Allow, dec)
			}
			may, wantMay := set.MayAllow(tt.req), batchMayAllow(t, full, tt.req)
			if may != wantMay || d.Allow && !may {
				t.Errorf("MayAllow = %v, batch %v, Decide %v", may, wantMay, d.Allow)
			}
		})
	}
}

func TestInvalidHTTPAndExec(t *testing.T) {
	set := mustParse(t, `permit (principal, action, resource);`)
	withHTTP := func(f func(*HTTPRequest)) Request { r := httpReq("api.example.com", "/v1"); f(r.HTTP); return r }
	withExec := func(f func(*ExecRequest)) Request { r := execReq("/usr/bin/git", "status"); f(r.Exec); return r }
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	tool := toolReq("fs", "read", "")
	tests := []struct {
		name string
		req  Request
		diag string // the whole diagnostic after "invalid request: "
	}{
		{"http without HTTP", with(httpReq("a.b", "/"), func(r *Request) { r.HTTP = nil }), "http_request without HTTP"},
		{"exec without Exec", with(execReq("/bin/sh"), func(r *Request) { r.Exec = nil }), "exec without Exec"},
		{"no host", withHTTP(func(h *HTTPRequest) { h.Host = "" }), "no host"},
		{"uppercase host", withHTTP(func(h *HTTPRequest) { h.Host = "API.example.com" }), `host "API.example.com" is not in canonical form "api.example.com"`},
		{"host with port", withHTTP(func(h *HTTPRequest) { h.Host = "api.example.com:443" }), `host "api.example.com:443" is neither a name nor an IP address (a port goes in Port)`},
		{"trailing dot", withHTTP(func(h *HTTPRequest) { h.Host = "api.example.com." }),
			`host "api.example.com." has an empty label, one longer than 63 characters, or one starting or ending with '-'`},
		{"host with a slash", withHTTP(func(h *HTTPRequest) { h.Host = "a.com/x" }), `host "a.com/x" has the character '/': a name is lowercase a-z, 0-9, '.', '_' and '-'`},
		{"non-ASCII host", withHTTP(func(h *HTTPRequest) { h.Host = "\u212aevil.com" }), `host "\u212aevil.com" has the character '\u212a': a name is lowercase a-z, 0-9, '.', '_' and '-'`},
		{"numeric last label", withHTTP(func(h *HTTPRequest) { h.Host = "127.1" }),
			`host "127.1" ends in a number, so resolvers may read it as an IPv4 address; write the address in dotted decimal`},
		{"hex last label", withHTTP(func(h *HTTPRequest) { h.Host = "0x7f.0x1" }),
			`host "0x7f.0x1" ends in a number, so resolvers may read it as an IPv4 address; write the address in dotted decimal`},
		{"IPv4 with leading zero", withHTTP(func(h *HTTPRequest) { h.Host = "127.0.0.01" }),
			`host "127.0.0.01" ends in a number, so resolvers may read it as an IPv4 address; write the address in dotted decimal`},
		{"bracketed IPv6", withHTTP(func(h *HTTPRequest) { h.Host = "[::1]" }), `host "[::1]" is not in canonical form "::1"`},
		{"long IPv6", withHTTP(func(h *HTTPRequest) { h.Host = "0:0:0:0:0:0:0:1" }), `host "0:0:0:0:0:0:0:1" is not in canonical form "::1"`},
		{"IPv4-mapped IPv6", withHTTP(func(h *HTTPRequest) { h.Host = "::ffff:10.0.0.1" }), `host "::ffff:10.0.0.1" is not in canonical form "10.0.0.1"`},
		{"zone", withHTTP(func(h *HTTPRequest) { h.Host = "fe80::1%eth0" }), `host "fe80::1%eth0" has a zone`},
		{"lowercase method", withHTTP(func(h *HTTPRequest) { h.Method = "delete" }), `method "delete" is not an HTTP method: 1-32 characters of an RFC 9110 token without lowercase letters`},
		{"no method", withHTTP(func(h *HTTPRequest) { h.Method = "" }), `method "" is not an HTTP method: 1-32 characters of an RFC 9110 token without lowercase letters`},
		{"method with a space", withHTTP(func(h *HTTPRequest) { h.Method = "GET /" }), `method "GET /" is not an HTTP method: 1-32 characters of an RFC 9110 token without lowercase letters`},
		{"scheme", withHTTP(func(h *HTTPRequest) { h.Scheme = "HTTPS" }), `scheme "HTTPS" is not http or https`},
		{"port 0", withHTTP(func(h *HTTPRequest) { h.Port = 0 }), "port 0 is not in 1-65535"},
		{"port too high", withHTTP(func(h *HTTPRequest) { h.Port = 65536 }), "port 65536 is not in 1-65535"},
		{"empty path", withHTTP(func(h *HTTPRequest) { h.Path = "" }), "path is not in RFC 3986 normal form (see CleanHTTPPath)"},
		{"no scheme", withHTTP(func(h *HTTPRequest) { h.Scheme = "" }), `scheme "" is not http or https`},
		{"tunnel with a path", withHTTP(func(h *HTTPRequest) { h.Method, h.Scheme = "CONNECT", "" }), `a CONNECT tunnel has scheme "" and path "": what goes through it is not seen`},
		{"tunnel with a scheme", withHTTP(func(h *HTTPRequest) { h.Method, h.Path = "CONNECT", "" }), `a CONNECT tunnel has scheme "" and path "": what goes through it is not seen`},
		{"relative path", withHTTP(func(h *HTTPRequest) { h.Path = "v1/secret-token" }), `path does not start with "/"`},
		{"path with query", withHTTP(func(h *HTTPRequest) { h.Path = "/v1?token=secret-token" }), `path holds '?' at offset 3: a query or fragment is not part of the path`},
		{"dot segment", withHTTP(func(h *HTTPRequest) { h.Path = "/v1/../secret-token" }), "path is not in RFC 3986 normal form (see CleanHTTPPath)"},
		{"encoded unreserved", withHTTP(func(h *HTTPRequest) { h.Path = "/%61dmin/secret-token" }), "path is not in RFC 3986 normal form (see CleanHTTPPath)"},
		{"lowercase hex", withHTTP(func(h *HTTPRequest) { h.Path = "/a%2fb/secret-token" }), "path is not in RFC 3986 normal form (see CleanHTTPPath)"},
		{"bad percent", withHTTP(func(h *HTTPRequest) { h.Path = "/secret-token%G0" }), "path has a malformed percent-encoding at offset 13"},
		{"raw space", withHTTP(func(h *HTTPRequest) { h.Path = "/secret token" }), "path is not in RFC 3986 normal form (see CleanHTTPPath)"},
		{"http with a server", with(httpReq("a.b", "/"), func(r *Request) { r.Server = "egress" }), `http_request takes no server, got "egress"`},
		{"http with another name", with(httpReq("a.b", "/"), func(r *Request) { r.Name = "c.d" }), `http_request name "c.d" is not its resource "a.b"`},
		{"http with arguments", with(httpReq("a.b", "/"), func(r *Request) { r.Arguments = json.RawMessage(`{}`) }), "http_request takes no arguments"},
		{"http with a verb", with(httpReq("a.b", "/"), func(r *Request) { r.Verb = "send" }), "http_request takes no verb"},
		{"http with impact", with(httpReq("a.b", "/"), func(r *Request) { r.Impact = map[string]int64{} }), "http_request takes no impact"},
		{"http with a dataset", with(httpReq("a.b", "/"), func(r *Request) { r.Dataset = "d" }), "http_request takes no dataset"},
		{"http with a path", with(httpReq("a.b", "/"), func(r *Request) { r.Path = "/x" }), "http_request takes no path"},
		{"http with Exec", with(httpReq("a.b", "/"), func(r *Request) { r.Exec = &ExecRequest{Command: "/bin/sh"} }), "http_request with Exec"},
		{"exec with HTTP", with(execReq("/bin/sh"), func(r *Request) { r.HTTP = &HTTPRequest{} }), "exec with HTTP"},
		{"relative command", withExec(func(e *ExecRequest) { e.Command = "git" }), `command "git" is not an absolute, clean path`},
		{"unclean command", withExec(func(e *ExecRequest) { e.Command = "/usr/bin/../bin/git" }), `command "/usr/bin/../bin/git" is not an absolute, clean path`},
		{"command with NUL", withExec(func(e *ExecRequest) { e.Command = "/bin/sh\x00x" }), "command is not valid UTF-8 without NUL"},
		{"no command", withExec(func(e *ExecRequest) { e.Command = "" }), "no command"},
		{"argument with NUL", withExec(func(e *ExecRequest) { e.Args = []string{"ok", "secret-token\x00"} }), "argument 2 is not valid UTF-8 without NUL"},
		{"argument not UTF-8", withExec(func(e *ExecRequest) { e.Args = []string{"secret-token\xff"} }), "argument 1 is not valid UTF-8 without NUL"},
		{"relative cwd", withExec(func(e *ExecRequest) { e.Dir = "work" }), `cwd "work" is not an absolute, clean path`},
		{"exec with a server", with(execReq("/bin/sh"), func(r *Request) { r.Server = "sh" }), `exec takes no server, got "sh"`},
		{"exec with arguments", with(execReq("/bin/sh"), func(r *Request) { r.Arguments = json.RawMessage(`null`) }), "exec takes no arguments"},
		{"tool call with HTTP", with(tool, func(r *Request) { r.HTTP = &HTTPRequest{} }), "call_tool with HTTP or Exec"},
		{"prompt with Exec", with(tool, func(r *Request) { r.Action, r.Exec = ActionGetPrompt, &ExecRequest{} }), "get_prompt with HTTP or Exec"},
		{"relative path of a tool", with(tool, func(r *Request) { r.Path = "srv/a" }), `path "srv/a" is not an absolute, clean path`},
		{"unclean path of a tool", with(tool, func(r *Request) { r.Path = "/srv/share/../../etc" }), `path "/srv/share/../../etc" is not an absolute, clean path`},
		{"empty taint label", with(tool, func(r *Request) { r.Taint = []string{"private", ""} }),
			`taint label "" is not 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or digit`},
		{"uppercase taint label", with(httpReq("a.b", "/"), func(r *Request) { r.Taint = []string{"Private"} }),
			`taint label "Private" is not 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or digit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.Decide(tt.req)
			if d.Allow || d.Escalate {
				t.Fatal("an invalid request was not denied")
			}
			want := invalidPrefix + tt.diag
			if len(d.Errors) != 1 || d.Errors[0] != want {
				t.Fatalf("Errors = %q, want [%q]", d.Errors, want)
			}
			if strings.Contains(d.Errors[0], "secret-token") {
				t.Errorf("diagnostic quotes a path or argument: %q", d.Errors[0])
			}
			if err := tt.req.Validate(); err == nil || err.Error() != want {
				t.Errorf("Validate = %v, want %s", err, want)
			}
			if set.MayAllow(tt.req) {
				t.Error("MayAllow = true for an invalid request")
			}
			if got := d.Explain(tt.req); got != "denied: "+want {
				t.Errorf("Explain = %q", got)
			}
		})
	}
	// Valid requests pass Validate, and what the normalizers return is
	// accepted.
	for _, r := range []Request{
		httpReq("api.example.com", "/v1"), httpReq("10.0.0.7", "/"), httpReq("::1", "/a%2Fb/~x/%C3%A9"),
		httpReq("xn--bcher-kva.example", "/"), httpReq("_srv.my-host.example", "/;a=b/@c:d"),
		{Session: "s", Agent: "a", Action: ActionHTTPRequest, HTTP: &HTTPRequest{Method: MethodConnect, Host: "a.example", Port: 443}},
		execReq("/usr/bin/git", "push", "a b", ""), with(execReq("/"), func(r *Request) { r.Exec.Dir = "" }),
		with(tool, func(r *Request) {
			r.Dataset, r.Path, r.Taint = "any name", "/", []string{"private", "untrusted", "a.b_c-d"}
		}),
	} {
		if err := r.Validate(); err != nil || !set.Decide(r).Allow {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"api.example.com", "api.example.com", ""},
		{"API.Example.COM", "api.example.com", ""},
		{"localhost", "localhost", ""},
		{"10.0.0.7", "10.0.0.7", ""},
		{"[2001:DB8::1]", "2001:db8::1", ""},
		{"2001:0db8:0:0:0:0:0:1", "2001:db8::1", ""},
		{"::ffff:127.0.0.1", "127.0.0.1", ""},
		{"[::ffff:127.0.0.1]", "127.0.0.1", ""},
		{"a-b_c.d", "a-b_c.d", ""},
		{"example.com:80", "", "(a port goes in Port)"},
		{"[::1]:80", "", "(a port goes in Port)"},
		{"[10.0.0.1]", "", "only IPv6 addresses go in brackets"},
		{"fe80::1%25eth0", "", "has a zone"},
		{"a.com%2F", "", "has the character '%'"},
		{"", "", "is empty"},
		{"a..b", "", "empty label"},
		{"-a.com", "", "starting or ending with '-'"},
		{strings.Repeat("a", 64) + ".com", "", "longer than 63"},
		{strings.Repeat("a.", 127) + "com", "", "longer than 253"},
		{"\u212a.com", "", "has the character"},
		{"1.2.3", "", "ends in a number"},
		{"0x7f000001", "", "ends in a number"},
		{"example.0xff", "", "ends in a number"},
		{"example.0xg", "example.0xg", ""},
	} {
		got, err := CanonicalHost(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "host ") {
				t.Errorf("CanonicalHost(%q) = %q, %v; want error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCleanHTTPPath(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"/", "/", ""},
		{"", "/", ""},
		{"/v1/reports", "/v1/reports", ""},
		{"/a/./b/../c/", "/a/c/", ""},
		{"/a/b/..", "/a/", ""},
		{"/a/b/.", "/a/b/", ""},
		{"/..", "/", ""},
		{"/../../etc/passwd", "/etc/passwd", ""},
		{"/a//../b", "/a/b", ""},
		{"//a", "//a", ""},
		{"/%61dmin", "/admin", ""},
		{"/%2e%2E/admin", "/admin", ""},
		{"/a%2fb", "/a%2Fb", ""},
		{"/%7e%7E", "/~~", ""},
		{"/caf\u00e9 x", "/caf%C3%A9%20x", ""},
		{"/a\"<>\\^`{|}", "/a%22%3C%3E%5C%5E%60%7B%7C%7D", ""},
		{"/!$&'()*+,;=:@", "/!$&'()*+,;=:@", ""},
		{"/%00", "/%00", ""},
		{"x", "", `does not start with "/"`},
		{"/a?b", "", "query or fragment"},
		{"/a#b", "", "query or fragment"},
		{"/a%", "", "malformed percent-encoding at offset 2"},
		{"/a%2", "", "malformed percent-encoding"},
		{"/a%zz", "", "malformed percent-encoding"},
	} {
		got, err := CleanHTTPPath(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("CleanHTTPPath(%q) = %q, %v; want error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanHTTPPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		// The result is what url.Parse reads back as the same path.
		if u, err := url.Parse("https://h" + got); err != nil || u.EscapedPath() != got && u.Path != mustUnescape(t, got) {
			t.Errorf("CleanHTTPPath(%q) = %q, which net/url reads as %q (%v)", tt.in, got, u, err)
		}
	}
}

func mustUnescape(t *testing.T, p string) string {
	t.Helper()
	s, err := url.PathUnescape(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzCleanHTTPPath: CleanHTTPPath never panics; what it returns is in
// normal form (Decide accepts it, cleaning it again changes nothing), is
// ASCII without query, fragment or dot segments, and means the same path
// as its input once dot segments are resolved, as net/url reads both.
func FuzzCleanHTTPPath(f *testing.F) {
	for _, s := range []string{"/", "", "/a/../b", "/%2e%2e/x", "/%7e", "/a%2Fb", "/é", "/a?b", "/%", "//a/./", "/%2F..%2F"} {
		f.Add(s)
	}
	set := mustParse(f, `permit (principal, action, resource);`)
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanHTTPPath(p)
		if err != nil {
			if strings.Contains(err.Error(), p) && len(p) > 3 {
				t.Fatalf("error quotes the path: %v", err)
			}
			return
		}
		again, err := CleanHTTPPath(c)
		if err != nil || again != c || !normalPath(c) {
			t.Fatalf("CleanHTTPPath(%q) = %q is not normal: again %q, %v", p, c, again, err)
		}
		if hasDotSegment(c) || strings.ContainsAny(c, "?#") || !strings.HasPrefix(c, "/") {
			t.Fatalf("CleanHTTPPath(%q) = %q", p, c)
		}
		for i := 0; i < len(c); i++ {
			if c[i] >= 0x80 || c[i] <= ' ' {
				t.Fatalf("CleanHTTPPath(%q) = %q holds byte %#x", p, c, c[i])
			}
		}
		if d := set.Decide(httpReq("a.example", c)); !d.Allow {
			t.Fatalf("Decide refuses the clean path %q: %v", c, d.Errors)
		}
		// Same path: decoding both (without dot segments) gives the same bytes.
		u, err1 := url.PathUnescape(strings.ReplaceAll(c, "%2F", "%252F"))
		if p == "" {
			return
		}
		v, err2 := url.PathUnescape(strings.ReplaceAll(removeDotSegments(decodeUnreserved(p)), "%2F", "%252F"))
		if err1 == nil && err2 == nil && u != v {
			t.Fatalf("CleanHTTPPath(%q) = %q: decoded %q, input decoded %q", p, c, u, v)
		}
	})
}

// decodeUnreserved decodes the percent-encoded unreserved characters of a
// path, as RFC 3986 normalization does before removing dot segments, and
// nothing else: an independent, simpler version for FuzzCleanHTTPPath.
func decodeUnreserved(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && unhex(p[i+1]) >= 0 && unhex(p[i+2]) >= 0 {
			if c := byte(unhex(p[i+1])<<4 | unhex(p[i+2])); unreserved(c) {
				b.WriteByte(c)
				i += 2
				continue
			}
			b.WriteString(strings.ToUpper(p[i : i+3]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// FuzzCanonicalHost: CanonicalHost never panics; what it returns is
// canonical (again unchanged, accepted by Decide as the request's host),
// lowercase ASCII without a port, and an IP address only if the input
// was one.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"example.com", "EXAMPLE.com", "10.0.0.1", "[::1]", "::ffff:1.2.3.4", "a.com:80", "127.1", "\u212a.com", "xn--bcher-kva.ch", "a..b", "[10.0.0.1]"} {
		f.Add(s)
	}
	set := mustParse(f, `permit (principal, action, resource);`)
	f.Fuzz(func(t *testing.T, h string) {
		c, err := CanonicalHost(h)
		if err != nil {
			return
		}
		if again, err := CanonicalHost(c); err != nil || again != c {
			t.Fatalf("CanonicalHost(%q) = %q, again %q, %v", h, c, again, err)
		}
		if msg := checkHost(c); msg != "" {
			t.Fatalf("CanonicalHost(%q) = %q, refused: %s", h, c, msg)
		}
		if c == "" || strings.ContainsAny(c, "[]%/") || strings.ToLower(c) != c || strings.IndexFunc(c, func(r rune) bool { return r >= 0x80 }) >= 0 {
			t.Fatalf("CanonicalHost(%q) = %q", h, c)
		}
		if strings.Contains(c, ":") && !strings.Contains(h, ":") {
			t.Fatalf("CanonicalHost(%q) = %q gained a colon", h, c)
		}
		r := httpReq(c, "/")
		if d := set.Decide(r); !d.Allow || string(resourceUID(r).ID) != c {
			t.Fatalf("Decide refuses the canonical host %q: %v", c, d.Errors)
		}
	})
}

// FuzzHTTPRequest feeds arbitrary methods, schemes, hosts, ports, paths and
// taint labels to Decide. It never panics and is deterministic; it allows a
// request only if every field is in the documented form, and then agrees
// with cedar.Authorize.
func FuzzHTTPRequest(f *testing.F) {
	f.Add("GET", "https", "api.example.com", 443, "/v1/a", "private")
	f.Add("get", "https", "api.example.com", 443, "/v1/a", "")
	f.Add("DELETE", "http", "API.example.com:80", 0, "/a/../b?x", "Private")
	f.Add("M-SEARCH", "https", "::1", 65535, "/%41", "untrusted")
	f.Add("CONNECT", "", "a.example", 443, "", "")
	f.Add("CONNECT", "https", "a.example", 443, "/", "")
	set := mustParse(f, `
permit (principal, action == Action::"http_request", resource)
when { context.method like "*E*" && context.port > 80 && context.path like "/*" };
forbid (principal, action == Action::"http_request", resource == Host::"evil.test");
forbid (principal, action, resource) when { context.taint.contains("untrusted") && context.method == "POST" };
`)
	full := fullPolicySet(set)
	f.Fuzz(func(t *testing.T, method, scheme, host string, port int, path, label string) {
		req := httpReq(host, path)
		req.HTTP.Method, req.HTTP.Scheme, req.HTTP.Port = method, scheme, port
		if label != "" {
			req.Taint = []string{label}
		}
		d := set.Decide(req)
		if diff := cmp.Diff(d, set.Decide(req)); diff != "" {
			t.Fatalf("Decide not deterministic:\n%s", diff)
		}
		_ = d.Explain(req)
		if err := req.Validate(); err != nil {
			if d.Allow || len(d.Errors) != 1 || d.Errors[0] != err.Error() {
				t.Fatalf("invalid request %+v decided %+v (Validate: %v)", *req.HTTP, d, err)
			}
			return
		}
		h := req.HTTP
		if c, err := CanonicalHost(h.Host); err != nil || c != h.Host {
			t.Fatalf("accepted host %q (canonical %q, %v)", h.Host, c, err)
		}
		tunnel := h.Method == MethodConnect && h.Scheme == "" && h.Path == ""
		if c, err := CleanHTTPPath(h.Path); !tunnel && (err != nil || c != h.Path) {
			t.Fatalf("accepted path %q (clean %q, %v)", h.Path, c, err)
		}
		if !validMethod(h.Method) || h.Method != strings.ToUpper(h.Method) || h.Port < 1 || h.Port > 65535 || !tunnel && h.Scheme != "http" && h.Scheme != "https" {
			t.Fatalf("accepted %+v", *h)
		}
		if label != "" && !validLabel(label) {
			t.Fatalf("accepted taint label %q", label)
		}
		dec, _ := reference(t, full, req)
		if d.Allow != (dec == cedar.Allow) {
			t.Fatalf("Decide %v, cedar.Authorize %v on %+v", d.Allow, dec, *h)
		}
	})
}

func TestPreparedKeyHTTPAndExec(t *testing.T) {
	// A nil HTTP, an HTTP for another host and an Exec must not share a
	// key, or the cache would hand one request another's entities.
	reqs := []Request{
		{Session: "s", Agent: "a", Action: ActionHTTPRequest},
		{Session: "s", Agent: "a", Action: ActionHTTPRequest, HTTP: &HTTPRequest{}},
		{Session: "s", Agent: "a", Action: ActionHTTPRequest, HTTP: &HTTPRequest{Host: "a.b"}},
		{Session: "s", Agent: "a", Action: ActionHTTPRequest, HTTP: &HTTPRequest{Host: "c.d"}},
		{Session: "s", Agent: "a", Action: ActionHTTPRequest, Exec: &ExecRequest{Command: "a.b"}},
		{Session: "s", Agent: "a", Action: ActionExec, Exec: &ExecRequest{Command: "/a"}},
		{Session: "s", Agent: "a", Action: ActionExec, Exec: &ExecRequest{Command: "/b"}},
	}
	var keys []string
	for _, r := range reqs {
		keys = append(keys, preparedKey(r))
	}
	if len(slices.Compact(slices.Sorted(slices.Values(keys)))) != len(keys) {
		t.Fatalf("requests share a key: %q", keys)
	}
	// The same through Decide: a cached valid request does not make an
	// invalid one with the same key valid.
	set := mustParse(t, `permit (principal, action, resource);`)
	ok := httpReq("a.b", "/")
	if !set.Decide(ok).Allow {
		t.Fatal("valid request denied")
	}
	bad := ok
	bad.HTTP = &HTTPRequest{Method: "GET", Scheme: "https", Host: "a.b", Port: 0, Path: "/"}
	if set.Decide(bad).Allow {
		t.Fatal("port 0 allowed after a cached valid request for the same host")
	}
	call := toolReq("fs", "read", "")
	if !set.Decide(call).Allow {
		t.Fatal("valid tool call denied")
	}
	call.HTTP = ok.HTTP
	if set.Decide(call).Allow {
		t.Fatal("tool call with HTTP allowed after a cached valid one")
	}
}

// TestIndexHostsAndPaths checks which policies the index hands cedar for
// requests on hosts and paths: exactly those whose scope can match.
func TestIndexHostsAndPaths(t *testing.T) {
	set := mustParse(t, `
@id("any") permit (principal, action, resource);
@id("http") permit (principal, action == Action::"http_request", resource);
@id("http-set") permit (principal, action in [Action::"exec", Action::"http_request"], resource);
@id("host-a") permit (principal, action == Action::"http_request", resource == Host::"a.example");
@id("host-b") permit (principal, action == Action::"http_request", resource == Host::"b.example");
@id("in-host-a") permit (principal, action, resource in Host::"a.example");
@id("is-host") permit (principal, action, resource is Host);
@id("is-host-in-a") permit (principal, action, resource is Host in Host::"a.example");
@id("server") permit (principal, action, resource in Server::"a.example");
@id("tool") permit (principal, action == Action::"call_tool", resource);
@id("path-git") permit (principal, action == Action::"exec", resource == Path::"/usr/bin/git");
@id("in-path-bin") permit (principal, action == Action::"exec", resource in Path::"/usr/bin");
@id("is-path") permit (principal, action, resource is Path);
@id("other-group") permit (principal in Group::"other", action, resource);
`)
	ids := func(r Request) []string {
		p, msg := prepare(r)
		if msg != "" {
			t.Fatal(msg)
		}
		c := set.index.candidates(&p.ents, p.action, p.resource, p.ents.server.UID)
		var out []string
		for id := range c.All() {
			out = append(out, string(id))
		}
		slices.Sort(out)
		return out
	}
	if diff := cmp.Diff([]string{"any", "host-a", "http", "http-set", "in-host-a", "is-host", "is-host-in-a"}, ids(httpReq("a.example", "/"))); diff != "" {
		t.Errorf("host a (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"any", "http", "http-set", "is-host"}, ids(httpReq("c.example", "/"))); diff != "" {
		t.Errorf("host c (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"any", "http-set", "is-path", "path-git"}, ids(execReq("/usr/bin/git"))); diff != "" {
		t.Errorf("exec (-want +got):\n%s", diff)
	}
}
