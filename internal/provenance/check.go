package provenance

// Checking a call's arguments against an index: consequential arguments
// (from no untrusted result) and justified ones (positive mode).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/jsonpath"
)

// Paths names the arguments [Index.CheckArgs] reads, as dotted member
// names or array indexes, "*" for any one, with '.', '*' and '\' in a name
// escaped by '\' ("to", "recipients.*", "payment.account"). Every value at
// or under such a path counts.
type Paths struct {
	// Consequential arguments are reported when a value in them came
	// from an untrusted result and not from trusted input.
	Consequential []string
	// Justified arguments are read in positive mode: a value is reported
	// unless trusted input justifies it, wherever it came from (see the
	// package documentation). A path in both lists is justified.
	Justified []string
	// Designate says the objective asks for the action of the call
	// (the tool's designate words, in internal/enforce): a value of the
	// sources the objective names ([Index.Names]) may then fill its
	// consequential and justified arguments, when it is the one value
	// of its kind (an account, an address, an amount, a date…) those
	// sources hold and the objective holds no value of that kind. See
	// the package documentation.
	Designate bool
	// Choice says the call acts on the user's own data at the user's
	// request (the tool's intent words, in internal/enforce): a
	// consequential value trusted data holds (a file's id in the user's
	// listing) is then also reported, Chosen, when untrusted text named
	// it or a record holding it (by the file's name, an address, an
	// account: [Index.AddTrustedRecords]) and the objective names
	// neither.
	Choice bool
}

// Check returns the findings for the values of args, a call's arguments
// (JSON), found at the consequential paths: CheckArgs with
// Paths{Consequential: consequential}.
func (ix *Index) Check(args []byte, consequential []string) ([]Finding, error) {
	return ix.CheckArgs(args, Paths{Consequential: consequential})
}

// CheckArgs returns the findings for the values of args, a call's
// arguments (JSON), at the paths p names. Findings are sorted by Argument
// and Value, at most MaxFindings of them. An error (a path that does not
// parse, args that are not JSON, larger than MaxArgsBytes or nested
// deeper than MaxDepth) means the arguments could not be checked; the
// caller must not treat it as clean.
func (ix *Index) CheckArgs(args []byte, p Paths) ([]Finding, error) {
	ix.ready()
	cons, err := parsePaths("consequential", p.Consequential)
	if err != nil {
		return nil, err
	}
	just, err := parsePaths("justified", p.Justified)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(args)) == 0 {
		return nil, nil // no arguments
	}
	if len(args) > MaxArgsBytes {
		return nil, fmt.Errorf("arguments of %d bytes, more than %d", len(args), MaxArgsBytes)
	}
	w := argWalker{pats: [2][][]jsonpath.Segment{cons, just}, x: extractor{arg: true, short: true}}
	w.dec = jsontext.NewDecoder(bytes.NewBuffer(args), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if err := w.value(0); err != nil {
		return nil, describe(err)
	}
	if _, err := w.dec.ReadToken(); err != io.EOF {
		return nil, errors.New("arguments: invalid JSON: more than one top-level value")
	}
	if len(w.leaves) == 0 {
		return nil, nil
	}
	for i := range w.leaves {
		l := &w.leaves[i]
		l.hashes = make([]uint64, len(l.cands))
		for j, c := range l.cands {
			l.hashes[j] = ix.hash(c)
		}
	}
	ix.mu.RLock()
	var out []Finding
	for i := range w.leaves {
		out = ix.judge(&w.leaves[i], p, out)
	}
	ix.mu.RUnlock()
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := strings.Compare(a.Argument, b.Argument); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	out = slices.CompactFunc(out, func(a, b Finding) bool { return a.Argument == b.Argument && a.Value == b.Value })
	if len(out) > MaxFindings {
		out = out[:MaxFindings]
	}
	return out, nil
}

func parsePaths(what string, paths []string) ([][]jsonpath.Segment, error) {
	pats := make([][]jsonpath.Segment, 0, len(paths))
	for _, p := range paths {
		segs, err := jsonpath.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("%s path %q: %w", what, p, err)
		}
		pats = append(pats, segs)
	}
	return pats, nil
}

// leaf is a consequential or justified argument value and its
// candidates.
type leaf struct {
	path    string
	raw     string // the value normalized (candidates' spans are in it)
	text    string // the value normalized, without quotes around it
	justify bool   // read in positive mode
	cands   []cand
	hashes  []uint64
}

