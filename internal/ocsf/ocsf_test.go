package ocsf

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/audit"
)

// TestMap: each kind of audit event lands in its OCSF class with the base
// attributes every OCSF event requires (class_uid, category_uid,
// activity_id, type_uid = class_uid*100 + activity_id, time in ms,
// severity_id, metadata.version and metadata.product), the class's own
// required attributes, and ward's record kept under unmapped.
func TestMap(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	actor := "spiffe://ward.local/agent/bot/session/s1"
	ev := func(idx uint64, typ, data string) audit.Event {
		return audit.Event{Index: idx, Time: at, Type: typ, Actor: actor, Session: "s1", Agent: "bot", Sponsor: "acme", Data: json.RawMessage(data)}
	}
	p := Product{Name: "ward", Vendor: "ward", Version: "test"}
	for _, tc := range []struct {
		e                               audit.Event
		class, category, activity, disp int
		status                          int
		required                        []string
	}{
		{ev(812, "decision", `{"method":"tools/call","server":"bank","name":"bank.transfer","decision":"escalate","reason":"tainted iban","policies":["tainted-sink"]}`),
			ClassAPIActivity, CategoryApplication, 99, DispositionDelayed, StatusUnknown, []string{"actor", "api", "src_endpoint"}},
		{ev(813, "decision", `{"method":"tools/call","server":"demo","name":"demo.echo","decision":"allow"}`),
			ClassAPIActivity, CategoryApplication, 99, DispositionAllowed, StatusSuccess, []string{"actor", "api", "src_endpoint"}},
		{ev(814, "decision", `{"method":"tools/call","server":"demo","name":"demo.write_note","decision":"deny","reason":"no policy permits it"}`),
			ClassAPIActivity, CategoryApplication, 99, DispositionBlocked, StatusFailure, []string{"actor", "api", "src_endpoint"}},
		{ev(815, "result", `{"method":"tools/call","server":"demo","name":"demo.echo","error":"","is_error":false}`),
			ClassAPIActivity, CategoryApplication, 99, -1, StatusSuccess, []string{"actor", "api", "src_endpoint"}},
		{ev(816, "signal", `{"kind":"drift","severity":"high","detail":"calls far from the objective"}`),
			ClassDetectionFinding, CategoryFindings, 1, DispositionDetected, StatusSuccess, []string{"finding_info"}},
		{ev(817, "session.start", `{"objective":"x"}`),
			ClassAuthentication, CategoryIAM, 1, -1, StatusSuccess, []string{"user"}},
		{ev(818, "policy.reload", `{"policies":3}`),
			ClassBase, CategoryOther, 99, -1, StatusUnknown, nil},
	} {
		t.Run(tc.e.Type, func(t *testing.T) {
			// Through JSON, as a SIEM reads it.
			raw, err := json.Marshal(Map(tc.e, p))
			if err != nil {
				t.Fatal(err)
			}
			var o map[string]any
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			num := func(k string) int {
				f, ok := o[k].(float64)
				if !ok {
					t.Fatalf("%s missing or not a number: %s", k, raw)
				}
				return int(f)
			}
			if num("class_uid") != tc.class || num("category_uid") != tc.category || num("activity_id") != tc.activity {
				t.Fatalf("class/category/activity = %d/%d/%d, want %d/%d/%d: %s", num("class_uid"), num("category_uid"), num("activity_id"), tc.class, tc.category, tc.activity, raw)
			}
			if num("type_uid") != tc.class*100+tc.activity {
				t.Fatalf("type_uid %d, want class_uid*100+activity_id", num("type_uid"))
			}
			if tc.class != ClassBase && tc.class/1000 != tc.category {
				t.Fatalf("class %d is not in category %d", tc.class, tc.category)
			}
			if num("time") != int(at.UnixMilli()) || num("severity_id") < 0 || num("status_id") != tc.status {
				t.Fatalf("time/severity/status: %s", raw)
			}
			if tc.disp >= 0 && num("disposition_id") != tc.disp {
				t.Fatalf("disposition_id %d, want %d", num("disposition_id"), tc.disp)
			}
			md, _ := o["metadata"].(map[string]any)
			prod, _ := md["product"].(map[string]any)
			if md["version"] != Version || prod["name"] != "ward" || md["uid"] == "" {
				t.Fatalf("metadata %v", md)
			}
			for _, k := range tc.required {
				if o[k] == nil {
					t.Fatalf("required %s missing: %s", k, raw)
				}
			}
			if tc.class == ClassAPIActivity {
				api, _ := o["api"].(map[string]any)
				if api["operation"] == "" || api["operation"] == nil {
					t.Fatalf("api.operation missing: %s", raw)
				}
			}
			um, _ := o["unmapped"].(map[string]any)
			if um["type"] != tc.e.Type || um["data"] == nil {
				t.Fatalf("unmapped does not keep ward's record: %v", um)
			}
		})
	}
	if got := Map(ev(816, "signal", `{"kind":"drift","severity":"critical"}`), p)["severity_id"]; got != SeverityCritical {
		t.Fatalf("critical signal severity_id = %v", got)
	}
}

// FuzzMap: any event, whatever its data (agents post records of their
// own), maps to an OCSF event that encodes as JSON, whose type_uid agrees
// with its class and activity, and that keeps ward's record.
func FuzzMap(f *testing.F) {
	f.Add("decision", []byte(`{"method":"tools/call","name":"x","decision":"allow","policies":["p"]}`))
	f.Add("signal", []byte(`{"signal":{"kind":"drift","severity":2}}`))
	f.Add("result", []byte(`{"error":"boom","is_error":true}`))
	f.Add("agent.record", []byte(`[1,2,3]`))
	f.Add("session.start", []byte(`null`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		if !json.Valid(data) {
			data = nil
		}
		o := Map(audit.Event{Index: 1, Time: time.Unix(1, 0), Type: typ, Session: "s", Data: data}, Product{Name: "ward"})
		raw, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("does not encode: %v", err)
		}
		class, activity := o["class_uid"].(int), o["activity_id"].(int)
		if o["type_uid"] != class*100+activity {
			t.Fatalf("type_uid %v for class %d activity %d", o["type_uid"], class, activity)
		}
		if um := o["unmapped"].(map[string]any); um["type"] != typ {
			t.Fatalf("unmapped lost the type: %s", raw)
		}
	})
}
