package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/sandbox/changes"
)

// cmdChanges shows, applies or discards the workspace changes a `ward run`
// captured and kept ($WARD_HOME/runs/SESSION). Applying or discarding is
// recorded in the session's audit trail first: an operator's decision that
// cannot be recorded is not carried out.
func cmdChanges(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "changes", "show", "apply", "discard")
	if err != nil {
		return err
	}
	fs := flags("changes " + sub)
	workspace := fs.String("workspace", "", "apply to this directory instead of the run's workspace")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: ward changes show|apply|discard SESSION")
	}
	id := fs.Arg(0)
	if id == "" || id != filepath.Base(id) || id == "." || id == ".." {
		return usagef("%q is not a session id", id)
	}
	dir := filepath.Join(runsDir(), id)
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return fmt.Errorf("run of session %s: %w", id, err)
	}
	var rec runRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("run of session %s: run.json: %w", id, err)
	}
	if rec.RolledBack {
		// --rollback kept only the summary.
		switch sub {
		case "show":
			showRun(stdout, rec, "rolled back: discarded, only their summary is kept")
			fmt.Fprint(stdout, rec.Summary)
			return nil
		case "apply":
			return fmt.Errorf("the changes of session %s were rolled back (--rollback): nothing of them was kept to apply", id)
		}
		return fmt.Errorf("the changes of session %s were rolled back (--rollback): nothing of them was kept", id)
	}
	set, err := changes.Load(filepath.Join(dir, "changes"))
	if err != nil {
		return fmt.Errorf("run of session %s: %w", id, err)
	}
	switch sub {
	case "show":
		state := "kept, not applied"
		switch {
		case rec.Applied:
			state = "applied"
		case rec.Discarded:
			state = "discarded"
		}
		showRun(stdout, rec, state)
		if len(rec.Protected) > 0 {
			fmt.Fprintf(stdout, "protected  %q\n", rec.Protected)
		}
		if len(rec.Outside) > 0 {
			fmt.Fprintf(stdout, "outside    symbolic links that point outside the workspace: %s\n", describeLinks(set, rec.Outside))
		}
		fmt.Fprint(stdout, set.Summary())
		return nil
	case "apply":
		if rec.Applied {
			return fmt.Errorf("the changes of session %s were already applied", id)
		}
		if rec.Discarded {
			return fmt.Errorf("the changes of session %s were already discarded", id)
		}
		target := rec.Workspace
		if *workspace != "" {
			target = *workspace
		}
		if target == "" {
			return usagef("the run had no workspace: name one with --workspace DIR")
		}
		if err := recordDecision(id, "changes.apply", "workspace changes applied to "+target, set); err != nil {
			return err
		}
		if err := changes.Apply(set, filepath.Join(dir, "changes"), target); err != nil {
			return err
		}
		rec.Applied = true
		fmt.Fprintf(stdout, "applied %d changes to %s\n", len(set.Paths()), target)
	case "discard":
		if rec.Applied {
			return fmt.Errorf("the changes of session %s were already applied", id)
		}
		if err := recordDecision(id, "changes.discard", "workspace changes discarded", set); err != nil {
			return err
		}
		if err := changes.Discard(filepath.Join(dir, "changes")); err != nil {
			return err
		}
		rec.Discarded = true
		fmt.Fprintf(stdout, "discarded the changes of session %s\n", id)
	}
	return writeRunRecord(rec)
}

// showRun prints what a run record says of the run.
func showRun(w io.Writer, rec runRecord, state string) {
	fmt.Fprintf(w, "session    %s\nagent      %s\nworkspace  %s\ncommand    %q\nexit       %d %s\nchanges    %s\n", rec.Session, rec.Agent,
		rec.Workspace, rec.Command, rec.ExitCode, rec.Stopped, state)
	for _, l := range rec.Limits {
		fmt.Fprintf(w, "limit      %s\n", l)
	}
}

// recordDecision records an operator's decision on a change set.
func recordDecision(session, kind, detail string, set *changes.Set) error {
	c, err := operatorClient()
	if err != nil {
		return err
	}
	e := api.RuntimeEvent{Time: time.Now(), Kind: kind, Detail: detail, Data: map[string]any{"changes": set.Paths()}}
	if err := c.do("POST", "/v1/sessions/"+url.PathEscape(session)+"/runtime", map[string]any{"events": []api.RuntimeEvent{e}}, nil); err != nil {
		return fmt.Errorf("recording the decision: %w (nothing was changed)", err)
	}
	return nil
}
