package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/strictjson"
)

type catEntry struct {
	server   string
	upstream string
	def      json.RawMessage
}

type template struct {
	uriTemplate string
	prefix      string
	server      string
}

// fetchAll pages through one list method of one upstream. Pages are read
// strictly; a page that is not strict JSON ends the listing with an error.
func (s *Session) fetchAll(ctx context.Context, up *upstream, method, key string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	for page := 0; page < maxListPages; page++ {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		resp, err := s.roundTrip(ctx, up, method, params, jsonrpc.ID{})
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("upstream %s: %s: %v", up.name, method, resp.Error)
		}
		res, err := strictjson.Object(resp.Result)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %s: malformed result: %v", up.name, method, err)
		}
		var items []json.RawMessage
		if raw, ok := res[key]; ok {
			if err := strictjson.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("upstream %s: %s: malformed %s: %v", up.name, method, key, err)
			}
		}
		all = append(all, items...)
		cursor = ""
		if raw, ok := res["nextCursor"]; ok && string(raw) != "null" {
			if err := strictjson.Unmarshal(raw, &cursor); err != nil {
				return nil, fmt.Errorf("upstream %s: %s: nextCursor must be a string", up.name, method)
			}
		}
		if cursor == "" {
			return all, nil
		}
	}
	return all, nil
}

func listMethod(kind Kind) (method, key string) {
	switch kind {
	case KindTool:
		return "tools/list", "tools"
	case KindPrompt:
		return "prompts/list", "prompts"
	case KindResource:
		return "resources/list", "resources"
	default:
		return "resources/templates/list", "resourceTemplates"
	}
}

func (u *upstream) offers(kind Kind) bool {
	switch kind {
	case KindTool:
		return u.caps.Tools != nil
	case KindPrompt:
		return u.caps.Prompts != nil
	default:
		return u.caps.Resources != nil
	}
}

// item reads one listed item strictly: an object whose member field is a
// non-empty string, without members whose names differ only in case.
func item(raw json.RawMessage, field string) (params, string, bool) {
	if checkNames(raw) != nil {
		return nil, "", false
	}
	obj, err := strictjson.Object(raw)
	if err != nil {
		return nil, "", false
	}
	v, ok, err := params(obj).str(field)
	if err != nil || !ok || v == "" {
		return nil, "", false
	}
	return obj, v, true
}

// namedIndex indexes Session.cats.
func namedIndex(kind Kind) int {
	if kind == KindPrompt {
		return 1
	}
	return 0
}

// catalog returns the catalog of kind; catMu must be held. It must not be
// modified (see snapshot.go).
func (s *Session) catalog(kind Kind) *catalog {
	if c := s.cats[namedIndex(kind)]; c != nil {
		return c
	}
	return noCatalog
}

// listedItem is one tool or prompt of an upstream's list, as read.
type listedItem struct {
	obj    params
	stable string
}

// refreshNamed fetches the tools or prompts of one upstream into the catalog
// and returns those the guard lets the caller see.
func (s *Session) refreshNamed(ctx context.Context, up *upstream, kind Kind) ([]listedItem, error) {
	method, key := listMethod(kind)
	raw, err := s.fetchAll(ctx, up, method, key)
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(raw))
	objs := make([]params, 0, len(raw))
	seen := map[string]bool{}
	for _, r := range raw {
		obj, name, ok := item(r, "name")
		if !ok || seen[name] {
			s.g.cfg.Logger.Warn("upstream listed a malformed or repeated item; skipped", "server", up.name, "kind", kind)
			continue
		}
		seen[name] = true
		items = append(items, Item{Name: up.name + "." + name, Upstream: name, Definition: r})
		objs = append(objs, obj)
	}
	// The guard sees the list before the catalog does: a call that finds
	// a tool in the catalog must not be decided before the list it came
	// from was recorded.
	keep, err := s.g.cfg.Guard.Filter(ctx, s.who(), kind, up.name, items)
	if err != nil {
		return nil, fmt.Errorf("filter %s of %s: %v", key, up.name, err)
	}
	fresh := make(map[string]catEntry, len(items))
	for _, it := range items {
		fresh[it.Name] = catEntry{server: up.name, upstream: it.Upstream, def: it.Definition}
	}
	s.catMu.Lock()
	s.cats[namedIndex(kind)] = s.g.cats.withList(s.catalog(kind), up.name, fresh, s.g.modes)
	s.catMu.Unlock()

	var out []listedItem
	for i, obj := range objs {
		if i < len(keep) && keep[i] {
			out = append(out, listedItem{obj: obj, stable: items[i].Name})
		}
	}
	return out, nil
}

