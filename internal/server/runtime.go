package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/store"
)

// DecideExec implements api.Runtime: whether a session's runtime may start
// a program, decided as the action exec on Path::"<command>" and recorded
// before the answer leaves. As on the egress path, a decision that needs
// approval is refused: the runtime does not start a program on hold.
func (n *Node) DecideExec(ctx context.Context, session string, e policy.ExecRequest) (api.ExecDecision, error) {
	c, err := n.Auth.Caller(ctx, session)
	if err != nil {
		return api.ExecDecision{}, err
	}
	v := n.pipeline.Evaluate(ctx, c, &enforce.Operation{Action: policy.ActionExec, Name: e.Command, Exec: &e}).Verdict
	d := api.ExecDecision{Allow: v.Allow, Reason: v.Reason}
	if v.Escalate {
		d.Reason = "needs approval, which a runtime does not wait for: refused (" + v.Reason + ")"
	}
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "exec", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: jsonData(map[string]any{"decision": decision, "reason": d.Reason, "command": e.Command,
			"args": n.redactText("exec:"+e.Command, strings.Join(e.Args, " ")), "cwd": e.Dir})}); err != nil {
		return api.ExecDecision{}, err
	}
	return d, nil
}

// RecordRuntime implements api.Runtime: each event becomes a "runtime"
// audit event of the session, its detail redacted like any recorded text.
// What the reporter adds beyond the typed fields is kept apart, under
// "data", so that it cannot pass for them.
func (n *Node) RecordRuntime(ctx context.Context, by store.Principal, x store.Session, events []api.RuntimeEvent) error {
	for _, e := range events {
		data := map[string]any{"kind": e.Kind, "detail": n.redactText("runtime:"+e.Kind, e.Detail), "reported_by": by.Name}
		if e.Pid != 0 {
			data["pid"] = e.Pid
		}
		if !e.Time.IsZero() {
			data["at"] = e.Time.UTC()
		}
		if len(e.Data) > 0 {
			doc, err := json.Marshal(e.Data)
			if err != nil {
				return err
			}
			clean, _, err := n.redactor.JSON("runtime:"+e.Kind, doc)
			if err != nil {
				clean = []byte(`"(not recorded: it could not be redacted)"`)
			}
			data["data"] = json.RawMessage(clean)
		}
		if _, err := n.Audit.Append(ctx, audit.Event{Type: "runtime", Actor: x.SPIFFEID, Session: x.ID, Agent: x.Agent,
			Sponsor: x.Sponsor, Data: jsonData(data)}); err != nil {
			return err
		}
	}
	return nil
}

// EgressCA implements the CA part of POST /v1/egress/token: the
// certificate of the CA the egress proxy signs brokered hosts' certificates
// with, for the runtime to trust, or nil when no credentials are brokered.
func (n *Node) EgressCA() []byte {
	b, err := os.ReadFile(filepath.Join(n.cfg.Data, "keys", "egress-ca.pem"))
	if err != nil {
		return nil
	}
	return b
}
