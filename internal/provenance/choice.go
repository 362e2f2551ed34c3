package provenance

// Choices: a value the user's own data holds, chosen by text a third
// party wrote ("also remove q3-report.pdf": the file's id is the user's).

import "slices"

// Bounds of the records kept for choices.
const (
	// maxRecordsOf is how many records a value is linked to; past it,
	// the value is linked to the first ones only.
	maxRecordsOf = 4
	// maxPointers is how many values that point at a record are kept
	// for it.
	maxPointers = 16
)

// AddTrustedRecords indexes records, the trusted parts of the records
// of one result (the files of a listing with their ids and names, the
// standing orders of an account), as AddTrustedValues does, and links
// each record's values to the identifiers that name it (a file's name,
// an address, an account): a consequential value of a record (the
// file's id) is then chosen by untrusted text that names the record by
// one of them (see [Paths.Choice]). An identifier several records of the
// result hold (the owner's address on every file) names none of them.
func (ix *Index) AddTrustedRecords(records [][]Value) {
	ix.ready()
	hashes := make([][]uint64, len(records))
	pointers := make([][]uint64, len(records))
	holders := map[uint64]int{} // identifier → records holding it
	seen := map[uint64]bool{}   // records already counted: a result may hold two copies (structuredContent and its text)
	for i, values := range records {
		var ts []string
		hashes[i], pointers[i], ts = ix.record(values)
		ix.addTrusted(hashes[i], ts)
		var sig uint64
		for _, h := range hashes[i] {
			sig += h * 0x9e3779b97f4a7c15 // the same values in any order
		}
		if seen[sig] {
			continue
		}
		seen[sig] = true
		for _, p := range slices.Compact(slices.Sorted(slices.Values(pointers[i]))) {
			holders[p]++
		}
	}
	for i := range records {
		own := slices.DeleteFunc(pointers[i], func(p uint64) bool { return holders[p] > 1 })
		ix.link(hashes[i], own)
	}
}

// record returns the hashes of the candidates of a record's values, those
// of its identifiers, and its normalized strings.
func (ix *Index) record(values []Value) (hashes, pointers []uint64, texts []string) {
	x := extractor{short: true}
	budget := ix.max.MaxResultBytes
	for _, v := range values {
		if budget -= len(v.Text); budget < 0 {
			break
		}
		if !v.Number {
			texts = append(texts, normalize(v.Text))
		}
		x.value(v)
		for _, c := range x.cands {
			if naming(c.class) && len(pointers) < maxPointers {
				pointers = append(pointers, ix.hash(c))
			}
		}
		hashes = ix.keys(&x, hashes)
	}
	return hashes, pointers, texts
}

// link links the values of a record (hashes) to the values that name it.
func (ix *Index) link(hashes, pointers []uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(pointers) == 0 || ix.links+len(hashes)+len(pointers) > ix.max.MaxValues {
		return // fewer links: fewer choice findings, as before choices were checked
	}
	if ix.recordsOf == nil {
		ix.recordsOf = map[uint64][]uint32{}
	}
	rec := uint32(len(ix.pointers))
	ix.pointers = append(ix.pointers, pointers)
	ix.links += len(pointers)
	for _, h := range hashes {
		if rs := ix.recordsOf[h]; len(rs) < maxRecordsOf && (len(rs) == 0 || rs[len(rs)-1] != rec) {
			ix.recordsOf[h] = append(rs, rec)
			ix.links++
		}
	}
}

// chosen returns the untrusted entry that chose the trusted value of hash
// h and whether one did: h, or a value pointing at a record holding h,
// appeared in an untrusted result, and the objective holds neither h nor
// any value pointing at those records (the user chose it then). ix.mu is
// read-locked.
func (ix *Index) chosen(h uint64) (entry, uint64, bool) {
	if _, ok := ix.objHashes[h]; ok {
		return entry{}, 0, false
	}
	cands := []uint64{h}
	for _, r := range ix.recordsOf[h] {
		cands = append(cands, ix.pointers[r]...)
	}
	for _, p := range cands {
		if _, ok := ix.objHashes[p]; ok {
			return entry{}, 0, false
		}
	}
	for _, p := range cands {
		if e, ok := ix.untrusted[p]; ok {
			return e, p, true
		}
	}
	return entry{}, 0, false
}