// States of a leaf's candidates in judge.
const (
	stUp       = 1 << iota // trusted, or a candidate derived from it is
	stDown                 // trusted, or a candidate it derives from is
	stFound                // in an untrusted result
	stReported             // reported, or a candidate it derives from is
	stDirect               // trusted itself
	stCleared  = stUp | stDown
)

// judge appends the findings of l to out; with designate, the values of
// designated sources are trusted (see Paths.Designate). ix.mu is
// read-locked.
func (ix *Index) judge(l *leaf, p Paths, out []Finding) []Finding {
	designate := p.Designate
	n := len(l.cands)
	st := make([]uint8, n)
	ents := make([]entry, n)
	for i, h := range l.hashes {
		if _, ok := ix.trusted[h]; ok {
			st[i] |= stCleared | stDirect
		} else if designate && ix.designated(l.cands[i].class, h) {
			// Cleared with what derives from it, but it does not clear
			// what it was found in: a designated account number inside
			// an address does not make the address designated.
			st[i] |= stDown | stDirect
		}
		if e, ok := ix.untrusted[h]; ok {
			st[i] |= stFound
			ents[i] = e
		}
	}
	for i := n - 1; i >= 0; i-- { // parents precede children
		if p := l.cands[i].parent; p >= 0 {
			st[p] |= st[i] & stUp
		}
	}
	for i, c := range l.cands {
		if p := c.parent; p >= 0 {
			st[i] |= st[p] & (stDown | stReported)
		}
	}
	if l.justify {
		return ix.justify(l, st, ents, out)
	}
	any := false
	if p.Choice {
		for i, c := range l.cands {
			if _, ok := ix.trusted[l.hashes[i]]; !ok || c.parent >= 0 {
				continue // not the user's own, or a part of a value
			}
			if e, _, ok := ix.chosen(l.hashes[i]); ok {
				o := ix.origins[e.origin]
				return append(out, Finding{Argument: l.path, Value: shown(c.key), Kind: c.class.String(), Source: o.source, Event: o.event,
					Results: int(e.results), Chosen: true})
			}
		}
	}
	for i, c := range l.cands {
		if p := c.parent; p >= 0 {
			st[i] |= st[p] & stReported
		}
		if st[i]&(stCleared|stFound|stReported) == stFound {
			st[i] |= stReported
			o := ix.origins[ents[i].origin]
			out = append(out, Finding{Argument: l.path, Value: shown(c.key), Kind: c.class.String(), Source: o.source, Event: o.event, Results: int(ents[i].results)})
			any = true
		}
	}
	if any || ix.partial < 0 {
		return out
	}
	for i, c := range l.cands {
		if st[i]&stCleared == 0 {
			o := ix.origins[ix.partial]
			return append(out, Finding{Argument: l.path, Value: shown(c.key), Kind: c.class.String(), Source: o.source, Event: o.event, Partial: true})
		}
	}
	return out
}

// justify appends a finding for l, a justified argument, unless trusted
// input justifies its value; ix.mu is read-locked.
func (ix *Index) justify(l *leaf, st []uint8, ents []entry, out []Finding) []Finding {
	if l.text == "" || ix.justified(l, st) {
		return out
	}
	f := Finding{Argument: l.path, Value: shown(l.text), Kind: ClassText.String(), Unjustified: true}
	if len(l.cands) > 0 {
		f.Kind = l.cands[0].class.String()
	}
	for i := range l.cands {
		if st[i]&(stFound|stCleared) == stFound {
			o := ix.origins[ents[i].origin]
			f.Source, f.Event, f.Results = o.source, o.event, int(ents[i].results)
			break
		}
	}
	return append(out, f)
}

// identifier reports whether a class names something on its own (an
// address, an account, an amount, a date) rather than words.
func identifier(c Class) bool {
	switch c {
	case ClassText, ClassName, ClassCode:
		return false
	}
	return true
}

// justified reports whether trusted input justifies the value of l: the
// value is trusted itself, or written in trusted text as a phrase, or it
// is made of identifiers that are each trusted (in some spelling: a
// candidate derived from one, or one it derives from) and words that
// trusted text holds.
func (ix *Index) justified(l *leaf, st []uint8) bool {
	root := -1
	for i, c := range l.cands {
		if c.parent < 0 {
			if st[i]&stDirect != 0 {
				return true
			}
			if root < 0 {
				root = i
			}
		}
	}
	if ix.phrase(l.text) {
		return true
	}
	covered := make([]bool, len(l.raw))
	ids := 0
	for i, c := range l.cands {
		if i == root || !identifier(c.class) || c.parent != root && c.parent >= 0 {
			continue // the whole value, words, or a form or part of an identifier
		}
		if st[i]&stCleared == 0 {
			return false
		}
		ids++
		for k := max(c.at, 0); k < min(c.end, len(covered)); k++ {
			covered[k] = true
		}
	}
	if ids == 0 {
		return false
	}
	for i := 0; i < len(l.raw); {
		if covered[i] || !wordByte(l.raw[i]) {
			i++
			continue
		}
		j := i
		for j < len(l.raw) && !covered[j] && wordByte(l.raw[j]) {
			j++
		}
		if !ix.phrase(l.raw[i:j]) {
			return false
		}
		i = j
	}
	return true
}

