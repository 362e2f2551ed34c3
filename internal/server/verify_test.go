package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
)

// TestVerifyAgentForAService: a service holding the JWT-SVID an agent
// presented learns from ward whether the agent is in good standing and its
// trust score; after quarantine the same token is reported not valid; a
// token for another audience or a forged one gets nothing.
func TestVerifyAgentForAService(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("payer", nil, map[string][]string{"tools": {"demo.*"}})
	_, v := n.startSession("payer", "pay the invoices", nil, "")
	ask := func(token, audience string) (int, api.VerifyView) {
		status, b := n.call("", "POST", "/v1/verify", map[string]string{"jwt_svid": token, "audience": audience})
		var out api.VerifyView
		json.Unmarshal(b, &out)
		return status, out
	}
	status, got := ask(v.JWTSVID, "ward")
	if status != http.StatusOK || !got.Valid || got.Agent != "payer" || got.Session != v.Session || got.Trust != 50 || len(got.ObjectiveHash) != 64 {
		t.Fatalf("verify: %d %+v", status, got)
	}
	if status, _ := ask(v.JWTSVID, "another-service"); status != http.StatusUnauthorized {
		t.Fatalf("wrong audience: %d", status)
	}
	if status, _ := ask(v.JWTSVID[:len(v.JWTSVID)-4]+"AAAA", "ward"); status != http.StatusUnauthorized {
		t.Fatalf("forged token: %d", status)
	}
	n.must("POST", "/v1/agents/payer/quarantine", map[string]string{}, nil)
	if status, got := ask(v.JWTSVID, "ward"); status != http.StatusOK || got.Valid || got.Status != "quarantined" {
		t.Fatalf("after quarantine: %d %+v", status, got)
	}
}
