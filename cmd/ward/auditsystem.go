package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

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
	heads, err := st.ListAuditHeads(ctx)
	if err != nil {
		return err
	}
	cos, err := st.ListAuditCosignatures(ctx, "")
	if err != nil {
		return err
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
		return fmt.Errorf("system config %s: %w", path, err)
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