// phrase reports whether trusted text holds v as words: at a word
// boundary where v starts or ends with a letter or digit.
func (ix *Index) phrase(v string) bool {
	if v == "" {
		return false
	}
	for _, t := range ix.texts {
		for off := 0; off < len(t); {
			i := strings.Index(t[off:], v)
			if i < 0 {
				break
			}
			i += off
			j := i + len(v)
			if (i == 0 || !wordByte(v[0]) || !wordByte(t[i-1])) && (j == len(t) || !wordByte(v[len(v)-1]) || !wordByte(t[j])) {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// wordByte reports whether c is part of a word: ASCII letters and digits,
// and the bytes of other characters.
func wordByte(c byte) bool { return isAlnum(c) || c >= utf8.RuneSelf }

// shown cuts a value for display.
func shown(v string) string {
	if len(v) <= maxShown {
		return v
	}
	cut := maxShown - len("…")
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

// argWalker collects the consequential and justified values of an
// arguments document.
type argWalker struct {
	dec    *jsontext.Decoder
	pats   [2][][]jsonpath.Segment // consequential, justified
	path   []string
	leaves []leaf
	x      extractor
}

var errTooDeep = fmt.Errorf("arguments: nested deeper than %d", MaxDepth)

// Modes of a value in argWalker.value, by the paths it is at or under.
const (
	modeConsequential = 1 << iota
	modeJustified
)

// value reads the next value; mode says which paths it is at or under.
func (w *argWalker) value(mode int) error {
	switch w.dec.PeekKind() {
	case '{', '[':
		if len(w.path) == MaxDepth {
			return errTooDeep
		}
		tok, err := w.dec.ReadToken()
		if err != nil {
			return err
		}
		object := tok.Kind() == '{'
		for i := 0; w.dec.PeekKind() != tok.Kind()+2; i++ { // '{'+2 == '}', '['+2 == ']'
			seg := strconv.Itoa(i)
			if object {
				name, err := w.dec.ReadToken()
				if err != nil {
					return err
				}
				seg = name.String()
			}
			w.path = append(w.path, seg)
			if err := w.value(mode | w.matches()); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		_, err = w.dec.ReadToken()
		return err
	}
	tok, err := w.dec.ReadToken()
	if err != nil || mode == 0 {
		return err
	}
	raw, text := "", ""
	switch tok.Kind() {
	case '"':
		raw = normalize(tok.String())
		text = unquote(raw)
		w.x.extract(raw)
		w.x.hostParents()
	case '0':
		w.x.jsonNumber(tok.String())
		if len(w.x.cands) > 0 {
			raw, text = w.x.cands[0].key, w.x.cands[0].key
		}
	}
	justify := mode&modeJustified != 0
	if len(w.x.cands) > 0 || justify && text != "" {
		w.leaves = append(w.leaves, leaf{path: jsonpath.Render(w.path), raw: raw, text: text, justify: justify, cands: slices.Clone(w.x.cands)})
	}
	w.x.cands = w.x.cands[:0]
	return nil
}

// matches returns the modes of the paths that name w.path exactly.
func (w *argWalker) matches() int {
	mode := 0
	for m, pats := range w.pats {
		for _, p := range pats {
			if jsonpath.Match(p, w.path) {
				mode |= 1 << m
				break
			}
		}
	}
	return mode
}

// hostParents adds, for each host candidate, its parent domains of two or
// more labels, each derived from the next longer one.
func (x *extractor) hostParents() {
	for i, n := 0, len(x.cands); i < n; i++ {
		h := x.cands[i]
		if h.class != ClassHost || !domainName(h.key, false) {
			continue
		}
		x.span(h.at, h.end)
		parent := i
		for d := h.key; ; {
			dot := strings.IndexByte(d, '.')
			if dot < 0 || strings.IndexByte(d[dot+1:], '.') < 0 {
				break
			}
			d = d[dot+1:]
			parent = x.add(d, parent, ClassHost)
		}
	}
}
