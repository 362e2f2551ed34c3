package enforce

import (
	"fmt"
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
