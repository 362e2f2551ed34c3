package enforce

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/provenance"
	"github.com/ward-dev/ward/internal/scan"
	"github.com/ward-dev/ward/internal/taint"
)

// State is what the pipeline reads and updates of a session besides its
// identity: the labels of what it received (context.taint) and where its
// argument values came from (context.tainted_arguments). [Sessions] is the
// implementation the node and replay share.
type State interface {
	// Labels returns the session's taint labels, sorted.
	Labels(session string) []string
	// Provenance returns the arguments of args at paths (see
	// provenance.Paths) whose values came from text the session read and
	// not from trusted input, or that trusted input does not justify,
	// with an explanation naming each argument and where it came from.
	// Each finding names one argument (an argument may have several).
	Provenance(c *Caller, args json.RawMessage, paths provenance.Paths) (found []approval.ArgumentProvenance, explain string, err error)
	// Receive takes in something the session received.
	Receive(ctx context.Context, c *Caller, r Received)
}

// Received is something an agent received: a tool, prompt or resource
// result, or an HTTP response body.
type Received struct {
	// Source is the tool, prompt or resource name ("fs.read_file", a URI),
	// or "" for an HTTP response, whose source is Host.
	Source string
	Host   string
	// Arguments are the arguments of the call whose result this is: what
	// it read (a file's name, a page's address), which the objective may
	// name (a designated source: see ToolDeclaration.Designate).
	Arguments json.RawMessage
	// Event is the audit index that records it (the trace line in replay).
	Event uint64
	// Result is a JSON result (every string in it is scanned); Body is
	// text (an HTTP response body, scanned whole); Error is an error
	// message the agent saw.
	Result json.RawMessage
	Body   []byte
	Error  string
	// Listing marks definitions the session was shown (see [Listed]).
	Listing bool
}

// Content scanning: a result whose scan.Score reaches SuspiciousScore
// gives the session SuspiciousLabel (policies may refuse sinks to it).
const (
	SuspiciousScore = 3
	SuspiciousLabel = "suspicious"
)

// SessionsConfig configures [Sessions]. Every hook may be nil.
type SessionsConfig struct {
	// Labeler says what results carry, by tool or host; nil: everything is
	// untrusted.
	Labeler *taint.Labeler
	// EventName is what provenance explanations call a result's Event:
	// "event" (the default) on a node, "line" in replay.
	EventName string
	// OnLabel is told of every label a session newly gets and where it
	// came from ("fs.read_file", "host:example.com", "playbook:review").
	OnLabel func(ctx context.Context, c *Caller, label, from string)
	// ScanResults says whether what sessions receive is scanned for
	// instructions aimed at the model (internal/scan): a result whose
	// score reaches SuspiciousScore gives the session SuspiciousLabel and
	// is told to OnContent. Off by default: it stops nothing the origin
	// of arguments does not (policies decide on provenance), flags few
	// injections (none of BIPIA's 150 injected instructions, 18% of the
	// injected sessions of ward's corpus: BENCHMARKS.md) and costs about
	// as much CPU per result as provenance. Turn it on for its signals.
	ScanResults bool
	// OnContent is told of a received text whose scan score reached
	// SuspiciousScore, before the session gets SuspiciousLabel.
	OnContent func(ctx context.Context, c *Caller, source string, event uint64, score int, hits []scan.Hit)
	// OnPartial is told when a result could only partly be indexed for
	// provenance (provenance then cannot clear values it may have held).
	OnPartial func(ctx context.Context, c *Caller, source string, event uint64, note string)
	// Ended reports whether a session has ended: what a call still in
	// flight when its session ended takes in is dropped.
	Ended func(session string) bool
}

// Sessions holds the taint labels and provenance index of every session.
// Its methods are safe for concurrent use.
type Sessions struct {
	cfg   SessionsConfig
	taint *taint.Tracker

	mu sync.Mutex
	ix map[string]*provenance.Index
	// Delegation trees: the sessions of one tree hand each other whatever
	// they read, so a label one of them gets is given to all of them.
	root    map[string]string          // session → its tree's root
	members map[string]map[string]bool // root → the sessions of its tree
}

var _ State = (*Sessions)(nil)

// NewSessions returns an empty Sessions.
func NewSessions(cfg SessionsConfig) *Sessions {
	if cfg.EventName == "" {
		cfg.EventName = "event"
	}
	return &Sessions{cfg: cfg, taint: taint.NewTracker(), ix: map[string]*provenance.Index{},
		root: map[string]string{}, members: map[string]map[string]bool{}}
}

// Labels implements [State].
func (s *Sessions) Labels(session string) []string { return s.taint.Labels(session) }

