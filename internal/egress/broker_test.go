package egress

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/url"
	"strings"
	"testing"
)

// encodings are the forms a server commonly gives a secret back in.
func encodings(secret string) map[string]string {
	b := []byte(secret)
	js, _ := json.Marshal(secret)
	forms := map[string]string{
		"raw":              secret,
		"lower":            strings.ToLower(secret),
		"upper":            strings.ToUpper(secret),
		"swapped case":     strings.Map(swapCase, secret),
		"json":             string(js[1 : len(js)-1]),
		"json slashes":     strings.ReplaceAll(secret, "/", `\/`),
		"json unicode":     escapeEach(secret, `\u%04x`),
		"json unicode HEX": escapeEach(secret, `\u%04X`),
		"js hex":           escapeEach(secret, `\x%02x`),
		"query":            url.QueryEscape(secret),
		"path":             url.PathEscape(secret),
		"percent all":      escapeEach(secret, `%%%02X`),
		"percent lower":    escapeEach(secret, `%%%02x`),
		"html":             html.EscapeString(secret),
		"html decimal":     escapeEach(secret, `&#%d;`),
		"html hex":         escapeEach(secret, `&#x%x;`),
		"hex":              hex.EncodeToString(b),
		"HEX":              strings.ToUpper(hex.EncodeToString(b)),
		"lower of query":   strings.ToLower(url.QueryEscape(secret)),
	}
	for off, prefix := range []string{"", "a", "ab"} {
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding,
			"raw std": base64.RawStdEncoding, "raw url": base64.RawURLEncoding} {
			s := enc.EncodeToString(append([]byte(prefix), b...))
			forms[fmt.Sprintf("base64 %s at %d", name, off)] = s
			forms[fmt.Sprintf("base64 %s at %d, json", name, off)] = strings.ReplaceAll(s, "/", `\/`)
			forms[fmt.Sprintf("base64 %s at %d, query", name, off)] = url.QueryEscape(s)
		}
	}
	return forms
}

func swapCase(r rune) rune {
	switch {
	case 'a' <= r && r <= 'z':
		return r - 'a' + 'A'
	case 'A' <= r && r <= 'Z':
		return r - 'A' + 'a'
	}
	return r
}

// escapeEach writes every byte of s with format.
func escapeEach(s, format string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

// leaks reports which encodings of secret out still holds in recoverable
// form: the form itself, or for base64, the characters that encode the
// secret's bytes alone.
func leaks(out []byte, secret string) []string {
	var found []string
	for name, form := range encodings(secret) {
		probe := form
		if strings.HasPrefix(name, "base64") {
			// The first and last characters of an encoded secret also
			// encode its neighbours: look for the rest.
			probe = form[3 : len(form)-4]
		}
		if bytes.Contains(out, []byte(probe)) {
			found = append(found, name)
		}
	}
	return found
}

// TestMaskEncodings: a brokered secret echoed back JSON-escaped,
// percent-encoded, in another case, as base64 of any alphabet, padding or
// alignment, as hex, or HTML-escaped, is masked in full, streamed in any
// chunking as it would be whole; the rest of the body is untouched.
func TestMaskEncodings(t *testing.T) {
	const value = "Bearer s3cret/Tok+en_0123456789=="
	token := value[len("Bearer "):]
	m := newMasker([][]byte{[]byte(value), []byte(token)})
	for _, secret := range []string{value, token} {
		for name, form := range encodings(secret) {
			for _, around := range [][2]string{{"", ""}, {`{"echo":"`, `","n":1}`}, {"x", "y"}, {"Authorization: ", "\r\n"}} {
				body := []byte(around[0] + form + around[1])
				whole := m.bytes(bytes.Clone(body))
				if l := leaks(whole, token); len(l) > 0 {
					t.Errorf("%s %q in %q: masked to %q, which holds %q", name, form, around, whole, l)
					continue
				}
				if !bytes.HasPrefix(whole, []byte(around[0])) || !bytes.HasSuffix(whole, []byte(around[1])) {
					t.Errorf("%s in %q: the surroundings changed: %q", name, around, whole)
				}
				for _, chunk := range []int{1, 2, 5, 7} {
					got, err := io.ReadAll(newMaskReader(io.NopCloser(&chunkReader{body, chunk}), m, nil))
					if err != nil || !bytes.Equal(got, whole) {
						t.Errorf("%s, %d-byte reads: %q, %v; whole: %q", name, chunk, got, err, whole)
					}
				}
			}
		}
	}
	// In a base64 blob at every offset.
	for pre := range 7 {
		blob := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("p", pre) + token + "trailing bytes"))
		got := m.bytes([]byte(blob))
		dec, _ := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if r == rune(m.with) {
				return 'A'
			}
			return r
		}, string(got)))
		if bytes.Contains(dec, []byte(token[1:len(token)-1])) {
			t.Errorf("offset %d: %q decodes to %q", pre, got, dec)
		}
	}
	// Ordinary text, JSON and base64 that hold no secret are untouched.
	for _, body := range []string{
		`{"id":"abc\/def","url":"https:\/\/example.com\/a%20b?q=1&amp;r=2","data":"SGVsbG8sIHdvcmxkIQ==","hex":"0123456789abcdef"}`,
		"Bearer s3cret/Tok+en_012345678 almost, but not quite",
		strings.Repeat("%", 100) + strings.Repeat(`\u00`, 30) + "&#x;&#;&amp",
	} {
		if got := m.bytes([]byte(body)); string(got) != body {
			t.Errorf("%q masked to %q", body, got)
		}
	}
}

// TestMaskShortSecret: a secret too short to look for in encoded forms
// is still masked as sent, and ordinary text in other cases is not.
func TestMaskShortSecret(t *testing.T) {
	m := newMasker([][]byte{[]byte("abc12")})
	if got := string(m.bytes([]byte("x abc12 ABC12 YWJjMTI="))); got != "x ***** ABC12 YWJjMTI=" {
		t.Errorf("got %q", got)
	}
}
