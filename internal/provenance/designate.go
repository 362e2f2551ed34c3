package provenance

// Designated sources: values the user points at in text a third party
// wrote ("pay the bill in bill-april.txt", "reply to Bob's e-mail").

import (
	"slices"
	"strings"
)

// numClasses is the number of classes (see [Class]).
const numClasses = int(ClassFile) + 1

// maxNamingLen is the longest string that can name a source: identities
// (an address, a file name, an id) are short; a long text is content.
const maxNamingLen = 256

// slot is what the designated sources of a session hold of one class:
// the hashes of the readings of their first value (a grouped IBAN reads
// as accounts of 16, 20 or 22 characters; 03/04/2025 as two dates), and
// how many different values (0, 1, or 2 for "two or more").
type slot struct {
	hs []uint64
	n  uint8
}

// maxReadings bounds the readings of one value kept in a slot.
const maxReadings = 8

// objective is what naming a source is judged against: the session's
// objective, its words and the identifiers it holds.
type objective struct {
	words map[string]struct{} // its words (letters and digits)
	keys  map[string]struct{} // its identifiers, normalized
	files map[string]struct{} // its file names
	// classes has bit c set when the objective itself holds a value of
	// class c: that class is then the objective's to give, and no source
	// is designated for it.
	classes uint16
}

// AddObjective indexes the session's objective: as trusted text
// ([Index.AddTrusted]), and as what names the sources the user points at
// ([Index.Names]). Call it once, before anything else is added.
func (ix *Index) AddObjective(text string) {
	ix.ready()
	if len(text) > ix.max.MaxResultBytes {
		text = text[:ix.max.MaxResultBytes]
	}
	n := normalize(text)
	o := &objective{words: map[string]struct{}{}, keys: map[string]struct{}{}, files: map[string]struct{}{}}
	for _, w := range splitWords(n) {
		o.words[w] = struct{}{}
	}
	for _, f := range strings.Fields(n) {
		if f = trim(f, &pathLead, &pathTrail); fileName(f) {
			o.files[f] = struct{}{}
		}
	}
	x := extractor{short: true}
	x.extract(n)
	hashes := map[uint64]struct{}{}
	for i, c := range x.cands {
		hashes[ix.hash(c)] = struct{}{}
		if !identifier(c.class) || c.parent >= 0 && x.cands[c.parent].class == ClassEmail {
			continue // an address's domain names no source
		}
		o.keys[tagged(c)] = struct{}{}
		if counted(x.cands, i) {
			o.classes |= 1 << c.class
		}
	}
	ix.addTrusted(ix.keys(&x, nil), []string{n}) // as AddTrusted does
	ix.mu.Lock()
	ix.obj, ix.objHashes = o, hashes
	ix.mu.Unlock()
}

// tagged is a candidate's key with its class, for comparing identifiers
// of one kind.
func tagged(c cand) string { return string(rune('a'+c.class)) + c.key }

// splitWords returns the words of a normalized text: runs of ASCII
// letters and digits and of other characters' bytes.
func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && !isAlnum(byte(r)) })
}

// fileName reports whether w, a normalized word, is a file name: a name
// and a common file extension ("bill-april.txt", "vendor-proposal.pdf").
func fileName(w string) bool {
	dot := strings.LastIndexByte(w, '.')
	if dot <= 0 || strings.ContainsAny(w, "/\\@: ") {
		return false
	}
	return fileExtensions[w[dot+1:]]
}

// counted reports whether cands[i] counts as a value of its class in a
// designated source: an identifier, not derived from another identifier
// (a URL's host, an address's domain, a phone number's national form).
func counted(cands []cand, i int) bool {
	c := cands[i]
	return identifier(c.class) && (c.parent < 0 || !identifier(cands[c.parent].class))
}