// AddLabels gives the session labels that came from "from", telling
// OnLabel of each new one.
func (s *Sessions) AddLabels(ctx context.Context, c *Caller, from string, labels ...string) {
	added := s.taint.Add(c.Session, labels...)
	if s.ended(c.Session) {
		// A call still in flight when its session ended: keep nothing
		// (the check comes after the add, so it cannot miss the end).
		s.taint.Forget(c.Session)
		return
	}
	// The whole delegation tree gets them: its sessions hand each other
	// what they read. The caller's lineage (from the store) rebuilds the
	// tree after a restart.
	s.mu.Lock()
	for _, a := range c.Lineage {
		s.link(a, c.Session)
	}
	var tree []string
	if r, ok := s.root[c.Session]; ok {
		for m := range s.members[r] {
			if m != c.Session {
				tree = append(tree, m)
			}
		}
	}
	s.mu.Unlock()
	for _, m := range tree {
		if !s.ended(m) {
			s.taint.Add(m, labels...)
		}
	}
	if s.cfg.OnLabel != nil {
		for _, l := range added {
			s.cfg.OnLabel(ctx, c, l, from)
		}
	}
}

// Seed gives a session labels without telling anyone (sessions that
// outlived a restart, whose history was in memory only).
func (s *Sessions) Seed(session string, labels ...string) { s.taint.Add(session, labels...) }

// RemoveLabel takes a label from a session and reports whether it had it.
func (s *Sessions) RemoveLabel(session, label string) bool { return s.taint.Remove(session, label) }

// Delegated gives a sub-agent's session what its parent has been exposed
// to: the parent can hand it anything it read. Both then share one
// provenance index, and one delegation tree: a label either gets later is
// given to every session of the tree (AddLabels).
func (s *Sessions) Delegated(parent, child string) {
	s.taint.Add(child, s.taint.Labels(parent)...)
	s.mu.Lock()
	if ix, ok := s.ix[parent]; ok {
		s.ix[child] = ix
	}
	s.link(parent, child)
	s.mu.Unlock()
}

// link puts parent and child in one delegation tree, merging the trees
// they were in. s.mu must be held.
func (s *Sessions) link(parent, child string) {
	r, ok := s.root[parent]
	if !ok {
		r = parent
		s.root[parent] = r
		s.members[r] = map[string]bool{parent: true}
	}
	if old, ok := s.root[child]; ok {
		if old == r {
			return
		}
		for m := range s.members[old] {
			s.root[m] = r
			s.members[r][m] = true
		}
		delete(s.members, old)
		return
	}
	s.root[child] = r
	s.members[r][child] = true
}

// Forget drops what is kept of ended sessions.
func (s *Sessions) Forget(ids ...string) {
	s.taint.Forget(ids...)
	s.mu.Lock()
	for _, id := range ids {
		if r, ok := s.root[id]; ok {
			delete(s.members[r], id)
			if len(s.members[r]) == 0 {
				delete(s.members, r)
			}
			delete(s.root, id)
		}
		delete(s.ix, id)
	}
	s.mu.Unlock()
}

func (s *Sessions) ended(session string) bool { return s.cfg.Ended != nil && s.cfg.Ended(session) }

// index returns the session's provenance index, created with the
// session's objective as trusted input.
func (s *Sessions) index(c *Caller) *provenance.Index {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.ix[c.Session]
	if !ok {
		ix = provenance.New(provenance.Config{})
		ix.AddObjective(c.Objective)
		if !s.ended(c.Session) { // ended: a call still in flight; keep nothing
			s.ix[c.Session] = ix
		}
	}
	return ix
}

// Provenance implements [State].
func (s *Sessions) Provenance(c *Caller, args json.RawMessage, paths provenance.Paths) ([]approval.ArgumentProvenance, string, error) {
	findings, err := s.index(c).CheckArgs(args, paths)
	if err != nil {
		return nil, "", err
	}
	_, why := provenance.Explain(findings, s.cfg.EventName)
	var found []approval.ArgumentProvenance
	for _, f := range findings {
		found = append(found, approval.ArgumentProvenance{Argument: f.Argument, Value: f.Value, Kind: f.Kind, Source: f.Source,
			Labels: s.sourceLabels(f.Source), Event: f.Event, Results: f.Results, Partial: f.Partial, Unjustified: f.Unjustified})
	}
	return found, why, nil
}

