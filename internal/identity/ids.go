package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// maxNameLen is the longest agent or session name ValidName accepts.
	maxNameLen = 64

	segAgent   = "agent"
	segSession = "session"
	// segWard is the first path segment reserved for ward's own identities.
	segWard = "ward"
)

// ValidName reports whether s may be used as an agent or session name: 1 to
// 64 characters of [a-z0-9._-], the first a lowercase letter or digit.
func ValidName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("name longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		case i == 0 && (c == '.' || c == '_' || c == '-'):
			return fmt.Errorf("name %q must start with a lowercase letter or digit", s)
		default:
			return fmt.Errorf("name %q has character %q outside [a-z0-9._-]", truncate(s), c)
		}
	}
	return nil
}

// AgentID returns spiffe://TD/agent/NAME.
func AgentID(td spiffeid.TrustDomain, agent string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, errors.New("agent id: empty trust domain")
	}
	if err := ValidName(agent); err != nil {
		return spiffeid.ID{}, fmt.Errorf("agent id: %w", err)
	}
	return spiffeid.FromSegments(td, segAgent, agent)
}

// SessionID returns spiffe://TD/agent/NAME/session/ID.
func SessionID(td spiffeid.TrustDomain, agent, session string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, errors.New("session id: empty trust domain")
	}
	if err := ValidName(agent); err != nil {
		return spiffeid.ID{}, fmt.Errorf("session id: agent %w", err)
	}
	if err := ValidName(session); err != nil {
		return spiffeid.ID{}, fmt.Errorf("session id: session %w", err)
	}
	return spiffeid.FromSegments(td, segAgent, agent, segSession, session)
}

// ParseSessionID is the strict inverse of SessionID: it returns the agent
// and session names of an ID of the form spiffe://TD/agent/NAME/session/ID
// with both names valid, and an error for every other ID. It does not look
// at the trust domain.
func ParseSessionID(id spiffeid.ID) (agent, session string, err error) {
	if id.IsZero() {
		return "", "", errors.New("parse session id: empty id")
	}
	// Path is "/agent/NAME/session/ID": five fields split on "/".
	parts := strings.Split(id.Path(), "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != segAgent || parts[3] != segSession {
		return "", "", fmt.Errorf("parse session id %q: not of the form spiffe://TD/agent/NAME/session/ID", truncate(id.String()))
	}
	if err := ValidName(parts[2]); err != nil {
		return "", "", fmt.Errorf("parse session id: agent %w", err)
	}
	if err := ValidName(parts[4]); err != nil {
		return "", "", fmt.Errorf("parse session id: session %w", err)
	}
	return parts[2], parts[4], nil
}

// reservedID reports whether id names ward itself (its path starts with
// /ward), which callers may never be issued.
func reservedID(id spiffeid.ID) bool {
	p := id.Path()
	return p == "/"+segWard || strings.HasPrefix(p, "/"+segWard+"/")
}

// truncate shortens untrusted strings quoted in errors.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
