package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// A session table maps each session to the state of its chain: the log
// index of its latest event, that event's seq, and whether it is a seal. It
// is what the writer needs to fill in the next event's seq and prev, and it
// lives on disk so that neither memory nor start time grows with the
// number of sessions the log has seen.
//
// It is a list of generations, files "sessions.<k>" (k = 0, 1, …), each an
// open-addressed hash table of 2^(sessionGenBits+k) home slots plus
// maxProbe overflow slots, after a header slot. A session lives in one
// generation, within maxProbe slots of its home; a new session goes to the
// newest generation, or to a new one, twice as large, when the newest has
// no free slot near its home. A lookup reads maxProbe slots in each
// generation, newest first. Slots are updated in place and never removed.
//
// A slot is 32 bytes, so that no slot spans two disk sectors:
//
//	key      16 bytes  the first 16 bytes of SHA-256(session)
//	crc      4 bytes   CRC-32C of key, last and seq
//	last     6 bytes   big-endian log index of the latest event
//	seq      6 bytes   big-endian; top bit: the latest event is a seal; the rest its seq
//
// An all-zero slot is free (a used slot's CRC makes it non-zero). A slot
// whose CRC does not match (torn by a crash, or read while it is written)
// is skipped as someone else's. The home slot is the key's last 8 bytes
// (big-endian) modulo the generation's home slots.
const (
	sessionMagic    = "ward-audit-sess\n"
	sessionSlot     = 32
	sessionGenBits  = 14
	maxProbe        = 64
	maxSessionGens  = 34
	maxSlotIndex    = 1<<48 - 1
	maxSlotSeq      = 1<<47 - 1
	sessionsPrefix  = "sessions."
	sessionsTmpName = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chainState is what a session table keeps of one session.
type chainState struct {
	last uint64 // log index of the session's latest event
	seq  uint64 // its seq (its position in the session's chain, from 1)
	seal bool   // it is a seal
}

type sessKey struct {
	id   [16]byte
	home uint64
}

func keyOf(session string) sessKey {
	h := sha256.Sum256([]byte(session))
	return keyOfID([16]byte(h[:16]))
}

// keyOfID is the key of a slot's id: its home is the id's second half.
func keyOfID(id [16]byte) sessKey {
	return sessKey{id: id, home: binary.BigEndian.Uint64(id[8:])}
}

func encodeSlot(k sessKey, st chainState) ([sessionSlot]byte, error) {
	var b [sessionSlot]byte
	if st.last > maxSlotIndex || st.seq > maxSlotSeq {
		return b, fmt.Errorf("session chain state (index %d, seq %d) exceeds the index's 48-bit fields", st.last, st.seq)
	}
	copy(b[:16], k.id[:])
	put48(b[20:26], st.last)
	seq := st.seq
	if st.seal {
		seq |= 1 << 47
	}
	put48(b[26:32], seq)
	binary.BigEndian.PutUint32(b[16:20], slotSum(b[:]))
	return b, nil
}

func slotSum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:16])
	return crc32.Update(c, castagnoli, b[20:32])
}

// decodeSlot reads a slot: free, valid (with its key and state), or
// neither (torn).
func decodeSlot(b []byte) (id [16]byte, st chainState, free, ok bool) {
	if bytes.Count(b[:sessionSlot], []byte{0}) == sessionSlot {
		return id, st, true, false
	}
	if binary.BigEndian.Uint32(b[16:20]) != slotSum(b) {
		return id, st, false, false
	}
	copy(id[:], b[:16])
	seq := get48(b[26:32])
	return id, chainState{last: get48(b[20:26]), seq: seq &^ (1 << 47), seal: seq&(1<<47) != 0}, false, true
}