// listNamed serves tools/list and prompts/list: every upstream's list,
// each item under the name exposeNames gives it.
func (s *Session) listNamed(ctx context.Context, req *jsonrpc.Request, kind Kind) {
	_, key := listMethod(kind)
	var got []listedItem
	for _, up := range s.ups {
		if !up.offers(kind) {
			continue
		}
		items, err := s.refreshNamed(ctx, up, kind)
		if err != nil {
			s.g.cfg.Logger.Warn("list failed", "server", up.name, "kind", kind, "err", err)
			continue
		}
		got = append(got, items...)
	}
	s.catMu.Lock()
	names := s.catalog(kind).names
	s.catMu.Unlock()
	all := make([]json.RawMessage, 0, len(got))
	for _, it := range got {
		exposed, ok := names.exposed[it.stable]
		if !ok {
			continue // relisted without it meanwhile
		}
		all = append(all, it.obj.with("name", exposed).encode())
	}
	s.reply(req.ID, map[string]any{key: all})
}

// find looks a called name up: an exposed bare name, else a stable
// "SERVER.NAME" of a configured server.
func (s *Session) find(kind Kind, name string) (catEntry, string, bool) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	cat := s.catalog(kind)
	if stable, ok := cat.names.bare[name]; ok {
		e, ok := cat.entries[stable]
		return e, stable, ok
	}
	if server, _, ok := splitName(name); ok {
		if _, configured := s.g.modes[server]; configured {
			e, ok := cat.entries[name]
			return e, name, ok
		}
	}
	return catEntry{}, "", false
}

// resolve finds the tool or prompt a client calls by name, listing again
// what may hold it if it is not known yet: the named server for
// "SERVER.NAME", every upstream for a bare name. It returns the entry and
// its stable name, or the reason to give the client.
func (s *Session) resolve(ctx context.Context, kind Kind, name string) (catEntry, string, error) {
	if e, stable, ok := s.find(kind, name); ok {
		return e, stable, nil
	}
	server, _, prefixed := splitName(name)
	if _, configured := s.g.modes[server]; prefixed && configured {
		up := s.byName[server]
		if up == nil {
			return catEntry{}, "", s.unavailable(server)
		}
		if _, err := s.refreshNamed(ctx, up, kind); err != nil {
			return catEntry{}, "", fmt.Errorf("%s %q: server %s could not list its %ss: %v", kind, name, server, kind, err)
		}
	} else {
		for _, up := range s.ups {
			if up.offers(kind) {
				if _, err := s.refreshNamed(ctx, up, kind); err != nil {
					s.g.cfg.Logger.Warn("list failed", "server", up.name, "kind", kind, "err", err)
				}
			}
		}
	}
	if e, stable, ok := s.find(kind, name); ok {
		return e, stable, nil
	}
	return catEntry{}, "", s.unknown(kind, name)
}

// errUnavailable marks a call that names a server ward cannot reach.
type errUnavailable struct{ msg string }

func (e *errUnavailable) Error() string { return e.msg }

// unavailable says why server cannot be reached in this session.
func (s *Session) unavailable(server string) error {
	why := strings.TrimPrefix(s.failed[server], server+": ")
	if why == "" {
		why = "not connected"
	}
	return &errUnavailable{fmt.Sprintf("server %s is unavailable (%s); open a new MCP session once it is back", server, why)}
}

// unknown explains a name that nothing resolves.
func (s *Session) unknown(kind Kind, name string) error {
	s.catMu.Lock()
	clash, clashed := s.catalog(kind).names.clashes[name]
	s.catMu.Unlock()
	if clashed {
		return fmt.Errorf("%s %q is offered by more than one server (%s); call it by the name tools/list shows: %s", kind, name, strings.Join(clash.Servers, ", "), strings.Join(clash.Shown, " or "))
	}
	if server, _, ok := splitName(name); ok {
		if _, configured := s.g.modes[server]; configured {
			return fmt.Errorf("unknown %s %q: server %s does not offer it", kind, name, server)
		}
	}
	var down []string
	for _, srv := range s.g.Servers() {
		if _, failed := s.failed[srv]; failed {
			down = append(down, srv)
		}
	}
	if len(down) > 0 {
		var whys []string
		for _, srv := range down {
			whys = append(whys, s.unavailable(srv).Error())
		}
		return &errUnavailable{fmt.Sprintf("unknown %s %q; it may be offered by a server that is not connected: %s", kind, name, strings.Join(whys, "; "))}
	}
	return fmt.Errorf("unknown %s %q: no server offers it (%ss/list shows the names to call)", kind, name, kind)
}

func (s *Session) listResources(ctx context.Context, req *jsonrpc.Request, kind Kind) {
	_, key := listMethod(kind)
	all := []json.RawMessage{}
	for _, up := range s.ups {
		if !up.offers(kind) {
			continue
		}
		items, err := s.refreshResources(ctx, up, kind)
		if err != nil {
			s.g.cfg.Logger.Warn("list failed", "server", up.name, "kind", kind, "err", err)
			continue
		}
		all = append(all, items...)
	}
	s.reply(req.ID, map[string]any{key: all})
}

