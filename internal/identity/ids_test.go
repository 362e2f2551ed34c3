package identity

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"reporter", true},
		{"web-crawler_2.1", true},
		{"a..", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{".", false},
		{"..", false},
		{"-a", false},
		{"_a", false},
		{".a", false},
		{"A", false},
		{"agent/x", false},
		{"a b", false},
		{"é", false},
		{"a%2f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidName(tt.name); (err == nil) != tt.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestAgentAndSessionID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	a, err := AgentID(td, "reporter")
	if err != nil || a.String() != "spiffe://example.org/agent/reporter" {
		t.Fatalf("AgentID = %v, %v", a, err)
	}
	s, err := SessionID(td, "reporter", "01hx3k")
	if err != nil || s.String() != "spiffe://example.org/agent/reporter/session/01hx3k" {
		t.Fatalf("SessionID = %v, %v", s, err)
	}
	agent, session, err := ParseSessionID(s)
	if err != nil || agent != "reporter" || session != "01hx3k" {
		t.Fatalf("ParseSessionID = %q, %q, %v", agent, session, err)
	}
	for _, bad := range []struct{ agent, session string }{{"", "x"}, {"x", ""}, {"X", "x"}, {"x", "a/b"}, {"..", "x"}} {
		if id, err := SessionID(td, bad.agent, bad.session); err == nil {
			t.Errorf("SessionID(%q, %q) = %v, want error", bad.agent, bad.session, id)
		}
	}
	if id, err := AgentID(spiffeid.TrustDomain{}, "x"); err == nil {
		t.Errorf("AgentID with zero trust domain = %v, want error", id)
	}
	if id, err := SessionID(spiffeid.TrustDomain{}, "x", "y"); err == nil {
		t.Errorf("SessionID with zero trust domain = %v, want error", id)
	}
}

func TestParseSessionIDRejects(t *testing.T) {
	for _, s := range []string{
		"spiffe://example.org",
		"spiffe://example.org/agent/reporter",
		"spiffe://example.org/agent/reporter/session",
		"spiffe://example.org/agent/reporter/session/1/extra",
		"spiffe://example.org/agents/reporter/session/1",
		"spiffe://example.org/agent/reporter/sessions/1",
		"spiffe://example.org/ward/server",
		"spiffe://example.org/agent/Reporter/session/1",
		"spiffe://example.org/agent/-r/session/1",
		"spiffe://example.org/agent/r/session/_1",
		"spiffe://example.org/x/agent/r/session/1",
	} {
		t.Run(s, func(t *testing.T) {
			id := spiffeid.RequireFromString(s)
			if a, ss, err := ParseSessionID(id); err == nil {
				t.Fatalf("ParseSessionID(%s) = %q, %q, want error", s, a, ss)
			}
		})
	}
	if _, _, err := ParseSessionID(spiffeid.ID{}); err == nil {
		t.Fatal("ParseSessionID(zero) succeeded")
	}
}

// FuzzParseSessionID checks that ParseSessionID accepts exactly what
// SessionID produces: whatever it accepts rebuilds to the same ID from valid
// names.
func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{
		"spiffe://example.org/agent/reporter/session/01hx3k",
		"spiffe://example.org/agent/a/session/b",
		"spiffe://td/agent/a.b-c_d/session/0",
		"spiffe://example.org/agent/reporter",
		"spiffe://example.org/agent//session/x",
		"spiffe://example.org/agent/A/session/x",
		"spiffe://example.org/ward/server",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return
		}
		agent, session, err := ParseSessionID(id)
		if err != nil {
			if agent != "" || session != "" {
				t.Fatalf("ParseSessionID(%s) returned names with an error", id)
			}
			return
		}
		if ValidName(agent) != nil || ValidName(session) != nil {
			t.Fatalf("ParseSessionID(%s) returned invalid names %q, %q", id, agent, session)
		}
		back, err := SessionID(id.TrustDomain(), agent, session)
		if err != nil {
			t.Fatalf("SessionID(%q, %q): %v", agent, session, err)
		}
		if back != id {
			t.Fatalf("round trip %s -> (%q, %q) -> %s", id, agent, session, back)
		}
	})
}