// Names reports whether the session's objective (see
// [Index.AddObjective]) names one of values: the arguments of a read (the
// file, page or id it reads) or the values of one record of a result (a
// mail, a file with its name). Only a value that is an identity names:
// one word (an address, a file name or path, a URL, an id), or a display
// name and an address in angle brackets; text that mentions one (a
// mail's body saying "see bill-april.txt") names nothing, since a third
// party can write it. A value names it when, normalized,
//
//   - it is, or holds, an identifier the objective holds (a URL, host,
//     e-mail address, path, account or phone number: not an amount or a
//     date, which many records share), or a word of letters and digits
//     holding both, four bytes or more (an id: "ZFA04Y") that is a word
//     of the objective; "https://dora.example/" is named by
//     "dora.example";
//   - it is a file name the objective holds, or whose name's words
//     ("vendor-proposal.pdf": vendor, proposal) are all words of the
//     objective ("the vendor's proposal");
//   - it is an e-mail address whose local part, or the first part of it
//     of three letters or more ("bob" of bob.keller@…), is a word of the
//     objective ("reply to Bob's e-mail", "HR wrote about").
//
// Plain words never name a source: a channel called "general" is not
// named by an objective that says "general". Strings longer than 256
// bytes are content, not names, and name nothing.
func (ix *Index) Names(values []Value) bool {
	ix.ready()
	ix.mu.RLock()
	o := ix.obj
	ix.mu.RUnlock()
	if o == nil {
		return false
	}
	var x extractor
	for _, v := range values {
		if v.Number || len(v.Text) > maxNamingLen || len(v.Text) < minKeyLen {
			continue
		}
		if t := strings.TrimSpace(v.Text); strings.ContainsAny(t, " \t\n") && !strings.HasSuffix(t, ">") {
			continue // text, not an identity (see identity): spare normalizing it
		}
		n := normalize(v.Text)
		if o.names(&x, n) {
			return true
		}
	}
	return false
}

// names reports whether o names the normalized string s: s must be an
// identity (see identity), not text that mentions one.
func (o *objective) names(x *extractor, s string) bool {
	id := identity(s)
	if id == "" {
		return false
	}
	base := id[strings.LastIndexAny(id, "/\\")+1:] // a path names its file
	if fileName(base) {
		if _, ok := o.files[base]; ok {
			return true
		}
		words, all, long := splitWords(base[:strings.LastIndexByte(base, '.')]), true, false
		for _, w := range words {
			_, ok := o.words[w]
			all = all && ok
			long = long || len(w) >= 3
		}
		if all && long {
			return true
		}
	}
	if _, ok := o.words[id]; ok && idLike(id) {
		return true
	}
	x.cands = x.cands[:0]
	x.extract(id)
	defer func() { x.cands = x.cands[:0] }()
	for _, c := range x.cands {
		if !naming(c.class) || c.parent >= 0 && x.cands[c.parent].class == ClassEmail {
			continue
		}
		if _, ok := o.keys[tagged(c)]; ok {
			return true
		}
		if c.class == ClassEmail && o.mailbox(c.key) {
			return true
		}
	}
	return false
}

// identity returns what the normalized string s identifies when s is an
// identity: one word without the quotes or brackets around it (an
// address, a file name or path, a URL, an id), or a display name of four
// words at most and one such word in angle brackets ("Bob Keller
// <bob.keller@corp.example>"). Anything else is text that may mention
// an identity, which a third party can write anywhere, and "" is
// returned: a record is named by its own fields, not by what its text
// says.
func identity(s string) string {
	s = unquote(strings.TrimSpace(s))
	if !strings.ContainsAny(s, " \n") {
		return trim(s, &pathLead, &pathTrail)
	}
	if i := strings.LastIndexByte(s, '<'); i > 0 && strings.HasSuffix(s, ">") && len(strings.Fields(s[:i])) <= 4 {
		if inner := strings.TrimSpace(s[i+1 : len(s)-1]); inner != "" && !strings.ContainsAny(inner, " \n") {
			return inner
		}
	}
	return ""
}

// naming reports whether a value of class c can name a source: an
// address, a place, an account; not an amount or a date, which many
// records share.
func naming(c Class) bool {
	switch c {
	case ClassURL, ClassHost, ClassEmail, ClassPath, ClassAccount, ClassPhone, ClassFile:
		return true
	}
	return false
}

// mailbox reports whether the objective names the address a by its
// local part or the first part of it.
func (o *objective) mailbox(a string) bool {
	local := a[:strings.LastIndexByte(a, '@')]
	if _, ok := o.words[local]; ok && len(local) >= 2 {
		return true
	}
	first := local
	if i := strings.IndexAny(local, ".-_+"); i >= 0 {
		first = local[:i]
	}
	if len(first) < 3 || first == local {
		return false
	}
	for i := 0; i < len(first); i++ {
		if !isLower(first[i]) {
			return false
		}
	}
	_, ok := o.words[first]
	return ok
}