func (s *Session) refreshResources(ctx context.Context, up *upstream, kind Kind) ([]json.RawMessage, error) {
	method, key := listMethod(kind)
	raw, err := s.fetchAll(ctx, up, method, key)
	if err != nil {
		return nil, err
	}
	field := "uri"
	if kind == KindResourceTemplate {
		field = "uriTemplate"
	}
	var items []Item
	var kept []json.RawMessage
	for _, r := range raw {
		_, uri, ok := item(r, field)
		if !ok {
			continue
		}
		items = append(items, Item{Name: uri, Upstream: uri, Definition: r})
		kept = append(kept, r)
	}
	s.catMu.Lock()
	if kind == KindResource {
		if s.resources == nil {
			s.resources = map[string]string{}
		}
		for _, it := range items {
			if prev, ok := s.resources[it.Name]; ok && prev != up.name {
				// Claimed by two upstreams: route it to neither.
				s.resources[it.Name] = ""
				continue
			}
			s.resources[it.Name] = up.name
		}
	} else {
		kept := s.templates[:0]
		for _, t := range s.templates {
			if t.server != up.name {
				kept = append(kept, t)
			}
		}
		s.templates = kept
		for _, it := range items {
			prefix, _, _ := strings.Cut(it.Name, "{")
			s.templates = append(s.templates, template{uriTemplate: it.Name, prefix: prefix, server: up.name})
		}
		sort.SliceStable(s.templates, func(i, j int) bool { return len(s.templates[i].prefix) > len(s.templates[j].prefix) })
	}
	s.catMu.Unlock()
	keep, err := s.g.cfg.Guard.Filter(ctx, s.who(), kind, up.name, items)
	if err != nil {
		return nil, fmt.Errorf("filter %s of %s: %v", key, up.name, err)
	}
	var out []json.RawMessage
	for i, r := range kept {
		if i < len(keep) && keep[i] {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *Session) invalidate(server string) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	for _, kind := range []Kind{KindTool, KindPrompt} {
		// The names stay as the client last saw them until the server's
		// list is fetched again (a call that misses fetches it).
		if c := s.cats[namedIndex(kind)]; c != nil {
			s.cats[namedIndex(kind)] = s.g.cats.without(c, server)
		}
	}
	for uri, srv := range s.resources {
		if srv == server {
			delete(s.resources, uri)
		}
	}
	kept := s.templates[:0]
	for _, t := range s.templates {
		if t.server != server {
			kept = append(kept, t)
		}
	}
	s.templates = kept
}

// routeURI finds the upstream that serves a resource URI: the one that
// listed it, else the one whose URI template has the longest matching literal
// prefix, else the only upstream offering resources. A URI that two upstreams
// claim (listed by both, or matched by templates of both) is routed to
// neither: one upstream must not capture another's resources.
func (s *Session) routeURI(ctx context.Context, uri string) (*upstream, error) {
	find := func() (*upstream, error) {
		s.catMu.Lock()
		defer s.catMu.Unlock()
		if srv, ok := s.resources[uri]; ok {
			if srv == "" {
				return nil, fmt.Errorf("resource %q is listed by more than one upstream; ward will not guess which one serves it", uri)
			}
			return s.byName[srv], nil
		}
		var match *upstream
		best := -1
		for _, t := range s.templates {
			if t.uriTemplate != uri && (t.prefix == "" || !strings.HasPrefix(uri, t.prefix)) {
				continue
			}
			up := s.byName[t.server]
			switch {
			case match == nil:
				match, best = up, len(t.prefix)
			case up != match:
				return nil, fmt.Errorf("resource %q matches URI templates of more than one upstream (%s, %s); ward will not guess which one serves it", uri, match.name, up.name)
			case len(t.prefix) > best:
				best = len(t.prefix)
			}
		}
		return match, nil
	}
	if up, err := find(); up != nil || err != nil {
		return up, err
	}
	var offering []*upstream
	for _, up := range s.ups {
		if up.offers(KindResource) {
			offering = append(offering, up)
			_, _ = s.refreshResources(ctx, up, KindResource)
			_, _ = s.refreshResources(ctx, up, KindResourceTemplate)
		}
	}
	if up, err := find(); up != nil || err != nil {
		return up, err
	}
	if len(offering) == 1 {
		return offering[0], nil
	}
	return nil, fmt.Errorf("no upstream serves resource %q", uri)
}

// checkURI is enforce.CheckURI.
func checkURI(uri string) error { return enforce.CheckURI(uri) }
