package server_test

import (
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
)

// TestSponsorsCannotChooseGroupsOrRelease: a group's budgets and the
// policies written for it bind every agent in it, so a sponsor cannot put
// its agents in groups (it could step out of a group's budget into a fresh
// one, or into a group policies trust), and a quarantine, whoever made it,
// is lifted only by an admin (a sponsor could otherwise undo at once what
// the monitor's playbook or security did). Found by an attack pass: both
// were allowed.
func TestSponsorsCannotChooseGroupsOrRelease(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	var acme api.PrincipalView
	n.must("POST", "/v1/sponsors", map[string]any{"name": "acme", "kind": "platform", "ceiling": map[string]any{"tools": []string{"demo.*"}}}, &acme)
	reg := func(name string, groups []string) (int, string) {
		status, b := n.call(acme.Credential, "POST", "/v1/agents", map[string]any{"name": name, "sponsor": "acme", "groups": groups, "ceiling": map[string]any{"tools": []string{"demo.echo"}}})
		return status, string(b)
	}
	if status, body := reg("grouped", []string{"trusted"}); status != 403 || !strings.Contains(body, "only an admin may put an agent in groups") {
		t.Fatalf("a sponsor registering its agent in a group: %d %s", status, body)
	}
	if status, body := reg("plain", nil); status >= 300 {
		t.Fatalf("a sponsor registering its agent without groups: %d %s", status, body)
	}
	// The admin may.
	n.must("POST", "/v1/agents", map[string]any{"name": "grouped", "sponsor": "acme", "groups": []string{"trusted"}, "ceiling": map[string]any{"tools": []string{"demo.echo"}}}, nil)

	// The sponsor quarantines its agent, but only an admin releases it.
	if status, body := n.call(acme.Credential, "POST", "/v1/agents/plain/quarantine", struct{}{}); status >= 300 {
		t.Fatalf("a sponsor quarantining its agent: %d %s", status, body)
	}
	n.must("POST", "/v1/agents/grouped/quarantine", struct{}{}, nil)
	for _, agent := range []string{"plain", "grouped"} {
		if status, body := n.call(acme.Credential, "POST", "/v1/agents/"+agent+"/release", struct{}{}); status != 403 || !strings.Contains(string(body), "only an admin may release") {
			t.Fatalf("the sponsor releasing %s: %d %s", agent, status, body)
		}
	}
	n.must("POST", "/v1/agents/plain/release", struct{}{}, nil)
}
