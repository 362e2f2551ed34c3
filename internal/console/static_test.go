package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestStaticFollowsCSP: the pages hold nothing the Content-Security-Policy
// (default-src 'self', no inline script or style) would block, and the
// scripts build the page without parsing markup from data.
func TestStaticFollowsCSP(t *testing.T) {
	forbidden := map[string]*regexp.Regexp{
		"inline script":       regexp.MustCompile(`<script(?:\s+type="module")?\s*>`),
		"inline style block":  regexp.MustCompile(`<style`),
		"style attribute":     regexp.MustCompile(`\sstyle=|setAttribute\("style"`),
		"event attribute":     regexp.MustCompile(`<[^>]+\son[a-z]+=`),
		"markup from strings": regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write`),
		"code from strings":   regexp.MustCompile(`\beval\(|new Function\(|setTimeout\("|setInterval\("`),
		"other origins":       regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	}
	n := 0
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for what, re := range forbidden {
			if strings.HasSuffix(path, ".css") && what != "other origins" {
				continue
			}
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s: %s: %q", path, what, b[loc[0]:loc[1]])
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d static files: %v", n, err)
	}
}
