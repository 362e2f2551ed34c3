package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"
)

// # Catalogs shared by content
//
// A session's catalog of tools (and one of prompts) is what its upstreams
// listed: every item by its stable name, and the names clients are shown
// (exposeNames). Ten thousand sessions of
// one deployment list the same tools, so a copy per session held the same
// definitions ten thousand times. A catalog is therefore immutable once
// made and interned by the SHA-256 of everything it holds (catalogKey):
// sessions whose upstreams listed the same items hold the same catalog,
// and a session whose upstream lists something else gets a catalog of its
// own. A session changes its catalog only by replacing its pointer, under
// its catMu.
//
// Nothing about who may see what is in a catalog: every list a session
// serves is filtered by the guard for that session's caller when it is
// served (refreshNamed), and every call is decided on its own, so sessions
// that share a catalog still see only what their own grants allow.
// Interning is by content alone, per Gateway (the names depend on its
// servers' name modes): two sessions share a catalog only when holding
// their own copies would give them equal ones.

// catalog is one kind's view of the upstreams' lists; never modified once
// made (intern returns it).
type catalog struct {
	entries map[string]catEntry // stable name ("SERVER.NAME") → entry
	names   naming              // exposed names, from the items nameSrc digests
	// nameSrc digests the items names was worked out from: the entries
	// when they were last listed (an invalidated server's items leave the
	// entries, but the names stay as the client last saw them).
	nameSrc [sha256.Size]byte
}

// noCatalog is the catalog of a session that has listed nothing; like
// every catalog, it is never modified.
var noCatalog = &catalog{}

// catalogs interns the catalogs of a Gateway's sessions. An entry is
// weak: a catalog no session holds any more is collected, and its entry
// removed by the cleanup registered with it.
type catalogs struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]weak.Pointer[catalog]
}

// intern returns the catalog of entries and of names, worked out from
// the items nameSrc digests (nil: from the entries, which nameSrc
// digests): the one a session already holds if its content is the same,
// else a new one.
func (cs *catalogs) intern(entries map[string]catEntry, nameSrc [sha256.Size]byte, names *naming, modes map[string]NameMode) *catalog {
	key := catalogKey(entries, nameSrc)
	cs.mu.Lock()
	if c := cs.m[key].Value(); c != nil {
		cs.mu.Unlock()
		return c
	}
	cs.mu.Unlock()
	c := &catalog{entries: entries, nameSrc: nameSrc}
	if names != nil {
		c.names = *names
	} else {
		c.names = exposeNames(listedOf(entries), modes)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if prev := cs.m[key].Value(); prev != nil {
		return prev // made meanwhile by another session
	}
	if cs.m == nil {
		cs.m = map[[sha256.Size]byte]weak.Pointer[catalog]{}
	}
	cs.m[key] = weak.Make(c)
	runtime.AddCleanup(c, cs.forget, key)
	return c
}

// forget removes key's entry once its catalog was collected (and not
// made again meanwhile).
func (cs *catalogs) forget(key [sha256.Size]byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if wp, ok := cs.m[key]; ok && wp.Value() == nil {
		delete(cs.m, key)
	}
}

// size reports how many catalogs are interned (for tests).
func (cs *catalogs) size() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.m)
}

// withList returns c with server's entries replaced by items, and the
// names worked out again from all the entries.
func (cs *catalogs) withList(c *catalog, server string, items map[string]catEntry, modes map[string]NameMode) *catalog {
	entries := make(map[string]catEntry, len(c.entries)+len(items))
	for name, e := range c.entries {
		if e.server != server {
			entries[name] = e
		}
	}
	maps.Copy(entries, items)
	return cs.intern(entries, nameDigest(entries), nil, modes)
}

// without returns c without server's entries; the names stay as they
// were (the client keeps the names it was shown until the list is
// fetched again).
func (cs *catalogs) without(c *catalog, server string) *catalog {
	if !c.holds(server) {
		return c
	}
	entries := make(map[string]catEntry, len(c.entries))
	for name, e := range c.entries {
		if e.server != server {
			entries[name] = e
		}
	}
	names := c.names
	return cs.intern(entries, c.nameSrc, &names, nil)
}

// holds reports whether c has an entry of server.
func (c *catalog) holds(server string) bool {
	for _, e := range c.entries {
		if e.server == server {
			return true
		}
	}
	return false
}

func listedOf(entries map[string]catEntry) []listed {
	items := make([]listed, 0, len(entries))
	for _, e := range entries {
		items = append(items, listed{server: e.server, name: e.upstream})
	}
	return items
}

// catalogKey digests everything a catalog holds, in one order.
func catalogKey(entries map[string]catEntry, nameSrc [sha256.Size]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		e := entries[name]
		field(h, name)
		field(h, e.server)
		field(h, e.upstream)
		field(h, string(e.def))
	}
	h.Write(nameSrc[:])
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// nameDigest digests the (server, name) items the names of entries are
// worked out from.
func nameDigest(entries map[string]catEntry) [sha256.Size]byte {
	items := listedOf(entries)
	slices.SortFunc(items, func(a, b listed) int {
		if c := strings.Compare(a.server, b.server); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	h := sha256.New()
	for _, it := range items {
		field(h, it.server)
		field(h, it.name)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// field writes s length-prefixed, so that no two sequences of fields
// digest alike.
func field(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}
