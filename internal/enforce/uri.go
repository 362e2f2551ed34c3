package enforce

import (
	"fmt"
	"net/url"
	"strings"
)

// CheckURI refuses resource URIs whose meaning depends on how an upstream
// resolves them: dot segments, encoded dots or separators, backslashes and
// control characters. Scope patterns match URIs as written, so
// "file:///tmp/../etc/passwd" must never pass as something under /tmp.
func CheckURI(uri string) error {
	if len(uri) > 4096 {
		return fmt.Errorf("resource URI longer than 4096 bytes")
	}
	for _, r := range uri {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("resource URI %q contains a control character or backslash", uri)
		}
	}
	lower := strings.ToLower(uri)
	for _, enc := range []string{"%2e", "%2f", "%5c", "%00"} {
		if strings.Contains(lower, enc) {
			return fmt.Errorf("resource URI %q contains an encoded dot, separator or NUL; ward refuses it rather than guess what it names", uri)
		}
	}
	if isFileURI(uri) && strings.ContainsAny(uri, "?#") {
		// A file has no query or fragment: a server that takes the text
		// after "file://" for a path would read "x?/../../etc" as one.
		return fmt.Errorf("resource URI %q is a file URI with a query or fragment; ward refuses it rather than guess what it names", uri)
	}
	rest := uri
	if i := strings.Index(rest, "?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.Index(rest, "#"); i >= 0 {
		rest = rest[:i]
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("resource URI %q contains a dot segment; ward refuses it rather than guess what it names", uri)
		}
	}
	return nil
}

func isFileURI(uri string) bool { return len(uri) >= 5 && strings.EqualFold(uri[:5], "file:") }

// checkFileURI refuses a file URI of a server with roots unless it is
// written in its one resolved form, file:// and the path ResolvePath gives
// (percent-encoded as net/url writes it): such a server opens the URI's
// path decoded, with "//" and a "localhost" host ignored, following
// symlinks, so a decision on any other spelling would not hold on the file
// it opens. Other URIs pass.
func checkFileURI(uri string, roots []string) error {
	if !isFileURI(uri) {
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		return fmt.Errorf("resource URI %q is not a file URI with an absolute path", uri)
	}
	resolved, err := ResolvePath(u.Path, roots)
	if err != nil {
		return fmt.Errorf("resource URI %q: %w", uri, err)
	}
	if want := (&url.URL{Scheme: "file", Path: resolved}).String(); want != uri {
		return fmt.Errorf("resource URI %q names the file %s; ward decides the file URIs of a server with roots in their resolved form only: ask for %q", uri, resolved, want)
	}
	return nil
}
