package scan

import (
	"bytes"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// ToolDefinition scans a tool's definition for poisoning: its name for
// hidden characters, and its description and every string of its input
// schema (descriptions, titles, enums, defaults, member names) with the
// detectors of Result and those for tool definitions (sensitive-file,
// cross-tool, secrecy). Each text is scanned up to MaxScan bytes, and the
// schema's strings up to MaxScan bytes together; a schema that is not JSON
// is scanned as text. Hits are sorted by Field, then Offset, at most
// MaxHits.
func ToolDefinition(name, description string, inputSchema []byte) []Hit {
	var hits []Hit
	for _, h := range scanText(name, "name", true) {
		if h.Kind == KindHiddenUnicode {
			hits = append(hits, h)
		}
	}
	hits = append(hits, scanText(description, "description", true)...)
	budget := MaxScan
	err := walkStrings(inputSchema, func(ptr string, name bool, s string) bool {
		field := "inputSchema" + ptr
		if name {
			field += " (member name)"
		}
		s = cut(s, budget)
		budget -= len(s)
		hits = append(hits, scanText(s, field, true)...)
		return budget > 0 && len(hits) < 4*MaxHits
	})
	if err != nil {
		hits = append(hits, scanText(string(inputSchema), "inputSchema", true)...)
	}
	slices.SortStableFunc(hits, func(a, b Hit) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return a.Offset - b.Offset
	})
	if len(hits) > MaxHits {
		hits = hits[:MaxHits]
	}
	return hits
}

// walkStrings calls fn with the JSON Pointer and value of every string of
// doc, member names included (name set), until fn returns false; it
// returns the first syntax error.
func walkStrings(doc []byte, fn func(ptr string, name bool, s string) bool) error {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil
	}
	dec := jsontext.NewDecoder(bytes.NewBuffer(doc), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if tok.Kind() != '"' {
			continue
		}
		kind, n := dec.StackIndex(dec.StackDepth())
		name := kind == '{' && n%2 == 1
		if !fn(string(dec.StackPointer()), name, tok.String()) {
			return nil
		}
	}
}

// textPaths are where an MCP result holds text for the model, as JSON
// Pointer tokens ("*" for any one), below the result (or below "result" of
// a JSON-RPC response).
var textPaths = [][]string{
	{"content", "*", "text"},
	{"content", "*", "resource", "text"},
	{"contents", "*", "text"},
	{"messages", "*", "content", "text"},
	{"messages", "*", "content", "resource", "text"},
	{"error", "message"},
}

// Texts returns the text an MCP result shows the model: content[].text,
// embedded resources' text, every string of structuredContent, resource
// contents' text (resources/read), prompt messages' text (prompts/get) and
// an error's message, from a result or a whole JSON-RPC response. The
// texts add up to at most max bytes (MaxScan if max <= 0), each string
// counting 16 bytes more, so that many tiny strings are bounded too; the
// last is cut to fit. A result that is not JSON, or not valid JSON past some
// point, is returned whole as one text, cut to max, so that nothing in it
// goes unscanned. Time is linear in len(result).
func Texts(result []byte, max int) []string {
	if max <= 0 {
		max = MaxScan
	}
	var out []string
	err := walkStrings(result, func(ptr string, name bool, s string) bool {
		if name || !wanted(ptr) {
			return true
		}
		s = cut(s, max)
		max -= len(s) + 16
		out = append(out, s)
		return max > 0
	})
	if err != nil {
		return []string{cut(string(result), max)}
	}
	return out
}

// wanted reports whether the string at JSON Pointer ptr is text for the
// model.
func wanted(ptr string) bool {
	toks := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	if len(toks) > 0 && toks[0] == "result" {
		toks = toks[1:]
	}
	if len(toks) > 0 && toks[0] == "structuredContent" {
		return true
	}
	for _, p := range textPaths {
		if len(p) == len(toks) && slices.EqualFunc(p, toks, func(a, b string) bool { return a == "*" || a == b }) {
			return true
		}
	}
	return false
}
