package enforce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
)

// PinMode says which tool definitions are approved without an operator.
type PinMode string

const (
	// PinTrustOnFirstUse approves the definitions of the first set of
	// tools a server ever lists. A tool that appears later (a new name,
	// such as a renamed tool) and any changed definition are withheld
	// until an operator approves them. The default.
	PinTrustOnFirstUse PinMode = "tofu"
	// PinTrustEachOnFirstUse approves every tool's first definition, even
	// of tools that appear after the server's first set: weaker, since a
	// server can then add tools nobody reviewed.
	PinTrustEachOnFirstUse PinMode = "tofu-each"
	// PinManual withholds every tool until an operator approves it.
	PinManual PinMode = "manual"
)

// PinStore keeps tool pins and the tool sets servers offer. ObservePin
// must be atomic and must never change an existing approval;
// ObserveToolSet must keep a server's first set once recorded.
type PinStore interface {
	ObservePin(ctx context.Context, server, tool, hash string, def json.RawMessage, approveFirstBy string) (p store.ToolPin, created, changed bool, err error)
	ObserveToolSet(ctx context.Context, server string, names []string) (set store.ToolSet, previous []string, created bool, err error)
	GetToolSet(ctx context.Context, server string) (store.ToolSet, error)
	CountToolSets(ctx context.Context, suffix string) (int, error)
}

var _ PinStore = (*store.Store)(nil)

// pinTarget names what a definition is pinned under. Tools are pinned
// under their server and name; prompts under "prompts#SERVER" and their
// name, with a first set of their own. A server that the agent's
// side reports (`ward mcp wrap`, through the guard API) is pinned apart
// for each agent, "wrap-SERVER~AGENT": an agent's report can establish
// trust for its own wrapped server, never for another agent's.
type pinTarget struct {
	server string // the pin's server key
	set    string // the key of the first set the name belongs to
	prompt bool
}

// targetOf is where kind's items of server are pinned for c; ok is false
// for kinds that are not pinned.
func targetOf(c *Caller, kind Kind, server string, reported bool) (pinTarget, bool) {
	key := server
	if reported {
		key = "wrap-" + server + "~" + strings.ReplaceAll(c.Agent, ".", "~")
	}
	switch kind {
	case KindTool:
		return pinTarget{server: key, set: key}, true
	case KindPrompt:
		return pinTarget{server: "prompts#" + key, set: "prompts#" + key, prompt: true}, true
	}
	return pinTarget{}, false
}

// approveName is what an operator names in `ward tools approve`.
func (t pinTarget) approveName(name string) string { return t.server + "." + name }

// pinEntry caches a pin so the hot path does not read the store on every
// call: a definition whose raw bytes match the cached ones reuses the
// verdict for pinCacheTTL. Approvals made elsewhere (the API writes the
// store) are therefore visible within pinCacheTTL; a changed definition is
// seen at once, since its bytes differ.
type pinEntry struct {
	raw      [32]byte // SHA-256 of the definition's bytes as listed
	hash     string
	approved string
	at       time.Time
}

// pinCacheTTL bounds how long a cached pin verdict or tool set is trusted.
const pinCacheTTL = time.Second

// toolSetEntry caches a server's tool sets.
type toolSetEntry struct {
	first []string // sorted
	last  []string // sorted
	at    time.Time
}

// ForgetPin drops the cached pin of server/tool, so that an approval just
// written to the store takes effect at once on this node.
func (p *Pipeline) ForgetPin(server, tool string) {
	p.mu.Lock()
	delete(p.pins, server+"\x00"+tool)
	p.mu.Unlock()
}

