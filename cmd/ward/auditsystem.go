package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/witness"
)

// systemConfig is the file of ward audit verify --system and ward audit
// reindex: the system's store and, for every node, the keys the operator
// recorded when it was set up (its trust anchors: never read from the
// data verified) and where its data directory (or a copy) is.
//
//	store: {postgres: "postgres://…", schema: ward}
//	quorum: 2                      # cosignatures each log needs; default: every other node
//	nodes:
//	  - id: n1
//	    data: /srv/ward-n1          # or a copy of its audit/ and audit.head
//	    log_keys: ["example.org/audit/n1+1a2b3c4d+…"]    # DATA/keys/audit.pub (and the keys it was rotated from)
//	    cosign_key: "example.org/cosign/n1+5e6f7a8b+…"   # DATA/keys/cosign.vkey
//	  - {id: n2, data: /srv/ward-n2, log_keys: […], cosign_key: "…", retired: true}
type systemConfig struct {
	Store struct {
		Postgres string `yaml:"postgres"`
		Schema   string `yaml:"schema"`
	} `yaml:"store"`
	Quorum int                  `yaml:"quorum"`
	Nodes  []witness.SystemNode `yaml:"nodes"`
}

// loadSystemConfig reads a system file strictly (unknown or repeated
// keys refused); relative data paths are from the file's directory.
func loadSystemConfig(path string) (systemConfig, error) {
	var sc systemConfig
	if path == "" {
		return sc, usagef("--system needs --config FILE: the system's store and every node's keys and data directory")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return sc, fmt.Errorf("system config: %w", err)
	}
	if len(b) > maxConfigSize {
		return sc, fmt.Errorf("system config %s: larger than %d bytes", path, maxConfigSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return sc, fmt.Errorf("system config %s: %w", path, yamlError(err))
	}
	if err := checkYAML(&doc, ""); err != nil {
		return sc, fmt.Errorf("system config %s: %w", path, err)
	}
	if err := checkKeys(&doc, reflect.TypeOf(systemConfig{}), ""); err != nil {
		return sc, fmt.Errorf("system config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		return sc, fmt.Errorf("system config %s: %w", path, yamlError(err))
	}
	if sc.Store.Postgres = os.ExpandEnv(sc.Store.Postgres); sc.Store.Postgres == "" {
		return sc, fmt.Errorf("system config %s: store: {postgres: DSN} is required (the store the nodes share)", path)
	}
	if len(sc.Nodes) == 0 {
		return sc, fmt.Errorf("system config %s: nodes: list every node of the system", path)
	}
	if sc.Quorum < 0 || sc.Quorum >= len(sc.Nodes) {
		return sc, fmt.Errorf("system config %s: quorum %d: want 0 (every other node) to %d", path, sc.Quorum, len(sc.Nodes)-1)
	}
	for i := range sc.Nodes {
		if d := sc.Nodes[i].Data; d != "" && !filepath.IsAbs(d) {
			sc.Nodes[i].Data = filepath.Join(filepath.Dir(path), d)
		}
	}
	return sc, nil
}

// openSystemStore opens the store a system file names.
func openSystemStore(ctx context.Context, sc systemConfig) (*store.Store, error) {
	return store.OpenPostgres(ctx, store.Config{DSN: sc.Store.Postgres, Schema: sc.Store.Schema})
}

// verifySystem is ward audit verify --system: every node's log, checked
// against the keys of the system file and what the store holds.
func verifySystem(path, out string, stdout io.Writer) error {
	sc, err := loadSystemConfig(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openSystemStore(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := systemReport(ctx, st, sc, path)
	if err != nil {
		return err
	}
	if out == "json" {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, n := range rep.Nodes {
			fmt.Fprintf(stdout, "%-24s %-12s %8d events, published %d, witnessed %d by a quorum of %d\n", n.Node, n.Status, n.Size, n.Published, n.Witnessed, rep.Quorum)
			for _, p := range n.Problems {
				fmt.Fprintf(stdout, "    %s\n", p)
			}
		}
		for _, u := range rep.Unknown {
			fmt.Fprintf(stdout, "%-24s %-12s the store holds a head or cosignature of this node, which %s does not name\n", u, "unknown", path)
		}
	}
	if !rep.OK {
		var bad []string
		for _, n := range rep.Nodes {
			if n.Status != witness.StatusOK {
				bad = append(bad, n.Node+": "+n.Status)
			}
		}
		for _, u := range rep.Unknown {
			bad = append(bad, u+": unknown")
		}
		return fmt.Errorf("SYSTEM AUDIT FAILED VERIFICATION: %s", strings.Join(bad, ", "))
	}
	if out != "json" {
		fmt.Fprintf(stdout, "ok: %d node logs verified in full against the keys of %s, each extending its published head and the checkpoints the other nodes cosigned\n", len(rep.Nodes), path)
	}
	return nil
}

// systemReport verifies the system a system file describes.
func systemReport(ctx context.Context, st *store.Store, sc systemConfig, path string) (*witness.SystemReport, error) {
	heads, err := st.ListAuditHeads(ctx)
	if err != nil {
		return nil, err
	}
	cos, err := st.ListAuditCosignatures(ctx, "")
	if err != nil {
		return nil, err
	}
	cfg := witness.SystemConfig{Nodes: sc.Nodes, Quorum: sc.Quorum}
	for _, h := range heads {
		cfg.Heads = append(cfg.Heads, witness.PublishedHead{Node: h.Node, Origin: h.Origin, Size: h.Size, Checkpoint: []byte(h.Checkpoint)})
	}
	for _, c := range cos {
		cfg.Cosignatures = append(cfg.Cosignatures, witness.PublishedCosignature{Node: c.Node, Witness: c.Witness, Size: c.Size, Checkpoint: []byte(c.Checkpoint)})
	}
	rep, err := witness.VerifySystem(cfg)
	if err != nil {
		return nil, fmt.Errorf("system config %s: %w", path, err)
	}
	return rep, nil
}

// indexable reports whether a node's log may be read into the index: it
// verified in full against its keys and extends what was published of
// it (cosignatures may lag or be missing).
func indexable(status string) bool {
	return status == witness.StatusOK || status == witness.StatusUnwitnessed || status == witness.StatusUnpublished || status == witness.StatusBadEvidence
}

// auditReindex is ward audit reindex: the audit query index of every
// node of the system rebuilt from the node logs, each verified first.
func auditReindex(args []string, stdout io.Writer) error {
	fs := flags("audit reindex")
	configPath := fs.String("config", "", "the system `file` (its store, and every node's keys and data directory; see ward audit verify --system)")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	sc, err := loadSystemConfig(*configPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	st, err := openSystemStore(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := systemReport(ctx, st, sc, *configPath)
	if err != nil {
		return err
	}
	type row struct {
		Node    string `json:"node"`
		Events  uint64 `json:"events"`
		Skipped string `json:"skipped,omitempty"`
	}
	rows := []row{}
	var skipped []string
	for i, n := range rep.Nodes {
		if !indexable(n.Status) {
			rows = append(rows, row{Node: n.Node, Skipped: n.Status})
			skipped = append(skipped, n.Node+": "+n.Status)
			continue
		}
		// VerifySystem read the log in full up to n.Size; read what it
		// verified, no more.
		events, err := audit.ReadDir(filepath.Join(sc.Nodes[i].Data, "audit"), 0, n.Size)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Node, err)
		}
		if err := st.DeleteAuditIndexOf(ctx, n.Node); err != nil {
			return err
		}
		rs := server.AuditRows(events)
		for len(rs) > 0 {
			k := min(len(rs), 1000)
			if err := st.IndexAuditOf(ctx, n.Node, rs[:k]); err != nil {
				return err
			}
			rs = rs[k:]
		}
		rows = append(rows, row{Node: n.Node, Events: n.Size})
	}
	if *out == "json" {
		if err := printJSON(stdout, rows); err != nil {
			return err
		}
	} else {
		for _, r := range rows {
			if r.Skipped != "" {
				fmt.Fprintf(stdout, "%-24s not reindexed: its log is %s (ward audit verify --system says why)\n", r.Node, r.Skipped)
				continue
			}
			fmt.Fprintf(stdout, "%-24s %8d events indexed from its verified log\n", r.Node, r.Events)
		}
	}
	if len(skipped) > 0 {
		return fmt.Errorf("not reindexed: %s", strings.Join(skipped, ", "))
	}
	return nil
}

// searchSystem is ward audit search --system: who did what across the
// system's nodes, from the query index, each event read from its node's
// log after that log verified against the system file's keys. It is the
// nodes' own search (server.SearchSystem, what GET /v1/audit/events
// answers on a node of several) with the logs read from their data
// directories.
func searchSystem(path string, match auditFilter, node string, n int, out string, stdout io.Writer) error {
	sc, err := loadSystemConfig(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := openSystemStore(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	limit := n
	if limit <= 0 {
		limit = 100_000
	}
	evs, err := server.SearchSystem(ctx, st, store.AuditQuery{Type: match.Type, Session: match.Session, Agent: match.Agent, Sponsor: match.Sponsor,
		Name: match.Name, Decision: match.Decision, Node: node, Limit: limit}, systemLogs{sc: sc, path: path})
	if err != nil {
		return err
	}
	for _, e := range evs {
		if out == "json" {
			b, _ := json.Marshal(e)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		fmt.Fprintf(stdout, "%-24s %6d %s %-16s %-12s %s %s\n", e.Node, e.Index, e.Time.Format(time.RFC3339), e.Type, e.Session, e.Actor, e.Data)
	}
	return nil
}

// systemLogs reads the nodes' events from their data directories, each
// log verified in full against the system file's keys (server.AuditSource).
type systemLogs struct {
	sc   systemConfig
	path string
}

func (s systemLogs) Read(_ context.Context, id string, idx []uint64) (map[uint64]audit.Event, error) {
	i := slices.IndexFunc(s.sc.Nodes, func(n witness.SystemNode) bool { return n.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("the index names its events, but %s does not name it: run ward audit verify --system --config %s", s.path, s.path)
	}
	node := s.sc.Nodes[i]
	keys := make([]note.Verifier, 0, len(node.LogKeys))
	for _, k := range node.LogKeys {
		v, err := audit.ParseVerifierKey(k)
		if err != nil {
			return nil, fmt.Errorf("system config %s: %w", s.path, err)
		}
		keys = append(keys, v)
	}
	v, err := audit.Keyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("system config %s: %w", s.path, err)
	}
	dir := filepath.Join(node.Data, "audit")
	rep, err := audit.VerifyLog(dir, audit.VerifyConfig{Verifier: v, Origin: v.Name(), Head: filepath.Join(node.Data, "audit.head")})
	if err != nil {
		return nil, fmt.Errorf("AUDIT LOG FAILED VERIFICATION: %w", err)
	}
	lo, hi := slices.Min(idx), slices.Max(idx)
	if hi >= rep.Size {
		return nil, fmt.Errorf("the index names event %d, but its verified log holds %d: run ward audit reindex --config %s", hi, rep.Size, s.path)
	}
	evs, err := audit.ReadDir(dir, lo, hi+1)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]audit.Event, len(idx))
	for _, e := range evs {
		if _, ok := slices.BinarySearch(idx, e.Index); ok {
			out[e.Index] = e
		}
	}
	return out, nil
}