func put48(b []byte, v uint64) {
	for i := 5; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func get48(b []byte) uint64 {
	var v uint64
	for i := range 6 {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func genHomes(k int) uint64 { return 1 << (sessionGenBits + k) }
func genSize(k int) int64   { return sessionSlot * int64(1+genHomes(k)+maxProbe) }
func genName(k int) string  { return sessionsPrefix + strconv.Itoa(k) }

func genHeader(k int) []byte {
	b := make([]byte, sessionSlot)
	copy(b, sessionMagic)
	binary.BigEndian.PutUint64(b[16:], uint64(k))
	return b
}

// slotLoc is where a session's slot is.
type slotLoc struct {
	gen  int
	slot uint64 // from the generation's first slot (after the header)
}

// sessionTable is an open session table. Lookups may run concurrently
// with one writer; the writer alone inserts, updates and adds generations.
type sessionTable struct {
	dir string

	mu   sync.RWMutex // guards gens (append only)
	gens []*os.File
}

// openSessions opens the generations in dir: sessions.0, sessions.1, … up
// to the first missing one. A generation with the wrong size or header
// makes the table unusable. Opened for writing, it removes temporary files
// of a generation being created and creates the first generation if there
// is none; else it only reads.
func openSessions(dir string, writable bool) (*sessionTable, error) {
	t := &sessionTable{dir: dir}
	mode := os.O_RDONLY
	if writable {
		mode = os.O_RDWR
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			if strings.HasPrefix(de.Name(), sessionsPrefix) && strings.HasSuffix(de.Name(), sessionsTmpName) {
				os.Remove(filepath.Join(dir, de.Name()))
			}
		}
	}
	for k := 0; k < maxSessionGens; k++ {
		f, err := os.OpenFile(filepath.Join(dir, genName(k)), mode, 0)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.close()
			return nil, err
		}
		t.gens = append(t.gens, f)
		st, err := f.Stat()
		if err != nil {
			t.close()
			return nil, err
		}
		hdr := make([]byte, sessionSlot)
		if _, err := f.ReadAt(hdr, 0); err != nil || st.Size() != genSize(k) || !bytes.Equal(hdr, genHeader(k)) {
			t.close()
			return nil, fmt.Errorf("session table %s: not a generation %d table", genName(k), k)
		}
	}
	if len(t.gens) == 0 && writable {
		if err := t.addGen(); err != nil {
			t.close()
			return nil, err
		}
	}
	return t, nil
}

// addGen creates the next generation, durably: written whole under a
// temporary name, then renamed.
func (t *sessionTable) addGen() error {
	t.mu.RLock()
	k := len(t.gens)
	t.mu.RUnlock()
	if k == maxSessionGens {
		return errors.New("session table: too many generations")
	}
	name := filepath.Join(t.dir, genName(k))
	tmp := name + sessionsTmpName
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create session table %s: %w", genName(k), err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create session table %s: %w", genName(k), err)
	}
	if err := preallocate(f, genSize(k)); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(genHeader(k), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fail(err)
	}
	if err := syncDir(t.dir); err != nil {
		f.Close()
		return fmt.Errorf("create session table %s: %w", genName(k), err)
	}
	t.mu.Lock()
	t.gens = append(t.gens, f)
	t.mu.Unlock()
	return nil
}

func (t *sessionTable) files() []*os.File {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.gens[:len(t.gens):len(t.gens)]
}

// window reads the probe window of k in generation g.
func (t *sessionTable) window(f *os.File, g int, k sessKey, buf []byte) (first uint64, err error) {
	first = k.home & (genHomes(g) - 1)
	if _, err := f.ReadAt(buf[:maxProbe*sessionSlot], sessionSlot*int64(1+first)); err != nil {
		return 0, fmt.Errorf("read session table %s: %w", genName(g), err)
	}
	return first, nil
}

// lookup finds the session with key k.
func (t *sessionTable) lookup(k sessKey) (loc slotLoc, st chainState, found bool, err error) {
	gens := t.files()
	var buf [maxProbe * sessionSlot]byte
	for g := len(gens) - 1; g >= 0; g-- {
		first, err := t.window(gens[g], g, k, buf[:])
		if err != nil {
			return loc, st, false, err
		}
		for i := range maxProbe {
			id, s, free, ok := decodeSlot(buf[i*sessionSlot:])
			if free {
				break
			}
			if ok && id == k.id {
				return slotLoc{g, first + uint64(i)}, s, true, nil
			}
		}
	}
	return loc, st, false, nil
}