// idLike reports whether s is an id: one word of letters and digits
// holding both, four bytes or more ("zfa04y", "inv2291").
func idLike(s string) bool {
	if len(s) < 4 {
		return false
	}
	letter, digit := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			digit = true
		case isLower(c):
			letter = true
		default:
			return false
		}
	}
	return letter && digit
}

// AddDesignated indexes result, an untrusted result the objective names
// (see [Index.Names]), as AddUntrusted does, and records its values as
// those of a designated source: see [Paths.Designate].
func (ix *Index) AddDesignated(source string, event uint64, result []byte) Summary {
	ix.ready()
	var pool []pooled
	hashes, _, sum := ix.read(result, false, false, &pool)
	sum = ix.addUntrusted(source, event, hashes, sum)
	ix.addPool(pool, sum.Partial)
	return sum
}

// AddDesignatedValues indexes values, the untrusted parts of a record or
// result the objective names, as AddUntrustedValues does, and records
// them as those of a designated source.
func (ix *Index) AddDesignatedValues(source string, event uint64, values []Value, note string) Summary {
	ix.ready()
	var pool []pooled
	hashes, sum := ix.valueHashes(values, note, &pool)
	sum = ix.addUntrusted(source, event, hashes, sum)
	ix.addPool(pool, sum.Partial)
	return sum
}

// pooled is a reading of a value of a designated source: the readings of
// one value (candidates of one class found at overlapping places of one
// string) share a group.
type pooled struct {
	class Class
	group int
	h     uint64
}

// addPool records the values of a designated source. A source not fully
// indexed may hold more values than were seen: every class is then
// ambiguous.
func (ix *Index) addPool(pool []pooled, partial bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if partial {
		for c := range ix.pool {
			ix.pool[c].n = 2
		}
		return
	}
	for i := 0; i < len(pool); {
		j := i + 1
		for j < len(pool) && pool[j].group == pool[i].group {
			j++
		}
		value := pool[i:j]
		s := &ix.pool[value[0].class]
		switch s.n {
		case 0:
			for _, p := range value[:min(len(value), maxReadings)] {
				s.hs = append(s.hs, p.h)
			}
			s.n = 1
		case 1:
			// The same value written again keeps the readings both
			// writings agree on; another value makes the class ambiguous.
			s.hs = slices.DeleteFunc(s.hs, func(h uint64) bool {
				return !slices.ContainsFunc(value, func(p pooled) bool { return p.h == h })
			})
			if len(s.hs) == 0 {
				s.n = 2
			}
		}
		i = j
	}
}

// collect appends the counted candidates of x to pool, hashed, the
// readings of one value (of one class, at overlapping places) in one
// group.
func (ix *Index) collect(x *extractor, pool *[]pooled) {
	if pool == nil {
		return
	}
	next := 0
	if n := len(*pool); n > 0 {
		next = (*pool)[n-1].group + 1
	}
	first := len(*pool)
	groups := make([]int, len(x.cands))
	for i, c := range x.cands {
		if !counted(x.cands, i) {
			continue
		}
		groups[i] = -1
		for j := range i {
			d := x.cands[j]
			if d.class == c.class && counted(x.cands, j) && d.at < c.end && c.at < d.end {
				groups[i] = groups[j]
				break
			}
		}
		if groups[i] < 0 {
			groups[i] = next
			next++
		}
		*pool = append(*pool, pooled{c.class, groups[i], ix.hash(c)})
	}
	slices.SortStableFunc((*pool)[first:], func(a, b pooled) int { return a.group - b.group })
}

// designated reports whether a candidate of class c and hash h is the one
// value of its class the session's designated sources hold, in a class
// the objective holds no value of; ix.mu is read-locked.
func (ix *Index) designated(c Class, h uint64) bool {
	if !identifier(c) || ix.obj != nil && ix.obj.classes&(1<<c) != 0 {
		return false
	}
	s := ix.pool[c]
	return s.n == 1 && slices.Contains(s.hs, h)
}
