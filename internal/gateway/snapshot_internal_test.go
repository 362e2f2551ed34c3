package gateway

import (
	"encoding/json"
	"runtime"
	"testing"
)

func entriesOf(server string, defs map[string]string) map[string]catEntry {
	m := map[string]catEntry{}
	for name, def := range defs {
		m[server+"."+name] = catEntry{server: server, upstream: name, def: json.RawMessage(def)}
	}
	return m
}

// Catalogs of the same content are one; any difference, down to a byte
// of a definition or where a name ends and a server begins, makes
// another.
func TestCatalogIntern(t *testing.T) {
	var cs catalogs
	modes := map[string]NameMode{"a": NamesAuto, "ab": NamesAuto, "b": NamesAuto}
	one := cs.withList(noCatalog, "a", entriesOf("a", map[string]string{"echo": `{"name":"echo"}`}), modes)
	two := cs.withList(noCatalog, "a", entriesOf("a", map[string]string{"echo": `{"name":"echo"}`}), modes)
	if one != two {
		t.Fatal("two catalogs of the same content")
	}
	if other := cs.withList(noCatalog, "a", entriesOf("a", map[string]string{"echo": `{"name":"echo" }`}), modes); other == one {
		t.Fatal("a catalog whose definition differs is shared")
	}
	// The same stable name, split otherwise between server and name.
	x := cs.withList(noCatalog, "a", map[string]catEntry{"ab.c": {server: "a", upstream: "b.c"}}, modes)
	y := cs.withList(noCatalog, "ab", map[string]catEntry{"ab.c": {server: "ab", upstream: "c"}}, modes)
	if x == y {
		t.Fatal("entries of different servers share a catalog")
	}
	// Without a server, the names stay as the client saw them: a catalog
	// that never showed b's tools is not the one that did.
	both := cs.withList(one, "b", entriesOf("b", map[string]string{"echo": `{"name":"echo"}`}), modes)
	if both.names.exposed["a.echo"] != "a.echo" {
		t.Fatalf("a.echo is shown %q beside b's echo", both.names.exposed["a.echo"])
	}
	gone := cs.without(both, "b")
	if gone == one {
		t.Fatal("invalidating b forgot the names the client was shown")
	}
	if _, ok := gone.entries["b.echo"]; ok || gone.names.exposed["a.echo"] != "a.echo" {
		t.Fatalf("after b's list was invalidated: entries %v, names %v", gone.entries, gone.names.exposed)
	}
	if cs.without(gone, "b") != gone {
		t.Fatal("invalidating a server with nothing listed made a new catalog")
	}
}

// internDropped interns a catalog nobody keeps and returns its key.
//
//go:noinline
func internDropped(cs *catalogs) [32]byte {
	c := cs.withList(noCatalog, "a", entriesOf("a", map[string]string{"echo": `{"name":"echo"}`}), nil)
	return catalogKey(c.entries, c.nameSrc)
}

// A catalog no session holds any more is not kept by the table that
// shares it.
func TestCatalogReleased(t *testing.T) {
	var cs catalogs
	key := internDropped(&cs)
	runtime.GC()
	cs.mu.Lock()
	kept := cs.m[key].Value()
	cs.mu.Unlock()
	if kept != nil {
		t.Fatal("a catalog no session holds is still reachable from the table")
	}
	cs.forget(key) // what the cleanup registered with it does
	if n := cs.size(); n != 0 {
		t.Fatalf("%d catalogs in the table after the only one was collected", n)
	}
}
