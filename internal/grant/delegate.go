package grant

import (
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Delegation is what a session asks for on behalf of a sub-agent (RFC 8693
// token exchange: the parent grant is the subject token, the child's key
// proof the actor's).
type Delegation struct {
	Session  string        // child session id; must differ from the parent's
	SPIFFEID string        // child's SPIFFE ID, in the parent's trust domain
	Agent    string        // child agent; "" means the parent's
	JKT      string        // child key thumbprint; must differ from the parent's
	Scope    Scope         // requested; the zero Scope means the parent's
	TTL      time.Duration // requested; 0 or more than the parent's remaining lifetime means the remaining lifetime
}

// Narrow computes the claims of a child grant from a verified parent grant.
// It is pure: no clock, no randomness, no I/O; pass the result to
// Issuer.Issue, which assigns the child's ID.
//
// The child keeps the parent's Subject (the root session), Issuer,
// Audience, Sponsor and Objective; its Parent is the parent's ID, its Depth
// the parent's plus one, its Act {Sub: child SPIFFE ID, Act: parent's Act}.
// Narrow refuses, with ErrWiden, a Scope the parent's does not cover; with
// ErrDepth, a Depth above maxDepth (maxDepth <= 0 allows no delegation);
// with ErrExpired, a parent with no lifetime left at now; and with a plain
// error, a child that reuses the parent's key or session, a malformed
// SPIFFE ID or thumbprint, or a negative TTL. The child's Expiry never passes
// the parent's.
func Narrow(parent *Claims, d Delegation, maxDepth int, now time.Time) (Claims, error) {
	if parent == nil {
		return Claims{}, errors.New("narrow: no parent grant")
	}
	depth := parent.Depth + 1
	if depth > maxDepth || depth > maxChainDepth {
		return Claims{}, fmt.Errorf("narrow: %w: child depth %d, max %d", ErrDepth, depth, max(maxDepth, 0))
	}
	remaining := parent.Expiry.Sub(now)
	if remaining <= 0 {
		return Claims{}, fmt.Errorf("narrow: %w: parent grant has no lifetime left", ErrExpired)
	}
	switch {
	case !validText(d.Session, true):
		return Claims{}, errors.New("narrow: child session id missing or malformed")
	case d.Session == parent.Session:
		return Claims{}, errors.New("narrow: child session id equals the parent's")
	case !validJKT(d.JKT):
		return Claims{}, errors.New("narrow: child key thumbprint missing or malformed")
	case d.JKT == parent.JKT:
		return Claims{}, errors.New("narrow: child key equals the parent's; a sub-agent needs its own key")
	case !validText(d.Agent, false):
		return Claims{}, errors.New("narrow: child agent malformed")
	case d.TTL < 0:
		return Claims{}, errors.New("narrow: negative ttl")
	}
	pid, err := spiffeid.FromString(parent.Subject)
	if err != nil {
		return Claims{}, errors.New("narrow: parent subject is not a SPIFFE ID")
	}
	if err := memberOf(d.SPIFFEID, pid.TrustDomain()); err != nil {
		return Claims{}, fmt.Errorf("narrow: child %w", err)
	}
	if d.SPIFFEID == parent.SPIFFEID {
		return Claims{}, errors.New("narrow: child SPIFFE ID equals the parent's")
	}
	scope := d.Scope
	if scope.IsZero() {
		scope = cloneScope(parent.Scope)
	} else {
		if err := parent.Scope.Covers(scope); err != nil {
			return Claims{}, fmt.Errorf("narrow: %w", err)
		}
		scope = cloneScope(scope)
	}
	exp := parent.Expiry
	if d.TTL > 0 && d.TTL < remaining {
		// Whole seconds, rounded down so the child never outlives the parent.
		exp = now.Add(d.TTL).Truncate(time.Second)
		if !exp.After(now) {
			return Claims{}, errors.New("narrow: ttl shorter than one second")
		}
	}
	agent := d.Agent
	if agent == "" {
		agent = parent.Agent
	}
	return Claims{
		Issuer:    parent.Issuer,
		Subject:   parent.Subject,
		Audience:  parent.Audience,
		Session:   d.Session,
		SPIFFEID:  d.SPIFFEID,
		Agent:     agent,
		Sponsor:   parent.Sponsor,
		Parent:    parent.ID,
		Depth:     depth,
		Scope:     scope,
		Objective: parent.Objective,
		JKT:       d.JKT,
		Act:       &Actor{Sub: d.SPIFFEID, Act: cloneActor(parent.Act)},
		IssuedAt:  now.Truncate(time.Second),
		NotBefore: now.Truncate(time.Second),
		Expiry:    exp,
	}, nil
}

// cloneScope copies s so the child's claims share no slices with anything
// else.
func cloneScope(s Scope) Scope {
	clone := func(l []string) []string {
		if len(l) == 0 {
			return nil
		}
		return append([]string(nil), l...)
	}
	return Scope{Tools: clone(s.Tools), Resources: clone(s.Resources), Prompts: clone(s.Prompts), Hosts: clone(s.Hosts)}
}

// cloneActor deep-copies an act chain.
func cloneActor(a *Actor) *Actor {
	if a == nil {
		return nil
	}
	return &Actor{Sub: a.Sub, Act: cloneActor(a.Act)}
}