// sourceLabels returns the taint labels a source of untrusted results
// ("server.tool", "host:example.org") gives a session, "untrusted" among
// them: only untrusted values are indexed (a field of a tool's result may
// be untrusted where the tool is not).
func (s *Sessions) sourceLabels(source string) []string {
	if source == "" {
		return nil
	}
	var labels []string
	if s.cfg.Labeler != nil {
		if host, ok := strings.CutPrefix(source, "host:"); ok {
			labels = s.cfg.Labeler.Host(host)
		} else {
			labels = s.cfg.Labeler.Tool(source)
		}
	}
	labels = slices.Clone(labels) // the labeler's own: not to be sorted in place
	if !slices.Contains(labels, taint.Untrusted) {
		labels = append(labels, taint.Untrusted)
	}
	slices.Sort(labels)
	return labels
}

// Receive implements [State]: the session gets the labels of what it
// received; an untrusted result is indexed for provenance and a result
// labelled trusted or reliable is trusted input. A tool whose results
// have field labels (taint.Labeler.WithFields) has each part of its
// result so treated by the labels of its fields. With ScanResults, every
// text in the result is scanned for instructions aimed at the model.
func (s *Sessions) Receive(ctx context.Context, c *Caller, r Received) {
	source, labels := r.Source, s.labelsOf(r)
	if r.Host != "" {
		source = "host:" + r.Host
	}
	doc := []byte(r.Result)
	if r.Host != "" || len(doc) == 0 {
		doc = r.Body
	}
	ix := s.index(c)
	if r.Listing {
		if !taint.Clears(labels) && len(doc) > 0 {
			if sum := ix.AddUntrusted(source, r.Event, doc); sum.Partial && s.cfg.OnPartial != nil {
				s.cfg.OnPartial(ctx, c, source, r.Event, sum.Note)
			}
		}
		return
	}
	var fields *taint.FieldLabels
	if r.Host == "" {
		fields = s.cfg.Labeler.Fields(r.Source)
	}
	// A read the objective names (its file, page or id) is a designated
	// source as a whole.
	named := r.Host == "" && len(r.Arguments) > 0 && ix.Names(argumentValues(r.Arguments))
	partial := func(sum provenance.Summary) {
		if sum.Partial && s.cfg.OnPartial != nil {
			s.cfg.OnPartial(ctx, c, source, r.Event, sum.Note)
		}
	}
	switch {
	case fields != nil && len(doc) > 0:
		split := fields.Split(doc, labels)
		// The tool's labels and its fields': a session that received
		// from a source carries its labels even when no value came.
		s.AddLabels(ctx, c, source, slices.Concat(labels, split.Labels())...)
		var designated map[int]bool
		if slices.ContainsFunc(split.Parts, func(p taint.Part) bool { return slices.Contains(p.Labels, taint.Untrusted) }) {
			designated = designatedRecords(ix, split, named)
		}
		trusted := map[int][]provenance.Value{}
		for _, part := range split.Parts {
			vals := make([]provenance.Value, len(part.Values))
			for i, v := range part.Values {
				vals[i] = provenance.Value{Text: v.Text, Number: v.Number}
			}
			switch {
			case slices.Contains(part.Labels, taint.Untrusted) && designated != nil:
				var plain, chosen []provenance.Value
				for i, v := range part.Values {
					if designated[v.Record] {
						chosen = append(chosen, vals[i])
					} else {
						plain = append(plain, vals[i])
					}
				}
				if len(plain) > 0 || len(chosen) == 0 {
					partial(ix.AddUntrustedValues(source, r.Event, plain, split.Note))
				}
				if len(chosen) > 0 {
					partial(ix.AddDesignatedValues(source, r.Event, chosen, split.Note))
				}
			case slices.Contains(part.Labels, taint.Untrusted):
				partial(ix.AddUntrustedValues(source, r.Event, vals, split.Note))
			case taint.Clears(part.Labels):
				for i, v := range part.Values {
					trusted[v.Record] = append(trusted[v.Record], vals[i])
				}
			}
		}
		addTrustedRecords(ix, trusted)
	default:
		s.AddLabels(ctx, c, source, labels...)
		switch {
		case slices.Contains(labels, taint.Untrusted) && named:
			partial(ix.AddDesignated(source, r.Event, doc))
		case slices.Contains(labels, taint.Untrusted):
			partial(ix.AddUntrusted(source, r.Event, doc))
		case taint.Clears(labels) && r.Host == "":
			// A tool's result, by record (a file of a listing, a
			// standing order): read by its fields as field labels read
			// one, all of them with the tool's labels.
			trusted := map[int][]provenance.Value{}
			for _, part := range new(taint.FieldLabels).Split(doc, labels).Parts {
				for _, v := range part.Values {
					trusted[v.Record] = append(trusted[v.Record], provenance.Value{Text: v.Text, Number: v.Number})
				}
			}
			addTrustedRecords(ix, trusted)
		case taint.Clears(labels):
			ix.AddTrustedResult(doc)
		}
	}
	if !s.cfg.ScanResults {
		return
	}
	var hits []scan.Hit
	if len(r.Result) > 0 {
		for _, t := range scan.Texts(r.Result, 0) {
			hits = append(hits, scan.Result(t)...)
		}
	} else if len(r.Body) > 0 {
		hits = scan.Result(string(r.Body))
	}
	if r.Error != "" {
		hits = append(hits, scan.Result(r.Error)...)
	}
	if score := scan.Score(hits); score >= SuspiciousScore {
		if s.cfg.OnContent != nil {
			s.cfg.OnContent(ctx, c, source, r.Event, score, hits)
		}
		s.AddLabels(ctx, c, source, SuspiciousLabel)
	}
}

