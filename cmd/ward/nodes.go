package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/store"
)

// staleHead is how old a node's audit head may be before `ward audit
// nodes` says the node is not publishing (nodes publish every 5 s).
const staleHead = time.Minute

// auditNodes lists the audit logs of the nodes of a system, as their
// heads in the shared PostgreSQL store say, checking each head's
// checkpoint against the key recorded with it and saying which nodes
// have not published for a while (stopped, or cut off).
func auditNodes(args []string, stdout io.Writer) error {
	fs := flags("audit nodes")
	configPath := fs.String("config", "", "YAML configuration `file` naming the system's PostgreSQL store")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if cfg.StoreDSN == "" {
		return usagef("--config: name the configuration whose store: {postgres: …} the nodes share")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.OpenPostgres(ctx, store.Config{DSN: cfg.StoreDSN, Schema: cfg.StoreSchema})
	if err != nil {
		return err
	}
	defer st.Close()
	heads, err := st.ListAuditHeads(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Node       string    `json:"node"`
		Origin     string    `json:"origin"`
		Key        string    `json:"key"`
		CosignKey  string    `json:"cosign_key,omitempty"`
		Size       uint64    `json:"size"`
		Updated    time.Time `json:"updated"`
		Publishing bool      `json:"publishing"`
		Signed     bool      `json:"signed"`
		Problem    string    `json:"problem,omitempty"`
	}
	rows := []row{}
	now := time.Now()
	for _, h := range heads {
		r := row{Node: h.Node, Origin: h.Origin, Key: h.VKey, CosignKey: h.CosignKey, Size: h.Size, Updated: h.Updated, Publishing: now.Sub(h.Updated) < staleHead}
		if v, err := note.NewVerifier(h.VKey); err != nil {
			r.Problem = "the recorded key is not a note verifier key"
		} else if n, err := note.Open([]byte(h.Checkpoint), note.VerifierList(v)); err != nil {
			r.Problem = "the checkpoint does not verify with the recorded key"
		} else if want := fmt.Sprintf("%s\n%d\n", h.Origin, h.Size); len(n.Text) < len(want) || n.Text[:len(want)] != want {
			r.Problem = "the checkpoint is not of the recorded origin and size"
		} else {
			r.Signed = true
		}
		if !r.Publishing && r.Problem == "" {
			r.Problem = fmt.Sprintf("no head for %s: the node is stopped or cannot reach the store", now.Sub(h.Updated).Round(time.Second))
		}
		rows = append(rows, r)
	}
	if *out == "json" {
		return printJSON(stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no node has published an audit head to this store")
		return nil
	}
	for _, r := range rows {
		status := "ok"
		if r.Problem != "" {
			status = r.Problem
		}
		fmt.Fprintf(stdout, "%-24s %-40s %8d events  %s  %s\n", r.Node, r.Origin, r.Size, r.Updated.UTC().Format(time.RFC3339), status)
	}
	fmt.Fprintln(stdout, "\nEach node's log verifies on its own: ward audit verify --data DIR --key KEY on the node, with its key pinned from elsewhere;\nevery node's at once, with their cosignatures: ward audit verify --system --config SYSTEM.yaml (README: Verifying the whole system).")
	return nil
}
