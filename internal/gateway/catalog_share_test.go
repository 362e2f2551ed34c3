package gateway_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
)

// callerWith is a caller of its own ward session whose grant allows tools.
func callerWith(session string, tools ...string) *gateway.Caller {
	return &gateway.Caller{Session: session, SPIFFEID: "spiffe://test/agent/a/session/" + session, Agent: "a", Sponsor: "acme",
		Scope: grant.Scope{Tools: tools, Prompts: []string{"up.*"}, Resources: []string{"note://*"}}, Expiry: time.Now().Add(24 * time.Hour)}
}

// toolNames lists the tools a session is shown.
func toolNames(t *testing.T, s *gateway.Session, d *downstream, id string) []string {
	t.Helper()
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"`+id+`","method":"tools/list"}`)
	if resp.Error != nil {
		t.Fatalf("tools/list: %v", resp.Error)
	}
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// Sessions whose upstreams list the same tools share one catalog, and
// still each see and call only what its own grant allows: the catalog
// holds what was listed, never who may use it.
func TestSharedCatalogKeepsGrants(t *testing.T) {
	up := &rawUpstream{}
	f := newRawFixture(t, up, nil)
	narrow, dn := f.openAs(t, callerWith("narrow", "up.echo"))
	wide, dw := f.openAs(t, callerWith("wide", "up.*"))
	if !gateway.SameCatalog(narrow, wide) {
		t.Fatal("two sessions whose upstream listed the same tools hold two catalogs")
	}
	if n := gateway.Catalogs(f.g); n != 2 {
		t.Fatalf("%d catalogs held, want 2 (one of tools, one of prompts)", n)
	}
	if got := toolNames(t, narrow, dn, "l1"); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("the session granted up.echo is shown %q", got)
	}
	if got := toolNames(t, wide, dw, "l2"); !slices.Equal(got, []string{"echo", "send"}) {
		t.Fatalf("the session granted up.* is shown %q", got)
	}
	resp := send(t, narrow, dn, `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"send","arguments":{}}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "grant") {
		t.Fatalf("the session granted up.echo called send: %+v", resp)
	}
	if n := len(up.requests("tools/call")); n != 0 {
		t.Fatalf("a call outside the grant reached the upstream (%d calls)", n)
	}
	resp = send(t, wide, dw, `{"jsonrpc":"2.0","id":"c2","method":"tools/call","params":{"name":"send","arguments":{}}}`)
	if resp.Error != nil {
		t.Fatalf("the session granted up.* could not call send: %v", resp.Error)
	}
	if n := len(up.requests("tools/call")); n != 1 {
		t.Fatalf("%d calls reached the upstream, want the one allowed", n)
	}
}

// A session whose upstream lists other tools than the others' gets a
// catalog of its own: it cannot call what only the others were offered,
// and they cannot call what only it was offered.
func TestCatalogsOfDifferentListsStayApart(t *testing.T) {
	var mu sync.Mutex
	lists := []string{rawTools, `[{"name":"echo","description":"Echo.","inputSchema":{"type":"object"}},{"name":"wipe","description":"Wipe.","inputSchema":{"type":"object"}}]`}
	next := 0
	up := &rawUpstream{tools: func() string {
		mu.Lock()
		defer mu.Unlock()
		return lists[next]
	}}
	f := newRawFixture(t, up, nil)
	first, d1 := f.openAs(t, callerWith("first", "up.*"))
	mu.Lock()
	next = 1
	mu.Unlock()
	second, d2 := f.openAs(t, callerWith("second", "up.*"))
	if gateway.SameCatalog(first, second) {
		t.Fatal("sessions whose upstream listed different tools hold one catalog")
	}
	if n := gateway.Catalogs(f.g); n != 3 {
		t.Fatalf("%d catalogs held, want 3 (two of tools, one of prompts)", n)
	}
	// Each resolves a bare name only against its own catalog: second's
	// upstream never offered send.
	resp := send(t, second, d2, `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"send","arguments":{}}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "unknown tool") {
		t.Fatalf("the session whose upstream never offered send called it: %+v", resp)
	}
	// first lists again and gets what second holds: echo (wipe arrived
	// after the server's first list was pinned, so it waits for an
	// approval), and send no more.
	if got := toolNames(t, first, d1, "l1"); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("after listing again, first is shown %q", got)
	}
	if !gateway.SameCatalog(first, second) {
		t.Fatal("sessions whose upstream now lists the same tools still hold two catalogs")
	}
	resp = send(t, first, d1, `{"jsonrpc":"2.0","id":"c2","method":"tools/call","params":{"name":"send","arguments":{}}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "unknown tool") {
		t.Fatalf("first called send after its upstream stopped offering it: %+v", resp)
	}
	if n := len(up.requests("tools/call")); n != 0 {
		t.Fatalf("%d calls reached the upstream, want none", n)
	}
}
