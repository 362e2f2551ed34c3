// Package ocsf maps ward's audit events to the Open Cybersecurity Schema
// Framework (OCSF, schema version [Version]), the JSON a SIEM ingests.
//
// The mapping is pure: one audit event in, one OCSF event out, nothing
// dropped. Each event gets the OCSF base attributes (class_uid,
// category_uid, activity_id, type_uid = class_uid*100 + activity_id, time
// in milliseconds, severity_id, status_id, metadata with ward as the
// product and the audit index as metadata.uid) and lands in the class
// that fits it:
//
//	decision, result, refusal, egress, exec  API Activity (6003, category 6 Application Activity):
//	                                          actor (session SPIFFE ID, agent, sponsor), api.operation
//	                                          (the MCP method), resources (the tool), disposition
//	                                          (allowed, blocked, or approval required), status
//	signal, response                          Detection Finding (2004, category 2 Findings):
//	                                          finding_info (title, uid), severity from the signal
//	session.start, session.end, svid.issue,   Authentication (3002, category 3 Identity & Access
//	token.exchange, credential.issue          Management): logon, logoff, service ticket issue
//	anything else                             Base Event (0, category 0)
//
// The event's own data, as ward recorded it, is kept under "unmapped"
// with its type and its session chain position: nothing a SIEM might need
// for an investigation is lost in translation.
//
// A worked example: the decision event 812
//
//	{"index":812,"time":"2026-12-07T05:00:00Z","type":"decision","actor":"spiffe://ward.local/agent/bot/session/s1",
//	 "session":"s1","agent":"bot","sponsor":"acme","data":{"method":"tools/call","server":"bank","name":"bank.transfer",
//	 "decision":"escalate","reason":"…","policies":["tainted-sink"]}}
//
// becomes class_uid 6003, activity_id 99 (Other), type_uid 600399,
// disposition_id 14 (Delayed: held for approval), api.operation
// "tools/call", resources [{"type":"tool","name":"bank.transfer",...}],
// actor.user.uid the session's SPIFFE ID, metadata.uid "812".
package ocsf

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
)

// Version is the OCSF schema version the events follow.
const Version = "1.2.0"

// OCSF classes and categories used.
const (
	ClassBase             = 0
	ClassDetectionFinding = 2004
	ClassAuthentication   = 3002
	ClassAPIActivity      = 6003

	CategoryOther       = 0
	CategoryFindings    = 2
	CategoryIAM         = 3
	CategoryApplication = 6
)

// Severity ids.
const (
	SeverityUnknown       = 0
	SeverityInformational = 1
	SeverityLow           = 2
	SeverityMedium        = 3
	SeverityHigh          = 4
	SeverityCritical      = 5
)

// Status ids.
const (
	StatusUnknown = 0
	StatusSuccess = 1
	StatusFailure = 2
)

// Disposition ids (the security control profile) ward's decisions map to.
const (
	DispositionAllowed  = 1
	DispositionBlocked  = 2
	DispositionDelayed  = 14 // held: the call waits for approval
	DispositionDetected = 15
)

// Event is one OCSF event, as JSON members.
type Event map[string]any

// Product describes the product that logged the events.
type Product struct {
	Name, Vendor, Version string
}

