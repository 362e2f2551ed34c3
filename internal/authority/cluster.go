package authority

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable reports that the node cannot decide now because it
// cannot confirm that it knows the current revocation state (several
// nodes on one store, and the store's change feed is out of reach). An
// HTTP server should answer 503 Service Unavailable.
var ErrUnavailable = errors.New("unavailable")

// EndedElsewhere applies sessions that another node ended (or that
// expired there): like a local end, they are forgotten and remembered as
// ended, at once, so that every later lookup refuses them; OnEnd is told
// in the background, so that a large batch (an agent with many sessions
// quarantined) does not hold up the caller. Sessions already known here
// as ended are skipped, so a node that sees its own ends come back on the
// change feed does not act twice.
func (a *Authority) EndedElsewhere(ids []string) {
	until := a.cfg.Now().Add(a.cfg.MaxSessionTTL + time.Minute)
	a.mu.Lock()
	var fresh []string
	for _, id := range ids {
		if _, ok := a.ended[id]; !ok {
			fresh = append(fresh, id)
			delete(a.cache, id)
			a.ended[id] = until
		}
	}
	a.mu.Unlock()
	if len(fresh) > 0 {
		go a.cfg.OnEnd(fresh)
	}
}

// Current reports whether a call of session (delegated from the sessions
// of lineage) may be allowed now, by what this node knows at this moment
// rather than when the session was looked up: an error wrapping
// ErrUnavailable when Config.Fresh says the node cannot confirm it knows
// the revocations made elsewhere, ErrUnauthenticated when the session or
// one it was delegated from has ended since. A call that waited after its
// lookup (on a store cut off from this node, say) asks it before it is
// allowed, so that it is not allowed on what was true before the wait.
func (a *Authority) Current(session string, lineage []string) error {
	if a.cfg.Fresh != nil {
		if err := a.cfg.Fresh(); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.ended[session]; ok {
		return fmt.Errorf("%w: session %s has ended", ErrUnauthenticated, session)
	}
	for _, id := range lineage {
		if _, ok := a.ended[id]; ok {
			return fmt.Errorf("%w: session %s has ended", ErrUnauthenticated, id)
		}
	}
	return nil
}

// AgentChanged forgets what is cached of the agent's sessions after
// another node changed the agent (quarantined it, released it, set its
// trust), so the next call reads the store.
func (a *Authority) AgentChanged(name string) { a.evictAgent(name) }

// ForgetCached forgets every cached session, so that every
// next call reads the store: for a node that missed part of the change
// feed.
func (a *Authority) ForgetCached() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.cache)
}
