package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
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
			clean, err := n.runtimeData(e.Kind, e.Data)
			if err != nil {
				return err
			}
			data["data"] = clean
		}
		if _, err := n.Audit.Append(ctx, audit.Event{Type: "runtime", Actor: x.SPIFFEID, Session: x.ID, Agent: x.Agent,
			Sponsor: x.Sponsor, Data: jsonData(data)}); err != nil {
			return err
		}
	}
	return nil
}

// maxRuntimeData bounds a runtime record's data once redacted, so that
// the record fits an audit event (audit.DefaultMaxEventSize is twice
// this). Redaction can make data larger (a one-byte token becomes a
// marker of 65), and the data of a `ward run` end record holds the diff
// its agent wrote.
const maxRuntimeData = 512 << 10

// runtimeData is a runtime record's data as recorded: redacted, and
// bounded by maxRuntimeData. Data that cannot be redacted, or that is
// over the bound, is recorded as a note saying so; its "diff", if it
// has one, goes first, so that the rest (a run's changed paths, its exit
// status) is kept: an agent cannot, by writing many short tokens, have
// the node drop the record of what it changed.
func (n *Node) runtimeData(kind string, d map[string]any) (json.RawMessage, error) {
	clean, why, err := n.redactRuntime(kind, d)
	if err != nil || why == "" {
		return clean, err
	}
	if _, ok := d["diff"]; ok {
		rest := maps.Clone(d)
		rest["diff"] = "(not recorded: " + why + ")"
		clean, why2, err := n.redactRuntime(kind, rest)
		if err != nil || why2 == "" {
			return clean, err
		}
	}
	return json.Marshal("(not recorded: " + why + ")")
}

// redactRuntime is d redacted, or why it cannot be recorded.
func (n *Node) redactRuntime(kind string, d map[string]any) (json.RawMessage, string, error) {
	doc, err := json.Marshal(d)
	if err != nil {
		return nil, "", err
	}
	clean, _, err := n.redactor.JSON("runtime:"+kind, doc)
	switch {
	case err != nil:
		return nil, "it could not be redacted", nil
	case len(clean) > maxRuntimeData:
		return nil, fmt.Sprintf("%d bytes once redacted, over the bound of %d", len(clean), maxRuntimeData), nil
	}
	return clean, "", nil
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