// Map maps one audit event.
func Map(e audit.Event, p Product) Event {
	var data map[string]any
	if len(e.Data) > 0 {
		_ = json.Unmarshal(e.Data, &data)
	}
	str := func(k string) string { s, _ := data[k].(string); return s }
	o := Event{
		"time":        e.Time.UnixMilli(),
		"severity_id": SeverityInformational,
		"status_id":   StatusUnknown,
		"message":     e.Type,
		"metadata": map[string]any{
			"version":         Version,
			"uid":             strconv.FormatUint(e.Index, 10),
			"log_name":        "ward audit",
			"event_code":      e.Type,
			"product":         map[string]any{"name": p.Name, "vendor_name": p.Vendor, "version": p.Version},
			"profiles":        []string{"security_control"},
			"correlation_uid": e.Session,
		},
		"unmapped": map[string]any{"type": e.Type, "data": json.RawMessage(orNull(e.Data)), "seq": e.Seq, "session": e.Session},
	}
	if e.Actor != "" || e.Agent != "" || e.Sponsor != "" {
		actor := map[string]any{}
		if e.Actor != "" {
			actor["user"] = map[string]any{"uid": e.Actor, "name": firstNonEmpty(e.Agent, e.Actor), "type": actorType(e.Actor)}
		}
		if e.Session != "" {
			actor["session"] = map[string]any{"uid": e.Session}
		}
		if e.Sponsor != "" {
			actor["authorizations"] = []map[string]any{{"policy": map[string]any{"name": "sponsor", "uid": e.Sponsor}}}
		}
		o["actor"] = actor
	}
	class, category, activity, activityName := ClassBase, CategoryOther, 99, e.Type
	switch e.Type {
	case "decision", "result", "refusal", "egress", "exec":
		class, category = ClassAPIActivity, CategoryApplication
		activity, activityName = 99, "Other"
		op := firstNonEmpty(str("method"), e.Type)
		o["api"] = map[string]any{"operation": op, "service": map[string]any{"name": firstNonEmpty(str("server"), "ward")}}
		if name := str("name"); name != "" {
			o["resources"] = []map[string]any{{"name": name, "type": resourceType(str("method")), "group": map[string]any{"name": str("server")}}}
		}
		o["src_endpoint"] = map[string]any{"name": firstNonEmpty(e.Session, "unknown")}
		switch d := str("decision"); {
		case e.Type == "refusal":
			o["disposition_id"], o["status_id"] = DispositionBlocked, StatusFailure
			o["status_detail"] = str("reason")
		case d == "allow":
			o["disposition_id"], o["status_id"] = DispositionAllowed, StatusSuccess
		case d == "deny":
			o["disposition_id"], o["status_id"] = DispositionBlocked, StatusFailure
			o["status_detail"] = str("reason")
		case d == "escalate":
			o["disposition_id"], o["status_id"] = DispositionDelayed, StatusUnknown
			o["status_detail"] = str("reason")
		case e.Type == "result":
			if str("error") != "" || data["is_error"] == true {
				o["status_id"], o["status_detail"] = StatusFailure, str("error")
			} else {
				o["status_id"] = StatusSuccess
			}
		}
		if pol, ok := data["policies"].([]any); ok && len(pol) > 0 {
			var names []string
			for _, x := range pol {
				if s, ok := x.(string); ok {
					names = append(names, s)
				}
			}
			o["policies"] = names
		}
	case "signal", "response":
		class, category, activity, activityName = ClassDetectionFinding, CategoryFindings, 1, "Create"
		sig, _ := data["signal"].(map[string]any)
		if sig == nil {
			sig = data
		}
		kind, _ := sig["kind"].(string)
		detail, _ := sig["detail"].(string)
		o["finding_info"] = map[string]any{"uid": strconv.FormatUint(e.Index, 10), "title": firstNonEmpty(kind, e.Type), "desc": detail,
			"types": []string{"ward." + e.Type}}
		o["severity_id"] = severity(sig["severity"])
		o["status_id"] = StatusSuccess
		o["disposition_id"] = DispositionDetected
	case "session.start", "session.end", "session.expire", "svid.issue", "token.exchange", "credential.issue":
		class, category = ClassAuthentication, CategoryIAM
		switch e.Type {
		case "session.start":
			activity, activityName = 1, "Logon"
		case "session.end", "session.expire":
			activity, activityName = 2, "Logoff"
		default:
			activity, activityName = 4, "Service Ticket Request" // a credential issued for the session
		}
		o["status_id"] = StatusSuccess
		o["user"] = map[string]any{"uid": firstNonEmpty(e.Actor, e.Session), "name": e.Agent}
	}
	o["class_uid"], o["category_uid"], o["activity_id"], o["activity_name"] = class, category, activity, activityName
	o["type_uid"] = class*100 + activity
	o["class_name"] = className[class]
	return o
}

var className = map[int]string{ClassBase: "Base Event", ClassDetectionFinding: "Detection Finding", ClassAuthentication: "Authentication", ClassAPIActivity: "API Activity"}

// severity maps a monitor severity (a name or a number 0-3) to OCSF's.
func severity(v any) int {
	switch s := v.(type) {
	case string:
		switch strings.ToLower(s) {
		case "info":
			return SeverityInformational
		case "low":
			return SeverityLow
		case "medium", "warning":
			return SeverityMedium
		case "high":
			return SeverityHigh
		case "critical":
			return SeverityCritical
		}
	case float64:
		if s >= 0 && s <= 3 {
			return []int{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}[int(s)]
		}
	}
	return SeverityUnknown
}

func resourceType(method string) string {
	switch {
	case strings.HasPrefix(method, "tools/"):
		return "tool"
	case strings.HasPrefix(method, "prompts/"):
		return "prompt"
	case strings.HasPrefix(method, "resources/"):
		return "resource"
	}
	return "operation"
}

func actorType(actor string) string {
	if strings.HasPrefix(actor, "spiffe://") {
		return "Service"
	}
	return "User"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
