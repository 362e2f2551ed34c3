package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/replay"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/taint"
)

// cmdReplay decides a recorded trace, or a directory of them, against
// policies without enforcing anything (shadow mode), simulating the node's
// taint labels, argument provenance and content scanning as configured by
// the node config's taint and tools sections (--config). The trace format
// is documented in internal/replay.
func cmdReplay(args []string, stdout io.Writer) error {
	fs := flags("replay")
	out := outputFlag(fs)
	var policies multi
	fs.Var(&policies, "policies", "policy `file` or directory (repeatable; default ward-data/policies)")
	config := fs.String("config", "", "ward config `file` whose taint and tools sections the replay uses (default: none, every result untrusted)")
	figures := fs.Bool("figures", false, "for a directory of labelled sessions: print only the three figures per domain, as a markdown table")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	path, err := oneArg(fs, "a TRACE.jsonl file or a directory of them")
	if err != nil {
		return err
	}
	if len(policies) == 0 {
		policies = multi{filepath.Join(server.DefaultData, "policies")}
	}
	set, err := server.LoadPolicies(policies)
	if err != nil {
		return err
	}
	var opt replay.Options
	if *config != "" {
		cfg, err := loadConfig(*config)
		if err != nil {
			return err
		}
		if opt.Labels, err = taint.NewLabeler(cfg.TaintTools, cfg.TaintHosts); err != nil {
			return fmt.Errorf("config %s: %w", *config, err)
		}
		if opt.Labels, err = opt.Labels.WithFields(cfg.TaintFields); err != nil {
			return fmt.Errorf("config %s: %w", *config, err)
		}
		opt.Tools = cfg.Tools
		opt.ScanResults = cfg.ScanResults
		// File arguments of servers with roots are resolved as the node
		// resolves them, on this machine's filesystem.
		for _, u := range cfg.Upstreams {
			if len(u.Roots) == 0 {
				continue
			}
			roots, err := enforce.CanonicalRoots(u.Roots)
			if err != nil {
				return fmt.Errorf("config %s: server %s: %w", *config, u.Name, err)
			}
			if opt.Roots == nil {
				opt.Roots = map[string][]string{}
			}
			opt.Roots[u.Name] = roots
		}
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		prog := startProgress("ward replay", *out, replayingDir(path))
		rep, err := replay.RunDir(set, path, opt)
		prog.Stop()
		if err != nil {
			return err
		}
		if *figures {
			return rep.WriteFigures(stdout)
		}
		if *out == "json" {
			return rep.WriteSessionsJSON(stdout)
		}
		return rep.WriteSessions(stdout)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	prog := startProgress("ward replay", *out, replaying([]string{path}))
	rep, err := replay.Run(set, f, opt)
	prog.Stop()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if *out == "json" {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}
