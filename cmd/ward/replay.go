package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ward-dev/ward/internal/replay"
	"github.com/ward-dev/ward/internal/server"
)

// cmdReplay decides a recorded trace against policies without enforcing
// anything (shadow mode). The trace format is documented in
// internal/replay.
func cmdReplay(args []string, stdout io.Writer) error {
	fs := flags("replay")
	out := outputFlag(fs)
	var policies multi
	fs.Var(&policies, "policies", "policy file or directory (repeatable; default ward-data/policies)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: ward replay TRACE.jsonl [--policies FILE|DIR]...")
	}
	if len(policies) == 0 {
		policies = multi{filepath.Join(server.DefaultData, "policies")}
	}
	set, err := server.LoadPolicies(policies)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := replay.Run(set, f, replay.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if *out == "json" {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}
