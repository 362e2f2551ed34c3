package grant

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rootGrant issues and verifies a root grant, as a gateway would see it.
func rootGrant(t *testing.T, f *fixture) *Claims {
	t.Helper()
	tok, err := f.issuer.Issue(rootClaims(t, f.sessionKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.verifier.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNarrowRefuses(t *testing.T) {
	f := newFixture(t)
	parent := rootGrant(t, f)
	good := Delegation{Session: "s2", SPIFFEID: childID, JKT: jkt(t, newKey(t)), Scope: Scope{Tools: []string{"fs.read_*"}}}
	tests := []struct {
		name     string
		mutate   func(*Delegation)
		maxDepth int
		now      time.Time
		want     error  // sentinel, or nil for a plain error
		why      string // substring of the error
	}{
		{"widen tool", func(d *Delegation) { d.Scope = Scope{Tools: []string{"fs.read_*", "net.fetch"}} }, DefaultMaxDepth, t0, ErrWiden, `tool pattern "net.fetch" not covered by parent`},
		{"widen by star", func(d *Delegation) { d.Scope = Scope{Tools: []string{"*"}} }, DefaultMaxDepth, t0, ErrWiden, `tool pattern "*"`},
		{"widen exact to prefix", func(d *Delegation) { d.Scope = Scope{Tools: []string{"db.query*"}} }, DefaultMaxDepth, t0, ErrWiden, `"db.query*"`},
		{"widen resource", func(d *Delegation) { d.Scope = Scope{Resources: []string{"file:///*"}} }, DefaultMaxDepth, t0, ErrWiden, `resource pattern "file:///*"`},
		{"widen prompt", func(d *Delegation) { d.Scope = Scope{Prompts: []string{"summarize*"}} }, DefaultMaxDepth, t0, ErrWiden, `prompt pattern`},
		{"widen exact host to subdomains", func(d *Delegation) { d.Scope = Scope{Hosts: []string{"*.example.com"}} }, DefaultMaxDepth, t0, ErrWiden, `host pattern "*.example.com" not covered by parent`},
		{"widen host to any", func(d *Delegation) { d.Scope = Scope{Hosts: []string{"*"}} }, DefaultMaxDepth, t0, ErrWiden, `host pattern "*"`},
		{"widen subdomains to their parent", func(d *Delegation) { d.Scope = Scope{Hosts: []string{"cdn.example.com"}} }, DefaultMaxDepth, t0, ErrWiden, `host pattern "cdn.example.com"`},
		{"new host", func(d *Delegation) { d.Scope = Scope{Tools: []string{"fs.read_*"}, Hosts: []string{"evil.example"}} }, DefaultMaxDepth, t0, ErrWiden, `host pattern "evil.example"`},
		{"malformed host", func(d *Delegation) { d.Scope = Scope{Hosts: []string{"API.example.com"}} }, DefaultMaxDepth, t0, nil, "host pattern"},
		{"no delegation allowed", nil, 0, t0, ErrDepth, "depth 1, max 0"},
		{"negative max depth", nil, -1, t0, ErrDepth, "max 0"},
		{"parent expired", nil, DefaultMaxDepth, parent.Expiry, ErrExpired, "no lifetime left"},
		{"same key", func(d *Delegation) { d.JKT = parent.JKT }, DefaultMaxDepth, t0, nil, "own key"},
		{"same session", func(d *Delegation) { d.Session = parent.Session }, DefaultMaxDepth, t0, nil, "session id equals"},
		{"same SPIFFE ID", func(d *Delegation) { d.SPIFFEID = parent.SPIFFEID }, DefaultMaxDepth, t0, nil, "SPIFFE ID equals"},
		{"other trust domain", func(d *Delegation) { d.SPIFFEID = "spiffe://evil.org/agent/x" }, DefaultMaxDepth, t0, nil, "outside the trust domain"},
		{"not a SPIFFE ID", func(d *Delegation) { d.SPIFFEID = "https://example.org/x" }, DefaultMaxDepth, t0, nil, "not a SPIFFE ID"},
		{"no key", func(d *Delegation) { d.JKT = "" }, DefaultMaxDepth, t0, nil, "thumbprint"},
		{"no session", func(d *Delegation) { d.Session = "" }, DefaultMaxDepth, t0, nil, "session id missing"},
		{"negative ttl", func(d *Delegation) { d.TTL = -time.Second }, DefaultMaxDepth, t0, nil, "negative ttl"},
		{"sub-second ttl", func(d *Delegation) { d.TTL = time.Millisecond }, DefaultMaxDepth, t0.Add(500 * time.Millisecond), nil, "shorter than one second"},
		{"malformed scope", func(d *Delegation) { d.Scope = Scope{Tools: []string{"fs.*.x"}} }, DefaultMaxDepth, t0, nil, "'*' allowed only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			if tt.mutate != nil {
				tt.mutate(&d)
			}
			_, err := Narrow(parent, d, tt.maxDepth, tt.now)
			if err == nil {
				t.Fatal("Narrow accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Narrow error = %v, want %v", err, tt.want)
			}
			for _, s := range []error{ErrWiden, ErrDepth, ErrExpired} {
				if tt.want == nil && errors.Is(err, s) {
					t.Errorf("Narrow error = %v, want no sentinel", err)
				}
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Narrow error = %q, want it to say %q", err, tt.why)
			}
		})
	}
	if _, err := Narrow(nil, good, DefaultMaxDepth, t0); err == nil {
		t.Error("Narrow accepted a nil parent")
	}
}

func TestNarrowTTL(t *testing.T) {
	f := newFixture(t)
	parent := rootGrant(t, f) // expires at t0+15m
	tests := []struct {
		name string
		now  time.Time
		ttl  time.Duration
		want time.Time
	}{
		{"zero is parent's remaining", t0, 0, parent.Expiry},
		{"shorter kept", t0, 5 * time.Minute, t0.Add(5 * time.Minute)},
		{"longer clipped", t0, time.Hour, parent.Expiry},
		{"equal", t0, 15 * time.Minute, parent.Expiry},
		{"clipped late in parent life", t0.Add(14 * time.Minute), 5 * time.Minute, parent.Expiry},
		{"sub-second now rounds down", t0.Add(1500 * time.Millisecond), time.Minute, t0.Add(61 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Narrow(parent, Delegation{Session: "s2", SPIFFEID: childID, JKT: jkt(t, newKey(t)), TTL: tt.ttl}, DefaultMaxDepth, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Expiry.Equal(tt.want) {
				t.Errorf("Expiry = %s, want %s", c.Expiry, tt.want)
			}
			if c.Expiry.After(parent.Expiry) {
				t.Errorf("child outlives parent")
			}
		})
	}
}

// TestNarrowChain delegates three times through Issue and Verify and checks
// every claim of every link, then that a fourth level is refused.
func TestNarrowChain(t *testing.T) {
	f := newFixture(t)
	root := rootGrant(t, f)
	ids := []string{childID, grandID, greatID}
	scopes := []Scope{
		{}, // same as parent
		{Tools: []string{"fs.read_*", "db.query"}, Resources: []string{"file:///data/reports/*"}, Hosts: []string{"api.example.com", "*.eu.cdn.example.com"}},
		{Tools: []string{"fs.read_file"}, Hosts: []string{"img.eu.cdn.example.com"}},
	}
	wantScopes := []Scope{root.Scope, scopes[1], scopes[2]}
	wantActs := []*Actor{
		{Sub: childID},
		{Sub: grandID, Act: &Actor{Sub: childID}},
		{Sub: greatID, Act: &Actor{Sub: grandID, Act: &Actor{Sub: childID}}},
	}
	parent := root
	for i, id := range ids {
		key := newKey(t)
		now := t0.Add(time.Duration(i+1) * time.Minute)
		c, err := Narrow(parent, Delegation{Session: "s" + string(rune('2'+i)), SPIFFEID: id, JKT: jkt(t, key), Scope: scopes[i], TTL: 10 * time.Minute}, DefaultMaxDepth, now)
		if err != nil {
			t.Fatalf("level %d: %v", i+1, err)
		}
		tok, err := f.issuer.Issue(c)
		if err != nil {
			t.Fatalf("level %d: Issue: %v", i+1, err)
		}
		v, err := NewVerifier(VerifierConfig{Keys: map[string]*ecdsa.PublicKey{f.issuer.KeyID(): f.issuer.PublicKey()}, TrustDomain: td, Now: fixedClock(now)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(tok)
		if err != nil {
			t.Fatalf("level %d: Verify: %v", i+1, err)
		}
		want := Claims{
			ID: got.ID, Issuer: issuerID, Subject: rootID, Audience: Audience,
			Session: "s" + string(rune('2'+i)), SPIFFEID: id, Agent: root.Agent, Sponsor: root.Sponsor,
			Parent: parent.ID, Depth: i + 1, Scope: wantScopes[i], Objective: root.Objective,
			JKT: jkt(t, key), Act: wantActs[i],
			IssuedAt: now, NotBefore: now, Expiry: now.Add(10 * time.Minute),
		}
		if i > 0 {
			want.Expiry = parent.Expiry // clipped: the parent dies first
		}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("level %d claims (-want +got):\n%s", i+1, diff)
		}
		if got.ID == parent.ID {
			t.Errorf("level %d reuses its parent's jti", i+1)
		}
		parent = got
	}
	_, err := Narrow(parent, Delegation{Session: "s5", SPIFFEID: "spiffe://example.org/agent/helper/session/s5", JKT: jkt(t, newKey(t))}, DefaultMaxDepth, t0)
	if !errors.Is(err, ErrDepth) {
		t.Errorf("level 4: Narrow = %v, want ErrDepth", err)
	}
}

// TestNarrowDoesNotAlias checks that the child's claims share nothing the
// caller could change in the parent.
func TestNarrowDoesNotAlias(t *testing.T) {
	f := newFixture(t)
	parent := rootGrant(t, f)
	c, err := Narrow(parent, Delegation{Session: "s2", SPIFFEID: childID, JKT: jkt(t, newKey(t))}, DefaultMaxDepth, t0)
	if err != nil {
		t.Fatal(err)
	}
	c.Scope.Tools[0] = "*"
	c.Scope.Hosts[0] = "*"
	if parent.Scope.Tools[0] == "*" || parent.Scope.Hosts[0] == "*" {
		t.Error("child scope aliases parent scope")
	}
}
