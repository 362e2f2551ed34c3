package provenance

// Choices: a value the user's own data holds, chosen by text a third
// party wrote ("also remove q3-report.pdf": the file's id is the user's).

// Bounds of the records kept for choices.
const (
	// maxRecordsOf is how many records a value is linked to; past it,
	// the value is linked to the first ones only.
	maxRecordsOf = 4
	// maxPointers is how many values that point at a record are kept
	// for it.
	maxPointers = 16
)

// AddTrustedRecord indexes values, the trusted parts of one record of a
// result (a file of a listing with its id and name, a standing order),
// as AddTrustedValues does, and links them: a consequential value of the
// record (the file's id) is then chosen by untrusted text that names the
// record by one of its identifiers (the file's name, an address, an
// account), see [Paths.Choice].
func (ix *Index) AddTrustedRecord(values []Value) {
	ix.ready()
	hashes, pointers, texts := ix.record(values)
	ix.addTrusted(hashes, texts)
	ix.link(hashes, pointers)
}

// AddRecords adds records, each the values of one record of a result
// already added with AddTrustedResult, as AddTrustedRecord does (their
// strings are not kept again for phrases). The result read by its
// fields may give values its text did not (the id "23" of a YAML line
// `id: "23"`).
func (ix *Index) AddRecords(records [][]Value) {
	ix.ready()
	for _, values := range records {
		hashes, pointers, _ := ix.record(values)
		ix.addTrusted(hashes, nil)
		ix.link(hashes, pointers)
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
