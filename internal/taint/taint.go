// Package taint tracks where the data a session holds came from.
//
// Every result an agent receives, from an MCP tool or through the egress
// proxy, carries labels from configuration:
//
//	private     the result holds private data (mail, customer records, secrets)
//	untrusted   a third party can write it (web pages, inbound mail, uploads),
//	            so it may carry instructions aimed at the model
//	trusted     neither: the result adds no label
//	reliable    with private: the data comes from a source whose values may
//	            choose where data or money goes (the user's bank, calendar,
//	            contacts); they clear argument provenance
//
// A [Labeler] maps tool names and hosts to labels. Whatever it does not
// know is untrusted: a tool or host nobody labelled is treated as content
// anyone could have written. Below the whole result, [Labeler.WithFields]
// labels fields: which parts of a tool's result a third party can write
// (a transaction's subject, a page's body, an invitation's description)
// and which it cannot (a transaction's counterparty, a calendar entry's
// participants), by path in structured content and, for text results, by
// the rule [FieldLabels.Split] documents. A field a third party chooses is
// not reliable even when the server vouches for it: a mail's sender is
// who sent it, but the sender chose that address, so a reply may go there
// only when the objective names the mail (internal/provenance,
// designated sources). Each value of a split result carries its record
// ([Value.Record]): the element of the outermost list it belongs to.
//
// A [Tracker] accumulates, per session, the labels of the results the
// session has received; the gateway hands them to policy as
// context.taint. Argument provenance (internal/provenance) reads the
// labels of each value: untrusted values are indexed as untrusted, values
// labelled trusted or reliable ([Clears]) are trusted input.
//
// Labels only accumulate: a session never becomes less tainted. The
// tracker is in memory; a node that restarts forgets the labels of
// sessions that outlive it (sessions are short-lived; see the closing
// note of issue 5 for persisting them).
package taint

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// The labels ward knows.
const (
	Private   = "private"
	Untrusted = "untrusted"
	Trusted   = "trusted" // adds nothing
	// Reliable marks data from a source whose values may choose where
	// data or money goes (private data the user's bank or calendar
	// wrote): its values clear argument provenance. It is no taint: a
	// session is never labelled reliable.
	Reliable = "reliable"
)

// Clears reports whether values labelled labels are trusted input for
// argument provenance: labelled trusted or reliable, and not untrusted.
func Clears(labels []string) bool {
	return !slices.Contains(labels, Untrusted) && (slices.Contains(labels, Trusted) || slices.Contains(labels, Reliable))
}

// Tracker holds the labels of each session. Its methods are safe for
// concurrent use.
type Tracker struct {
	mu       sync.RWMutex
	sessions map[string][]string // sorted, unique
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{sessions: map[string][]string{}} }

// Add gives session the labels (Trusted is ignored) and returns those it
// did not have yet, in order.
func (t *Tracker) Add(session string, labels ...string) (added []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	have := t.sessions[session]
	for _, l := range labels {
		if l == Trusted || l == Reliable || l == "" {
			continue
		}
		i, found := slices.BinarySearch(have, l)
		if found {
			continue
		}
		have = slices.Insert(slices.Clip(have), i, l)
		added = append(added, l)
	}
	if len(added) > 0 {
		t.sessions[session] = have
	}
	return added
}

// Labels returns session's labels, sorted. The slice must not be modified.
func (t *Tracker) Labels(session string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.sessions[session]
}

// Remove takes a label from a session and reports whether it had it. Only
// an operator should: labels otherwise only accumulate.
func (t *Tracker) Remove(session, label string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	have := t.sessions[session]
	i, found := slices.BinarySearch(have, label)
	if found {
		t.sessions[session] = slices.Delete(slices.Clone(have), i, i+1)
	}
	return found
}

// Forget drops the labels of ended sessions.
func (t *Tracker) Forget(sessions ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range sessions {
		delete(t.sessions, s)
	}
}

// Labeler maps tools and hosts to the labels of their results, and the
// fields of tools' results to theirs ([Labeler.WithFields]).
type Labeler struct {
	tools  []rule
	hosts  []rule
	fields []fieldSet
}

type rule struct {
	pattern string // exact, or a prefix ending in "*" (tools) / "*." suffix (hosts)
	labels  []string
}

// NewLabeler builds a labeler. Tool patterns are "SERVER.TOOL", resource
// URIs, or either ending in "*"; host patterns are a host name or
// "*.example.com" (the domain's subdomains), and "*" alone matches every
// host. The most specific pattern wins: an exact name, then the longest
// prefix. Labels must be private, untrusted or trusted.
func NewLabeler(tools, hosts map[string][]string) (*Labeler, error) {
	l := &Labeler{}
	for p, ls := range tools {
		if i := strings.IndexByte(p, '*'); p == "" || (i >= 0 && i != len(p)-1) {
			return nil, fmt.Errorf("taint tool pattern %q: a name, optionally ending in *", p)
		}
		r, err := newRule(p, ls)
		if err != nil {
			return nil, err
		}
		l.tools = append(l.tools, r)
	}
	for p, ls := range hosts {
		host := strings.TrimPrefix(p, "*.")
		if p != "*" && (host == "" || strings.ContainsAny(host, "*/: ") || host != strings.ToLower(host)) {
			return nil, fmt.Errorf("taint host pattern %q: a lowercase host name, *.domain or *", p)
		}
		r, err := newRule(p, ls)
		if err != nil {
			return nil, err
		}
		l.hosts = append(l.hosts, r)
	}
	return l, nil
}

func newRule(p string, labels []string) (rule, error) {
	if len(labels) == 0 {
		return rule{}, fmt.Errorf("taint pattern %q: no labels (use [trusted] for none)", p)
	}
	for _, x := range labels {
		if x != Private && x != Untrusted && x != Trusted && x != Reliable {
			return rule{}, fmt.Errorf("taint pattern %q: unknown label %q (want private, untrusted, trusted or reliable)", p, x)
		}
	}
	if slices.Contains(labels, Untrusted) && slices.Contains(labels, Reliable) {
		return rule{}, fmt.Errorf("taint pattern %q: untrusted and reliable: what a third party can write is no reliable source", p)
	}
	return rule{pattern: p, labels: slices.Clone(labels)}, nil
}

// Tool returns the labels of a tool's (or resource's) results. A nil
// Labeler labels everything untrusted.
func (l *Labeler) Tool(name string) []string {
	if l == nil {
		return untrustedOnly
	}
	return best(l.tools, func(p string) (bool, int) {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix), len(prefix)
		}
		return p == name, len(p) + 1
	})
}

// Host returns the labels of what a host answers.
func (l *Labeler) Host(host string) []string {
	if l == nil {
		return untrustedOnly
	}
	return best(l.hosts, func(p string) (bool, int) {
		switch {
		case p == "*":
			return true, 0
		case strings.HasPrefix(p, "*."):
			return strings.HasSuffix(host, p[1:]), len(p)
		}
		return p == host, len(p) + 2
	})
}

var untrustedOnly = []string{Untrusted}

// best returns the labels of the most specific matching rule, untrusted if
// none matches.
func best(rules []rule, match func(p string) (bool, int)) []string {
	out, score := untrustedOnly, -1
	for _, r := range rules {
		if ok, s := match(r.pattern); ok && s > score {
			out, score = r.labels, s
		}
	}
	return out
}
