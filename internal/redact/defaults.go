package redact

import (
	"regexp"
	"strings"
)

// defaultPatterns are the built-in value patterns, for every tool (see the
// package documentation).
var defaultPatterns = func() []rule {
	var rs []rule
	for _, d := range []struct {
		pattern string
		hints   []string // the pattern cannot match a string without one of these
		fold    bool     // hints match in any case
	}{
		{`(?:AKIA|ASIA)[0-9A-Z]{16}`, []string{"AKIA", "ASIA"}, false},
		{`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*)`, []string{"-----BEGIN"}, false},
		{`(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]+=*)`, []string{"bearer"}, true},
		{`(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{8,}=*)`, []string{"basic"}, true},
		{`[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:(?P<secret>[^\s/@]+)@`, []string{"://"}, false},
		{`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`, []string{"gh"}, false},
		{`\bxox[abposr]-[A-Za-z0-9-]{10,}`, []string{"xox"}, false},
		{`\bsk-[A-Za-z0-9_-]{20,}`, []string{"sk-"}, false},
		{`\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}`, []string{"k_live_", "k_test_"}, false},
		{`\bAIza[0-9A-Za-z_-]{35}`, []string{"AIza"}, false},
		{`\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`, []string{"eyJ"}, false},
	} {
		re := regexp.MustCompile(d.pattern)
		rs = append(rs, rule{wild: true, re: re, group: max(re.SubexpIndex("secret"), 0), hints: d.hints, fold: d.fold})
	}
	return rs
}()

// mayMatch reports whether rl's pattern can match s, from its hints: a cheap
// test that spares most strings the regular expression.
func (rl *rule) mayMatch(s string) bool {
	if rl.hints == nil {
		return true
	}
	for _, h := range rl.hints {
		if rl.fold && containsFold(s, h) || !rl.fold && strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lowercase ASCII word sub in
// any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == sub[0] && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// secretName reports whether a member name looks like it holds a secret
// (see the package documentation).
func secretName(name string) bool {
	var buf [64]byte
	n := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		}
		n = append(n, c)
	}
	s := string(n) // does not escape: no allocation for short names
	if strings.HasSuffix(s, "token") || s == "auth" || s == "pwd" {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

var secretWords = []string{"password", "passwd", "passphrase", "secret", "apikey", "privatekey", "credential", "accesskey", "authorization", "cookie"}