// addTrustedRecords adds the trusted values of a result by record: the
// elements of its lists with provenance.Index.AddTrustedRecords, and the
// values in no list as one record too when the result has no list, as
// plain trusted values otherwise (the envelope of a list).
func addTrustedRecords(ix *provenance.Index, records map[int][]provenance.Value) {
	var recs [][]provenance.Value
	for _, rec := range slices.Sorted(maps.Keys(records)) {
		if rec == 0 && len(records) > 1 {
			ix.AddTrustedValues(records[rec])
		} else {
			recs = append(recs, records[rec])
		}
	}
	if len(recs) > 0 {
		ix.AddTrustedRecords(recs)
	}
}

// designatedRecords returns the records of split (by taint.Value.Record)
// that are designated sources, nil for none: all of them when the read
// is named (named), else each record the objective names by one of its
// values, whatever their labels (a mail by its sender, a file by its
// name). Values in no list (record 0) are a record of their own only
// when the result has no list (a file with its name and content); beside
// lists they are the result's envelope, designated only with the read.
func designatedRecords(ix *provenance.Index, split taint.Split, named bool) map[int]bool {
	records := map[int][]provenance.Value{}
	for _, part := range split.Parts {
		for _, v := range part.Values {
			records[v.Record] = append(records[v.Record], provenance.Value{Text: v.Text, Number: v.Number})
		}
	}
	var out map[int]bool
	for rec, vals := range records {
		if named || rec != 0 && ix.Names(vals) || rec == 0 && len(records) == 1 && ix.Names(vals) {
			if out == nil {
				out = map[int]bool{}
			}
			out[rec] = true
		}
	}
	return out
}

// argumentValues returns the strings of a call's arguments that say what
// it reads, for provenance.Index.Names: the top-level arguments named
// for a target (targetArgument), and the strings in them. What a search
// is asked for names nothing: web.search {"query": "bill-april.txt"}
// returns whatever pages match, not the file the objective names.
func argumentValues(args json.RawMessage) []provenance.Value {
	var out []provenance.Value
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, provenance.Value{Text: v})
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var top map[string]any
	if json.Unmarshal(args, &top) == nil {
		for k, v := range top {
			if targetArgument(k) {
				walk(v)
			}
		}
	}
	return out
}

// targetArgument reports whether an argument's name says it names what a
// call reads: path, file, filename, url, uri, link, id, name, resource,
// document or doc, a plural of one, or a name ending in one after '_',
// '-' or a capital letter ("file_id", "reservation-id", "pageUrl").
func targetArgument(name string) bool {
	targets := []string{"path", "file", "filename", "url", "uri", "link", "id", "name", "resource", "document", "doc"}
	lower := strings.ToLower(name)
	for _, t := range targets {
		for _, w := range []string{t, t + "s"} {
			if lower == w {
				return true
			}
			if i := len(name) - len(w); i > 0 && lower[i:] == w && (name[i-1] == '_' || name[i-1] == '-' || 'A' <= name[i] && name[i] <= 'Z') {
				return true
			}
		}
	}
	return false
}

// ReceiveHost gives the session the labels of what a host's answers carry,
// before any byte of them arrives (a tunnel, whose content ward cannot
// read; a response whose body is taken in by Receive once read).
func (s *Sessions) ReceiveHost(ctx context.Context, c *Caller, host string) {
	s.AddLabels(ctx, c, "host:"+host, s.labelsOf(Received{Host: host})...)
}

// labelsOf is what r carries by configuration: its host's labels or its
// tool's (everything untrusted without a labeler).
func (s *Sessions) labelsOf(r Received) []string {
	if s.cfg.Labeler == nil {
		return []string{taint.Untrusted}
	}
	if r.Host != "" {
		return s.cfg.Labeler.Host(strings.ToLower(r.Host))
	}
	return s.cfg.Labeler.Tool(r.Source)
}
