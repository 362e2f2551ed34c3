package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"io"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/replay"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/strictjson"
	"github.com/ward-dev/ward/internal/taint"
)

// openConsole mounts the operator console at /console/ on the API. Its
// accounts are in DATA/console/users.json (`ward console user add`);
// without any, nobody can log in.
func (n *Node) openConsole(cfg Config) error {
	vk, err := os.ReadFile(filepath.Join(cfg.Data, "keys", "audit.pub"))
	if err != nil {
		return fmt.Errorf("console: audit public key: %w", err)
	}
	logKey := strings.TrimSpace(string(vk))
	c, err := console.New(console.Config{
		Users: filepath.Join(cfg.Data, filepath.FromSlash(console.UsersFile)), API: n.API, Audit: n.Audit, LogKey: logKey, Node: n.nodeID,
		Logger: cfg.Logger,
		Tail:   n.Audit, Appended: n.appended.Wait,
		OIDC: cfg.ConsoleOIDC,
		// Compared without case: "Admin" would read as "admin" in the log.
		Principal: func(ctx context.Context, name string) (bool, error) {
			ps, err := n.Store.ListPrincipals(ctx)
			if err != nil {
				return false, err
			}
			return slices.ContainsFunc(ps, func(p store.Principal) bool { return strings.EqualFold(p.Name, name) }), nil
		},
		Policies: func() any { return n.Policies().Policies() },
		DryRun:   n.dryRun,
		Replay: func(ctx context.Context, trace io.Reader) (any, error) {
			return n.replay(trace)
		},
		Limits: func() any {
			out := make([]map[string]any, 0, len(cfg.Limits))
			for _, l := range cfg.Limits {
				out = append(out, map[string]any{"id": l.ID, "scope": l.Scope, "key": l.Key, "window_ms": l.Window.Milliseconds(), "max": l.Max})
			}
			return out
		},
		Export: func(ctx context.Context, session string) ([]byte, error) {
			return n.exportSession(ctx, cfg.Data, logKey, session)
		},
	})
	if err != nil {
		return err
	}
	n.API.Mount("/console/", c)
	n.API.Mount("/console", c)
	return nil
}

// DryRunRequest is a call to decide against the policies in force, as the
// console's Policies page sends it.
type DryRunRequest struct {
	Agent     string          `json:"agent"`
	Action    string          `json:"action"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Trust     *int            `json:"trust,omitempty"`
	Taint     []string        `json:"taint,omitempty"`
}

// dryRun decides a request with the pure policy decision (policy.Decide)
// and the agent's registered sponsor, groups and trust; guards that need
// a live session (quotas, provenance) are not consulted, and nothing is
// recorded or changed.
func (n *Node) dryRun(ctx context.Context, raw json.RawMessage) (any, error) {
	var req DryRunRequest
	if err := strictjson.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	a, err := n.Store.GetAgent(ctx, req.Agent)
	if err != nil {
		return nil, fmt.Errorf("agent %q: %w", req.Agent, err)
	}
	if req.Action == "" {
		req.Action = string(policy.ActionCallTool)
	}
	server, _, _ := strings.Cut(req.Name, ".")
	pr := policy.Request{Session: "dry-run", Agent: a.Name, Sponsor: a.Sponsor, Groups: a.Groups, Action: policy.Action(req.Action),
		Server: server, Name: req.Name, Arguments: req.Arguments, Trust: a.Trust, Taint: req.Taint}
	if req.Trust != nil {
		pr.Trust = *req.Trust
	}
	d := n.Policies().Decide(pr)
	reasons := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s %q (%s)", r.Effect, r.PolicyID, r.Position))
	}
	return map[string]any{"outcome": d.Outcome(), "explain": d.Explain(pr), "reasons": reasons, "errors": d.Errors, "approvals": d.Approvals}, nil
}

// replay decides a recorded trace against the policies in force, with
// the node's taint labels, tool declarations, content scanning and server
// roots, as `ward replay --config` does with the node's configuration.
func (n *Node) replay(trace io.Reader) (any, error) {
	cfg := n.cfg
	var opt replay.Options
	var err error
	if opt.Labels, err = taint.NewLabeler(cfg.TaintTools, cfg.TaintHosts); err != nil {
		return nil, err
	}
	if opt.Labels, err = opt.Labels.WithFields(cfg.TaintFields); err != nil {
		return nil, err
	}
	opt.Tools, opt.ScanResults = cfg.Tools, cfg.ScanResults
	for _, u := range cfg.Upstreams {
		if len(u.Roots) == 0 {
			continue
		}
		roots, err := enforce.CanonicalRoots(u.Roots)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", u.Name, err)
		}
		if opt.Roots == nil {
			opt.Roots = map[string][]string{}
		}
		opt.Roots[u.Name] = roots
	}
	rep, err := replay.Run(n.Policies(), trace, opt)
	if err != nil {
		return nil, err
	}
	return map[string]any{"calls": rep.Calls, "sessions": rep.Sessions, "summary": rep.Summary}, nil
}

// exportSession bundles a session's events, and those of the sessions
// delegated from it, with their inclusion proofs, as `ward audit export`
// does.
func (n *Node) exportSession(ctx context.Context, data, logKey, session string) ([]byte, error) {
	if _, err := n.Store.GetSession(ctx, session); err != nil {
		return nil, fmt.Errorf("session %q: %w", session, err)
	}
	v, origin, err := AuditVerifier(data)
	if err != nil {
		return nil, err
	}
	sessions := []string{session}
	all, err := n.Store.ListSessions(ctx, store.SessionFilter{})
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if s.RootID == session && s.ID != session {
			sessions = append(sessions, s.ID)
		}
	}
	rkey, _ := os.ReadFile(filepath.Join(data, "keys", "receipt.pub"))
	// A checkpoint in the files over every event so far (the log signs
	// them on its own cadence), so that the bundle holds them all.
	if _, err := n.Audit.Sync(ctx); err != nil {
		return nil, err
	}
	b, err := audit.Export(filepath.Join(data, "audit"), audit.ExportConfig{Verifier: v, Origin: origin, LogKey: logKey, ReceiptKey: string(rkey), Sessions: sessions})
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(b, "", "  ")
}