// place finds a free slot for a new session with key k in the newest
// generation, skipping those in taken; ok is false when there is none near
// its home (the caller adds a generation).
func (t *sessionTable) place(k sessKey, taken map[slotLoc]bool) (loc slotLoc, ok bool, err error) {
	gens := t.files()
	g := len(gens) - 1
	var buf [maxProbe * sessionSlot]byte
	first, err := t.window(gens[g], g, k, buf[:])
	if err != nil {
		return loc, false, err
	}
	for i := range maxProbe {
		if _, _, free, _ := decodeSlot(buf[i*sessionSlot:]); free {
			if l := (slotLoc{g, first + uint64(i)}); !taken[l] {
				return l, true, nil
			}
		}
	}
	return loc, false, nil
}

// write stores a session's state in its slot.
func (t *sessionTable) write(loc slotLoc, k sessKey, st chainState) error {
	b, err := encodeSlot(k, st)
	if err != nil {
		return err
	}
	gens := t.files()
	if _, err := gens[loc.gen].WriteAt(b[:], sessionSlot*int64(1+loc.slot)); err != nil {
		return fmt.Errorf("write session table %s: %w", genName(loc.gen), err)
	}
	return nil
}

// each calls fn for every valid slot, generation by generation.
func (t *sessionTable) each(fn func(id [16]byte, st chainState) error) error {
	buf := make([]byte, 1<<16)
	for g, f := range t.files() {
		r := io.NewSectionReader(f, sessionSlot, genSize(g)-sessionSlot)
		for {
			n, err := io.ReadFull(r, buf)
			for i := 0; i+sessionSlot <= n; i += sessionSlot {
				if id, st, _, ok := decodeSlot(buf[i:]); ok {
					if err := fn(id, st); err != nil {
						return err
					}
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read session table %s: %w", genName(g), err)
			}
		}
	}
	return nil
}

func (t *sessionTable) sync() error {
	for _, f := range t.files() {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (t *sessionTable) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, f := range t.gens {
		errs = append(errs, f.Close())
	}
	t.gens = nil
	return errors.Join(errs...)
}

// chains is a session table with a bounded cache of recent sessions and
// the places of new ones reserved in a batch: what the writer, a replay
// and a verification pass use to follow chains.
type chains struct {
	t     *sessionTable
	cache map[string]cached
}

type cached struct {
	loc   slotLoc
	st    chainState
	found bool // the slot is written (else loc is not yet chosen)
}

// maxCached bounds the cache; it is emptied when full.
const maxCached = 1 << 14

func newChains(t *sessionTable) *chains { return &chains{t: t, cache: map[string]cached{}} }

// get returns session's state; found is false for a session never seen.
func (c *chains) get(session string) (cached, error) {
	if e, ok := c.cache[session]; ok {
		return e, nil
	}
	loc, st, found, err := c.t.lookup(keyOf(session))
	if err != nil {
		return cached{}, err
	}
	return cached{loc: loc, st: st, found: found}, nil
}

// remember caches what was written for session.
func (c *chains) remember(session string, e cached) {
	if len(c.cache) >= maxCached {
		clear(c.cache)
	}
	c.cache[session] = e
}

// put writes session's new state now (a replay or a verification pass;
// the writer batches with slotWrites).
func (c *chains) put(session string, e cached, st chainState) error {
	k := keyOf(session)
	if !e.found {
		loc, err := c.placeNew(k, nil)
		if err != nil {
			return err
		}
		e.loc = loc
	}
	if err := c.t.write(e.loc, k, st); err != nil {
		return err
	}
	c.remember(session, cached{loc: e.loc, st: st, found: true})
	return nil
}

// placeNew finds a free slot for a new session, adding a generation if
// the newest has none near its home.
func (c *chains) placeNew(k sessKey, taken map[slotLoc]bool) (slotLoc, error) {
	for range 2 {
		loc, ok, err := c.t.place(k, taken)
		if err != nil {
			return loc, err
		}
		if ok {
			return loc, nil
		}
		if err := c.t.addGen(); err != nil {
			return loc, err
		}
	}
	return slotLoc{}, errors.New("session table: no free slot in a new generation")
}
