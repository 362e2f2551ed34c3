package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/monitor"
	"github.com/ward-dev/ward/internal/store"
)

// ReviewLabel is the taint label a require_approval response gives a
// session; the starter policy escalates every call of a session carrying
// it (to approver group "security").
const ReviewLabel = "review"

// monitorPrincipal is who the monitor acts as.
var monitorPrincipal = store.Principal{Kind: "admin", Name: "ward-monitor"}

// watcher runs the behaviour monitor on the node's calls and egress
// requests and carries out what its playbooks answer.
type watcher struct {
	n    *Node
	mon  *monitor.Monitor
	cats map[string][]string
	file string // where baselines and trust are kept across restarts
	hook string // alert webhook, or ""

	saveMu     sync.Mutex
	preserving sync.Map       // sessions whose bundle is written or being written
	mu         sync.Mutex     // also held while a score is written to the store
	synced     map[string]int // agent → the trust score last agreed with the store
	risk       map[string]int // session → content risk seen since its last call
}

func (n *Node) openMonitor(cfg Config) error {
	mc := monitor.DefaultConfig()
	if cfg.Monitor != nil {
		mc = *cfg.Monitor
	}
	mon, err := monitor.New(mc)
	if err != nil {
		return err
	}
	w := &watcher{n: n, mon: mon, cats: mc.Categories, file: filepath.Join(cfg.Data, "monitor.json"), hook: cfg.AlertWebhook,
		synced: map[string]int{}, risk: map[string]int{}}
	if b, err := os.ReadFile(w.file); err == nil {
		var st monitor.State
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("monitor state %s: %w", w.file, err)
		}
		if err := mon.Restore(st); err != nil {
			return fmt.Errorf("monitor state %s: %w", w.file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("monitor state: %w", err)
	}
	n.watch = w
	return nil
}

// save keeps the baselines and scores, durably; one save at a time.
func (w *watcher) save() error {
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	b, err := json.Marshal(w.mon.Snapshot())
	if err != nil {
		return err
	}
	return atomicfile.Write(w.file, b, 0o600)
}

// forget drops what is kept for ended sessions.
func (w *watcher) forget(ids []string) {
	w.mu.Lock()
	for _, id := range ids {
		delete(w.risk, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		w.mon.EndSession(id)
		w.preserving.Delete(id)
	}
}

// call is the gateway's Watch hook.
func (w *watcher) call(ctx context.Context, c *enforce.Caller, op *enforce.Operation, decision string) string {
	var verb string
	if d, ok := w.n.cfg.Tools[op.Name]; ok {
		verb = d.Verb
	}
	drift := false
	if len(c.Tags) > 0 && len(w.cats) > 0 {
		drift = monitor.OutsideObjective(c.Tags, monitor.Categories(op.Name, w.cats))
	}
	w.mu.Lock()
	risk := w.risk[c.Session]
	delete(w.risk, c.Session)
	w.mu.Unlock()
	return w.observe(ctx, c, monitor.Event{Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups,
		Kind: monitor.KindCall, Name: op.Name, Verb: verb, Decision: decision, BytesOut: int64(len(op.Arguments)),
		Drift: drift, Risk: risk})
}

// trustSet follows a score an operator set (the monitor's own writes come
// back here too and change nothing).
func (w *watcher) trustSet(agent string, trust int, by store.Principal) {
	if by.Name == monitorPrincipal.Name {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mon.SetTrust(agent, trust)
	w.synced[agent] = trust
}

// raise adds content risk for the session's next call.
func (w *watcher) raise(session string, risk int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.risk[session] = max(w.risk[session], risk)
	if w.n.Auth.Ended(session) { // after the add, so it cannot miss the end
		delete(w.risk, session)
	}
}

// observe feeds one event to the monitor, keeps the trust score in step
// with the store, records signals and carries out actions. It returns a
// reason to deny the call, or "".
func (w *watcher) observe(ctx context.Context, c *enforce.Caller, e monitor.Event) string {
	// Responses outlive the call that raised them: a quarantine ends the
	// very session whose request carries ctx.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	w.mu.Lock()
	if _, ok := w.synced[c.Agent]; !ok {
		// First sight in this process: the store has the score.
		w.mon.SetTrust(c.Agent, c.Trust)
		w.synced[c.Agent] = c.Trust
	}
	w.mu.Unlock()

	signals, actions := w.mon.Observe(e)
	for _, s := range signals {
		w.record(ctx, "signal", s.Agent, s.Session, s)
	}
	block := ""
	for _, a := range actions {
		w.record(ctx, "response", a.Agent, a.Session, a)
		w.n.notify("playbook."+a.Kind, a)
		switch a.Kind {
		case monitor.ActionAlert:
			w.alert(a)
		case monitor.ActionBlock:
			block = fmt.Sprintf("blocked by playbook %q: %s (%s)", a.Playbook, a.Signal.Kind, a.Signal.Detail)
		case monitor.ActionRequireApproval:
			w.n.sessions.AddLabels(ctx, &enforce.Caller{Session: a.Session, Agent: a.Agent, Sponsor: c.Sponsor, Objective: c.Objective}, "playbook:"+a.Playbook, ReviewLabel)
		case monitor.ActionQuarantine:
			if _, err := w.n.Auth.SetAgentStatus(ctx, monitorPrincipal, a.Agent, "quarantined"); err != nil {
				w.n.cfg.Logger.Error("monitor: quarantine failed", "agent", a.Agent, "err", err)
			}
			block = fmt.Sprintf("agent %s quarantined by playbook %q: %s (%s)", a.Agent, a.Playbook, a.Signal.Kind, a.Signal.Detail)
		case monitor.ActionPreserve:
			if _, busy := w.preserving.LoadOrStore(a.Session, true); !busy {
				go w.preserve(a.Session) // once per session
			}
		}
	}

	// Read, compare and write under one lock, so that an operator's
	// score set meanwhile (trustSet) is never overwritten by a stale one.
	w.mu.Lock()
	if t := w.mon.Trust(c.Agent); t != w.synced[c.Agent] {
		w.synced[c.Agent] = t
		if err := w.n.Auth.SetAgentTrust(ctx, monitorPrincipal, c.Agent, t); err != nil {
			w.n.cfg.Logger.Error("monitor: storing trust failed", "agent", c.Agent, "err", err)
		}
	}
	w.mu.Unlock()
	return block
}

func (w *watcher) record(ctx context.Context, typ, agent, session string, v any) {
	if _, err := w.n.Audit.Append(ctx, audit.Event{Type: typ, Actor: "ward-monitor", Agent: agent, Session: session, Data: jsonData(v)}); err != nil {
		w.n.cfg.Logger.Error("monitor: recording failed", "type", typ, "err", err)
	}
}

// alert logs the action and posts it to the alert webhook, if any, without
// holding up the call.
func (w *watcher) alert(a monitor.Action) {
	w.n.cfg.Logger.Warn("monitor alert", "signal", a.Signal.Kind, "severity", a.Signal.Severity.String(), "agent", a.Agent,
		"session", a.Session, "group", a.Signal.Group, "detail", a.Signal.Detail)
	w.n.notify("alert", a)
	if w.hook == "" {
		return
	}
	body, _ := json.Marshal(a)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.hook, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := alertClient.Do(req)
		if err != nil {
			w.n.cfg.Logger.Warn("monitor: alert webhook failed", "err", err)
			return
		}
		resp.Body.Close()
	}()
}

// alertClient posts alerts: no proxy from the environment, no redirects.
var alertClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// lineage is the session and every session delegated from it, as the log
// records them (token.exchange events name the parent).
func (w *watcher) lineage(session string) map[string]bool {
	out := map[string]bool{session: true}
	events, err := w.n.Audit.Read(0, w.n.Audit.Size())
	if err != nil {
		return out
	}
	for _, e := range events {
		if e.Type != "token.exchange" {
			continue
		}
		var d struct {
			Parent string `json:"parent_session"`
		}
		if json.Unmarshal(e.Data, &d) == nil && out[d.Parent] {
			out[e.Session] = true
		}
	}
	return out
}

// preserve writes a forensic bundle of the session and the sessions
// delegated from it to DATA/forensics.
func (w *watcher) preserve(session string) {
	dir := filepath.Join(w.n.cfg.Data, "forensics")
	v, origin, err := AuditVerifier(w.n.cfg.Data)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	var b *audit.Bundle
	if err == nil {
		// A checkpoint in the files over the session's events so far
		// (the log signs them on its own cadence).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = w.n.Audit.Sync(ctx)
		cancel()
	}
	if err == nil {
		vkey, _ := os.ReadFile(filepath.Join(w.n.cfg.Data, "keys", "audit.pub"))
		rkey, _ := os.ReadFile(filepath.Join(w.n.cfg.Data, "keys", "receipt.pub"))
		sessions := w.lineage(session)
		b, err = audit.ExportBundle(filepath.Join(w.n.cfg.Data, "audit"), v, origin, strings.TrimSpace(string(vkey)), string(rkey), nil,
			func(e audit.Event) bool { return sessions[e.Session] })
	}
	if err == nil {
		var raw []byte
		raw, err = json.MarshalIndent(b, "", "  ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.json", session, time.Now().UnixNano())), raw, 0o600)
		}
	}
	if err != nil {
		w.n.cfg.Logger.Error("monitor: preserving a forensic bundle failed", "session", session, "err", err)
	}
}
