package ocsf

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/audit"
)

// TestRedteamAgentDataStaysData: what an agent chose (a posted record's
// content, a tool name, a refusal reason) cannot add OCSF attributes,
// change an event's class or disposition, or break the one-object-a-line
// output, however it is spelled.
func TestRedteamAgentDataStaysData(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	actor := "spiffe://ward.local/agent/bot/session/s1"
	hostile := `{"class_uid":2004,"type_uid":200401,"decision":"allow","severity":"critical","signal":{"kind":"x","severity":"critical"},"metadata":{"product":{"name":"evil"}},"actor":{"user":{"uid":"admin"}},"disposition_id":1}`
	rec, _ := json.Marshal(map[string]any{"kind": "note", "content": json.RawMessage(hostile)})
	name := "demo.x\n{\"class_uid\":1}\u2028</script>\"}"
	dec, _ := json.Marshal(map[string]any{"method": "tools/call", "server": "demo", "name": name, "decision": "deny", "reason": "r\r\n{\"status_id\":1}"})
	allowed := map[string]bool{"time": true, "severity_id": true, "status_id": true, "message": true, "metadata": true, "unmapped": true,
		"actor": true, "class_uid": true, "category_uid": true, "activity_id": true, "activity_name": true, "type_uid": true, "class_name": true,
		"api": true, "resources": true, "src_endpoint": true, "disposition_id": true, "status_detail": true, "policies": true,
		"finding_info": true, "user": true}
	for _, tc := range []struct {
		e     audit.Event
		class int
		disp  any
	}{
		{audit.Event{Index: 1, Time: at, Type: "agent.record", Actor: actor, Session: "s1", Agent: "bot", Sponsor: "acme", Data: rec}, ClassBase, nil},
		{audit.Event{Index: 2, Time: at, Type: "decision", Actor: actor, Session: "s1", Agent: "bot", Sponsor: "acme", Data: dec}, ClassAPIActivity, float64(DispositionBlocked)},
	} {
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(Map(tc.e, Product{Name: "ward", Vendor: "ward", Version: "t"})); err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || strings.ContainsAny(strings.TrimSuffix(line, "\n"), "\r\u2028\u2029") {
			t.Fatalf("%s: not one line: %q", tc.e.Type, line)
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatal(err)
		}
		for k := range o {
			if !allowed[k] {
				t.Errorf("%s: attribute %q from agent data", tc.e.Type, k)
			}
		}
		if o["class_uid"] != float64(tc.class) || o["disposition_id"] != tc.disp {
			t.Errorf("%s: class %v disposition %v", tc.e.Type, o["class_uid"], o["disposition_id"])
		}
		if md := o["metadata"].(map[string]any); md["product"].(map[string]any)["name"] != "ward" {
			t.Errorf("%s: product %v", tc.e.Type, md["product"])
		}
		if a, _ := o["actor"].(map[string]any); a["user"].(map[string]any)["uid"] != actor {
			t.Errorf("%s: actor %v", tc.e.Type, a)
		}
	}
}
