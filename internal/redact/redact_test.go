package redact_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ward-dev/ward/internal/redact"
)

var salt = []byte("0123456789abcdef")

func mustNew(t testing.TB, cfg redact.Config) *redact.Redactor {
	t.Helper()
	if cfg.Salt == nil {
		cfg.Salt = salt
	}
	r, err := redact.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// marked replaces every «value» in want by the marker of value.
var marked = regexp.MustCompile(`«([^»]*)»`)

func expand(r *redact.Redactor, want string) string {
	return marked.ReplaceAllStringFunc(want, func(m string) string {
		return r.Hash([]byte(strings.TrimSuffix(strings.TrimPrefix(m, "«"), "»")))
	})
}

func TestJSON(t *testing.T) {
	const pem = `-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----`
	for _, tc := range []struct {
		name       string
		rules      []redact.Rule
		noDefaults bool
		tool       string // default "mail.send"
		in, want   string
		paths      []string
	}{
		{
			name:  "issue example",
			in:    `{"to":"bob@example.com","password":"hunter2","note":"key AKIAABCDEFGHIJKLMNOP"}`,
			want:  `{"to":"bob@example.com","password":"«hunter2»","note":"key «AKIAABCDEFGHIJKLMNOP»"}`,
			paths: []string{"note", "password"},
		},
		{
			name: "secret member names at any depth, whatever the value",
			in: `{"db":{"Password":"p1","port":5432},"headers":{"X-Api-Key":"k","Set-Cookie":["a","b"],"Accept":"*/*"},` +
				`"client_secret":{"v": 1},"items":[{"access_token":"t"}],"GITHUB_TOKEN":"g","auth":"x","pwd":"y",` +
				`"max_tokens":100,"token_type":"bearer","passphrase":null}`,
			want: `{"db":{"Password":"«p1»","port":5432},"headers":{"X-Api-Key":"«k»","Set-Cookie":"«["a","b"]»","Accept":"*/*"},` +
				`"client_secret":"«{"v":1}»","items":[{"access_token":"«t»"}],"GITHUB_TOKEN":"«g»","auth":"«x»","pwd":"«y»",` +
				`"max_tokens":100,"token_type":"bearer","passphrase":"«null»"}`,
			paths: []string{"GITHUB_TOKEN", "auth", "client_secret", "db.Password", "headers.Set-Cookie", "headers.X-Api-Key", "items.0.access_token", "passphrase", "pwd"},
		},
		{
			name: "default value patterns",
			in: `["Authorization: Bearer abc.DEF-123", "basic dXNlcjpwYXNzd29yZA==", "postgres://app:s3cr3t@db:5432/x",` +
				`"ghp_0123456789abcdefghijABCDEFGHIJ012345", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",` +
				`"xoxb-1234567890-abcdef", "sk-proj-abcdefghijklmnopqrstuv", "sk_live_0123456789abcdefgh",` +
				`"AIzaSyA-0123456789abcdefghijklmnopqrstu", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "ASIA0123456789ABCDEF",` +
				`"` + pem + ` tail", "-----BEGIN PRIVATE KEY-----\nMIIE unterminated"]`,
			want: `["Authorization: Bearer «abc.DEF-123»","basic «dXNlcjpwYXNzd29yZA==»","postgres://app:«s3cr3t»@db:5432/x",` +
				`"«ghp_0123456789abcdefghijABCDEFGHIJ012345»","«github_pat_11ABCDEFG0123456789_abcdefghijklmnop»",` +
				`"«xoxb-1234567890-abcdef»","«sk-proj-abcdefghijklmnopqrstuv»","«sk_live_0123456789abcdefgh»",` +
				`"«AIzaSyA-0123456789abcdefghijklmnopqrstu»","«eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln»","«ASIA0123456789ABCDEF»",` +
				"\"«-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----» tail\",\"«-----BEGIN PRIVATE KEY-----\nMIIE unterminated»\"]",
			paths: []string{"0", "1", "10", "11", "12", "2", "3", "4", "5", "6", "7", "8", "9"},
		},
		{
			name:  "look-alikes are kept",
			in:    `{"task":"task-abcdefghijklmnopqrstuvwxyz","how":"Basic usage","url":"https://example.com/a:b","n":"AKIA123"}`,
			want:  `{"task":"task-abcdefghijklmnopqrstuvwxyz","how":"Basic usage","url":"https://example.com/a:b","n":"AKIA123"}`,
			paths: nil,
		},
		{
			name:       "no defaults",
			noDefaults: true,
			in:         `{"password":"hunter2","note":"key AKIAABCDEFGHIJKLMNOP"}`,
			want:       `{"password":"hunter2","note":"key AKIAABCDEFGHIJKLMNOP"}`,
		},
		{
			name:       "path rule replaces a whole value, hashed as compact JSON as written",
			noDefaults: true,
			rules:      []redact.Rule{{Path: "credentials"}},
			in:         `{"credentials": {"user": "u", "n": 1.50e3, "s": "\u00e9<"}, "keep": 1.50e3}`,
			want:       `{"credentials":"«{"user":"u","n":1.50e3,"s":"é<"}»","keep":1.50e3}`,
			paths:      []string{"credentials"},
		},
		{
			name:       "star matches any member or index",
			noDefaults: true,
			rules:      []redact.Rule{{Path: "headers.*"}, {Path: "items.*.id"}},
			in:         `{"headers":{"a":"1","b":2},"items":[{"id":7,"x":1},{"id":"8"}],"id":9}`,
			want:       `{"headers":{"a":"«1»","b":"«2»"},"items":[{"id":"«7»","x":1},{"id":"«8»"}],"id":9}`,
			paths:      []string{"headers.a", "headers.b", "items.0.id", "items.1.id"},
		},
		{
			name:       "escaped dot names one member",
			noDefaults: true,
			rules:      []redact.Rule{{Path: `a\.b`}},
			in:         `{"a.b":"x","a":{"b":"y"}}`,
			want:       `{"a.b":"«x»","a":{"b":"y"}}`,
			paths:      []string{`a\.b`},
		},
		{
			name:       "rule for another tool does not apply",
			noDefaults: true,
			rules:      []redact.Rule{{Tool: "fs.*", Path: "body"}, {Tool: "mail.sen", Path: "to"}, {Tool: "mail.send", Path: "cc"}},
			in:         `{"body":"b","to":"t","cc":"c"}`,
			want:       `{"body":"b","to":"t","cc":"«c»"}`,
			paths:      []string{"cc"},
		},
		{
			name:       "tool prefix and star",
			noDefaults: true,
			rules:      []redact.Rule{{Tool: "mail.*", Path: "body"}, {Tool: "*", Path: "to"}, {Path: "cc"}},
			in:         `{"body":"b","to":"t","cc":"c"}`,
			want:       `{"body":"«b»","to":"«t»","cc":"«c»"}`,
			paths:      []string{"body", "cc", "to"},
		},
		{
			name:       "pattern everywhere, in strings only",
			noDefaults: true,
			rules:      []redact.Rule{{Pattern: `\d{3}-\d{4}`}},
			in:         `{"a":"call 555-1234 or 555-9876","b":[5551234,"x555-0000"],"555-1111":true}`,
			want:       `{"a":"call «555-1234» or «555-9876»","b":[5551234,"x«555-0000»"],"555-1111":true}`,
			paths:      []string{"a", "b.1"},
		},
		{
			name:       "pattern under a path",
			noDefaults: true,
			rules:      []redact.Rule{{Path: "body", Pattern: `secret\w*`}},
			in:         `{"body":{"text":"the secretword"},"subject":"secretword"}`,
			want:       `{"body":{"text":"the «secretword»"},"subject":"secretword"}`,
			paths:      []string{"body.text"},
		},
		{
			name:       "named group replaces only its part",
			noDefaults: true,
			rules:      []redact.Rule{{Pattern: `pin=(?P<secret>\d+)`}},
			in:         `"pin=1234;pin=99"`,
			want:       `"pin=«1234»;pin=«99»"`,
			paths:      []string{""},
		},
		{
			name:  "markers are left alone and reported",
			in:    `{"password":"redacted:hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","n":"x redacted:hmac-sha256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}`,
			want:  `{"password":"redacted:hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","n":"x redacted:hmac-sha256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}`,
			paths: []string{"n", "password"},
		},
		{
			name:  "scalars and escapes pass through",
			in:    ` [1e400, -0, "\u00e9\t", true, null, {}] `,
			want:  "[1e400,-0,\"é\\t\",true,null,{}]",
			paths: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, redact.Config{Rules: tc.rules, NoDefaults: tc.noDefaults})
			tool := tc.tool
			if tool == "" {
				tool = "mail.send"
			}
			out, paths, err := r.JSON(tool, []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := expand(r, tc.want); string(out) != want {
				t.Errorf("JSON =\n%s\nwant\n%s", out, want)
			}
			if diff := cmp.Diff(tc.paths, paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			again, paths2, err := r.JSON(tool, out)
			if err != nil || !bytes.Equal(again, out) || !cmp.Equal(paths, paths2) {
				t.Errorf("not idempotent: %s %v %v", again, paths2, err)
			}
		})
	}
}

func TestJSONRefuses(t *testing.T) {
	r := mustNew(t, redact.Config{Rules: []redact.Rule{{Path: "deep"}}})
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "unexpected end"},
		{"truncated", `{"a":[1,2`, "invalid JSON"},
		{"not JSON", `{a:1}`, "invalid JSON at byte 1"},
		{"duplicate names, without the name", `{"password":1,"password":2}`, "duplicate member name"},
		{"two values", `{} {}`, "more than one top-level value"},
		{"invalid UTF-8", "\"\xff\"", "invalid UTF-8"},
		{"too deep", nest(redact.MaxDepth + 1), "nested deeper than 64"},
		{"too deep inside a replaced value", `{"deep":` + nest(redact.MaxDepth) + `}`, "nested deeper than 64"},
		{"too large", `"` + strings.Repeat("a", redact.MaxSize) + `"`, "more than 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := r.JSON("t", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("JSON(%.40q) = %s, %v; want error containing %q", tc.in, out, err, tc.want)
			}
			if strings.Contains(err.Error(), "password") {
				t.Fatalf("error quotes the input: %v", err)
			}
		})
	}
	if _, _, err := r.JSON("t", []byte(nest(redact.MaxDepth))); err != nil {
		t.Fatalf("nesting of exactly MaxDepth: %v", err)
	}
	if _, _, err := r.JSON("t", []byte(`{"deep":`+nest(redact.MaxDepth-1)+`}`)); err != nil {
		t.Fatalf("replaced value nested to exactly MaxDepth: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  redact.Config
		want string
	}{
		{"short salt", redact.Config{Salt: []byte("short")}, "salt of 5 bytes, want at least 16"},
		{"empty rule", redact.Config{Rules: []redact.Rule{{Path: "a"}, {Tool: "x"}}}, "rule 1: needs a path or a pattern"},
		{"bad regexp", redact.Config{Rules: []redact.Rule{{Pattern: "a("}}}, "rule 0: pattern: error parsing regexp"},
		{"empty match", redact.Config{Rules: []redact.Rule{{Pattern: "a*"}}}, `rule 0: pattern "a*" matches the empty string`},
		{"star inside tool", redact.Config{Rules: []redact.Rule{{Tool: "m*.send", Path: "a"}}}, `rule 0: tool "m*.send": '*' is allowed only at the end`},
		{"empty segment", redact.Config{Rules: []redact.Rule{{Path: "a..b"}}}, `rule 0: path "a..b": empty segment`},
		{"leading dot", redact.Config{Rules: []redact.Rule{{Path: ".a"}}}, "empty segment"},
		{"trailing dot", redact.Config{Rules: []redact.Rule{{Path: "a."}}}, "empty segment"},
		{"partial star", redact.Config{Rules: []redact.Rule{{Path: "a*"}}}, "'*' must be a whole segment"},
		{"star prefix", redact.Config{Rules: []redact.Rule{{Path: "*a"}}}, "'*' must be a whole segment"},
		{"star beside an escaped star", redact.Config{Rules: []redact.Rule{{Path: `\**`}}}, "'*' must be a whole segment"},
		{"dangling escape", redact.Config{Rules: []redact.Rule{{Path: `a\`}}}, `'\' must be followed by`},
		{"unknown escape", redact.Config{Rules: []redact.Rule{{Path: `a\n`}}}, `'\' must be followed by`},
		{"too many segments", redact.Config{Rules: []redact.Rule{{Path: strings.Repeat("a.", redact.MaxDepth) + "a"}}}, "more than 64 segments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Salt == nil {
				tc.cfg.Salt = salt
			}
			_, err := redact.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v; want error containing %q", err, tc.want)
			}
		})
	}
	// Escapes that are allowed.
	r := mustNew(t, redact.Config{NoDefaults: true, Rules: []redact.Rule{{Path: `\*.\\.x\.y`}}})
	out, paths, err := r.JSON("t", []byte(`{"*":{"\\":{"x.y":1,"x":{"y":2}}},"a":{"\\":{"x.y":3}}}`))
	if err != nil || !strings.Contains(string(out), `"a":{"\\":{"x.y":3}}`) || !cmp.Equal(paths, []string{`\*.\\.x\.y`}) {
		t.Fatalf("escaped path: %s %v %v", out, paths, err)
	}
}

// TestHash: the marker is HMAC-SHA256 under the salt, so an operator who
// holds the salt can check a guess; another salt gives another marker.
func TestHash(t *testing.T) {
	r := mustNew(t, redact.Config{})
	mac := hmac.New(sha256.New, salt)
	mac.Write([]byte("hunter2"))
	want := "redacted:hmac-sha256:" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if got := r.Hash([]byte("hunter2")); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
	other := mustNew(t, redact.Config{Salt: []byte("fedcba9876543210")})
	if other.Hash([]byte("hunter2")) == want {
		t.Fatal("markers do not depend on the salt")
	}
	// The salt is copied: changing the caller's slice changes nothing.
	s := bytes.Clone(salt)
	r2 := mustNew(t, redact.Config{Salt: s})
	s[0] ^= 1
	if r2.Hash([]byte("hunter2")) != want {
		t.Fatal("Redactor keeps a reference to the caller's salt")
	}
}

func TestConcurrentUse(t *testing.T) {
	r := mustNew(t, redact.Config{})
	doc := []byte(`{"password":"hunter2","note":"AKIAABCDEFGHIJKLMNOP"}`)
	want, _, _ := r.JSON("t", doc)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				out, _, err := r.JSON("t", doc)
				if err != nil || !bytes.Equal(out, want) {
					t.Errorf("goroutine %d: %s %v", i, out, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func Example() {
	r, err := redact.New(redact.Config{
		Rules: []redact.Rule{{Tool: "mail.*", Path: "headers.*"}},
		Salt:  []byte("a salt of sixteen bytes or more"),
	})
	if err != nil {
		panic(err)
	}
	out, paths, err := r.JSON("mail.send", []byte(`{"to":"bob@example.com","password":"hunter2","headers":{"X-Trace":"t1"}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(paths)
	fmt.Println(strings.Contains(string(out), "hunter2"), strings.Contains(string(out), r.Hash([]byte("hunter2"))))
	// Output:
	// [headers.X-Trace password]
	// false true
}