// DefinitionHash is the pin of a tool definition: "sha256:" and the hex
// SHA-256 of its canonical JSON (object keys sorted, numbers as written).
func DefinitionHash(def json.RawMessage) (string, error) {
	var v any
	if err := strictDecodeNumber(def, &v); err != nil {
		return "", fmt.Errorf("tool definition is not JSON: %v", err)
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// observeTools records the names a server lists (tools, or prompts: the
// set of t): the first listing becomes the set trust on first use covers,
// and a listing that differs from the last is recorded (tools.changed)
// with what was added and removed. It returns the first set, and whether
// this listing created it.
func (p *Pipeline) observeTools(ctx context.Context, t pinTarget, items []Item) ([]string, bool, error) {
	server := t.set
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, it.Upstream)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	now := p.cfg.Now()
	p.mu.Lock()
	e, ok := p.toolSets[server]
	p.mu.Unlock()
	if ok && now.Sub(e.at) < pinCacheTTL && slices.Equal(e.last, names) {
		return e.first, false, nil
	}
	set, prev, created, err := p.cfg.Pins.ObserveToolSet(ctx, server, names)
	if err != nil {
		return nil, false, err
	}
	kind := "tool"
	if t.prompt {
		kind = "prompt"
	}
	switch {
	case created:
		err = p.record(ctx, audit.Event{Type: "tools.first", Data: mustJSON(map[string]any{"server": t.server, "kind": kind, "names": set.First})})
	case !slices.Equal(prev, names):
		added, removed := diff(prev, names)
		err = p.record(ctx, audit.Event{Type: "tools.changed", Data: mustJSON(map[string]any{"server": t.server, "kind": kind, "added": added, "removed": removed})})
	}
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	p.toolSets[server] = toolSetEntry{first: set.First, last: names, at: now}
	p.mu.Unlock()
	return set.First, created, nil
}

// firstSet returns the first tool set of server (cached: it never
// changes once recorded), and whether the server has one.
func (p *Pipeline) firstSet(ctx context.Context, server string) ([]string, bool, error) {
	p.mu.Lock()
	e, ok := p.toolSets[server]
	p.mu.Unlock()
	if ok {
		return e.first, true, nil
	}
	set, err := p.cfg.Pins.GetToolSet(ctx, server)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	p.mu.Lock()
	if _, ok := p.toolSets[server]; !ok {
		// Last unknown: the next listing compares with the store.
		p.toolSets[server] = toolSetEntry{first: set.First, last: nil}
	}
	p.mu.Unlock()
	return set.First, true, nil
}

// diff returns what b has that a has not, and what a has that b has not;
// both sorted.
func diff(a, b []string) (added, removed []string) {
	for _, x := range b {
		if _, found := slices.BinarySearch(a, x); !found {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// pin records the definition of name it sees under t and reports whether
// it is approved.
func (p *Pipeline) pin(ctx context.Context, t pinTarget, name string, def json.RawMessage) (approved bool, pin store.ToolPin, err error) {
	server, tool := t.server, name
	key := server + "\x00" + tool
	raw := sha256.Sum256(def)
	now := p.cfg.Now()
	p.mu.Lock()
	e, ok := p.pins[key]
	p.mu.Unlock()
	if ok && e.raw == raw && now.Sub(e.at) < pinCacheTTL {
		return e.approved == e.hash, store.ToolPin{Server: server, Tool: tool, Hash: e.hash, ApprovedHash: e.approved}, nil
	}
	h, err := DefinitionHash(def)
	if err != nil {
		return false, pin, err
	}
	defer func() {
		if err == nil && pin.Hash != "" {
			p.mu.Lock()
			p.pins[key] = pinEntry{raw: raw, hash: pin.Hash, approved: pin.ApprovedHash, at: now}
			p.mu.Unlock()
		}
	}()
	firstUse, suspicion, late := "", "", false
	if p.cfg.Inspect != nil {
		suspicion = p.cfg.Inspect(def)
	}
	switch p.cfg.PinMode {
	case PinTrustEachOnFirstUse:
		firstUse = "first-use"
	case PinTrustOnFirstUse:
		first, known, err := p.firstSet(ctx, t.set)
		if err != nil {
			return false, pin, fmt.Errorf("tool set of %s: %w", server, err)
		}
		if !known {
			// Nothing is pinned before the server's first tool set is
			// recorded: a pin made now would be judged against no set
			// and stay pending for ever.
			return false, pin, errNoToolSet
		}
		if slices.Contains(first, name) {
			firstUse = "first-use"
		} else {
			late = true
		}
	}
	if suspicion != "" {
		// A definition that looks poisoned is never approved on first
		// use: an operator must review it.
		firstUse = ""
	}
	pin, created, changed, err := p.cfg.Pins.ObservePin(ctx, server, tool, h, def, firstUse)
	if err != nil {
		return false, pin, fmt.Errorf("pin %s.%s: %w", server, tool, err)
	}
	switch {
	case created:
		event := "tool.pin"
		if pin.ApprovedHash != h {
			event = "tool.pending"
		}
		data := map[string]any{"server": server, "tool": tool, "hash": h, "approved": pin.ApprovedHash == h, "suspicion": suspicion}
		if late && pin.ApprovedHash != h {
			data["reason"] = "the tool appeared after the server's first tool set"
		}
		err = p.record(ctx, audit.Event{Type: event, Data: mustJSON(data)})
	case changed:
		err = p.record(ctx, audit.Event{Type: "tool.changed", Data: mustJSON(map[string]any{"server": server, "tool": tool, "hash": h, "approved_hash": pin.ApprovedHash})})
	}
	if err != nil {
		return false, pin, err
	}
	return pin.ApprovedHash == h, pin, nil
}

// errNoToolSet is why a tool of a server whose tool list was never
// recorded is not pinned yet.
var errNoToolSet = errors.New("the server's tool list has not been recorded yet; list its tools (tools/list) and retry")

// pinRefusal says why a tool or prompt (what, exposed as name, upstream
// name upstream) whose pin under t is not approved is withheld.
func pinRefusal(what Kind, name string, t pinTarget, pin store.ToolPin, first []string, upstream string) string {
	approve := fmt.Sprintf("ward tools approve %s --hash %s", t.approveName(upstream), pin.Hash)
	switch {
	case pin.ApprovedHash != "":
		return fmt.Sprintf("%s %q changed its definition since it was approved (approved %s, now %s); it is withheld until an operator reviews and re-approves it (%s)", what, name, short(pin.ApprovedHash), short(pin.Hash), approve)
	case first != nil && !slices.Contains(first, upstream):
		return fmt.Sprintf("%s %q appeared after the server's first set (%s); trust on first use does not cover it, so it is withheld until an operator approves it (%s)", what, name, list(first), approve)
	}
	return fmt.Sprintf("%s %q is awaiting operator approval (%s)", what, name, approve)
}

func list(names []string) string {
	const max = 8
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

func short(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}
