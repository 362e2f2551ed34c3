package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/sandbox/changes"
)

// changesCmd shows, applies or discards the workspace changes a `ward run`
// captured and kept ($WARD_HOME/runs/SESSION). Applying or discarding is
// recorded in the session's audit trail first: an operator's decision that
// cannot be recorded is not carried out. The run record keeps when each
// was done, so that a later command can say so.
func changesCmd(sub string) func([]string, io.Writer) error {
	return func(args []string, stdout io.Writer) error {
		fs := flags("changes " + sub)
		out := outputFlag(fs)
		var workspace *string
		if sub == "apply" {
			workspace = fs.String("workspace", "", "apply to this `directory` instead of the run's workspace")
		}
		if err := parseOut(fs, args, out); err != nil {
			return err
		}
		id, err := oneArg(fs, "the run's SESSION id")
		if err != nil {
			return err
		}
		if id == "" || id != filepath.Base(id) || id == "." || id == ".." {
			return usagef("%q is not a session id", id)
		}
		dir := filepath.Join(runsDir(), id)
		b, err := os.ReadFile(filepath.Join(dir, "run.json"))
		if errors.Is(err, os.ErrNotExist) {
			return usagef("no run of session %s is kept in %s (runs are kept in $WARD_HOME/runs of the machine that ran them)", id, runsDir())
		}
		if err != nil {
			return fmt.Errorf("run of session %s: %w", id, err)
		}
		var rec runRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("run of session %s: run.json: %w", id, err)
		}
		// What is no longer there is said before anything is loaded.
		if gone := changesGone(rec); gone != "" {
			if sub == "show" {
				return showChanges(stdout, *out, rec, gone, nil)
			}
			return fmt.Errorf("the changes of session %s %s: nothing is left to %s", id, gone, sub)
		}
		if rec.Applied && sub != "show" {
			return fmt.Errorf("the changes of session %s were already applied%s", id, when(rec.AppliedAt))
		}
		set, err := changes.Load(filepath.Join(dir, "changes"))
		if err != nil {
			return fmt.Errorf("run of session %s: %w", id, err)
		}
		switch sub {
		case "show":
			state := "kept, not applied"
			if rec.Applied {
				state = "applied" + when(rec.AppliedAt)
			}
			return showChanges(stdout, *out, rec, state, set)
		case "apply":
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
			now := time.Now().UTC()
			rec.Applied, rec.AppliedAt = true, &now
			if err := writeRunRecord(rec); err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(stdout, map[string]any{"session": id, "applied": set.Paths(), "workspace": target, "at": now})
			}
			fmt.Fprintf(stdout, "applied %d changes to %s\n", len(set.Paths()), target)
		case "discard":
			if err := recordDecision(id, "changes.discard", "workspace changes discarded", set); err != nil {
				return err
			}
			if err := changes.Discard(filepath.Join(dir, "changes")); err != nil {
				return err
			}
			now := time.Now().UTC()
			rec.Discarded, rec.DiscardedAt = true, &now
			if err := writeRunRecord(rec); err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(stdout, map[string]any{"session": id, "discarded": set.Paths(), "at": now})
			}
			fmt.Fprintf(stdout, "discarded the changes of session %s\n", id)
		}
		return nil
	}
}

// changesGone says why a run's change set is no longer kept ("were
// discarded at T"), or "" if it is.
func changesGone(rec runRecord) string {
	switch {
	case rec.Discarded:
		return "were discarded" + when(rec.DiscardedAt)
	case rec.RolledBack:
		return "were rolled back when the run ended (--rollback)" + when(&rec.Ended)
	}
	return ""
}

// when is " at T", or " (when was not recorded)".
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return " (when was not recorded)"
	}
	return " at " + t.UTC().Format(time.RFC3339)
}

// changeView is one change as -o json shows it.
type changeView struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Type   string `json:"type"`
	Prev   string `json:"prev,omitempty"`
	Mode   string `json:"mode,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Diff is the unified diff of a text file against the workspace as
	// it is now; Binary says the content is not text.
	Diff   string `json:"diff,omitempty"`
	Binary bool   `json:"binary,omitempty"`
	// Large says a side is larger than ward changes shows as a diff.
	Large bool `json:"large,omitempty"`
	// OldSize is the size of the file in the workspace now, if any.
	OldSize *int64 `json:"old_size,omitempty"`
}

// showChanges prints a run record and, when its changes are kept, what they
// are: a unified diff of each text file against the workspace as it is
// now, the sizes of other files.
func showChanges(w io.Writer, out string, rec runRecord, state string, set *changes.Set) error {
	var views []changeView
	if set != nil {
		views = diffSet(rec, set)
	}
	if out == "json" {
		return printJSON(w, map[string]any{"session": rec.Session, "agent": rec.Agent, "workspace": rec.Workspace, "command": rec.Command,
			"exit_code": rec.ExitCode, "stopped": rec.Stopped, "limits": rec.Limits, "state": state, "protected": rec.Protected,
			"links_outside": rec.Outside, "changes": views, "summary": summaryOf(rec, set)})
	}
	fmt.Fprintf(w, "session    %s\nagent      %s\nworkspace  %s\ncommand    %q\nexit       %d %s\nchanges    %s\n", rec.Session, rec.Agent,
		rec.Workspace, rec.Command, rec.ExitCode, rec.Stopped, state)
	for _, l := range rec.Limits {
		fmt.Fprintf(w, "limit      %s\n", l)
	}
	if len(rec.Protected) > 0 {
		fmt.Fprintf(w, "protected  %q\n", rec.Protected)
	}
	if set != nil && len(rec.Outside) > 0 {
		fmt.Fprintf(w, "outside    symbolic links that point outside the workspace: %s\n", describeLinks(set, rec.Outside))
	}
	if set == nil {
		fmt.Fprint(w, rec.Summary)
		if rec.Summary != "" {
			fmt.Fprintln(w, "(only this summary is kept)")
		}
		return nil
	}
	fmt.Fprint(w, set.Summary())
	shown := false
	for _, v := range views {
		switch {
		case v.Diff != "":
			if !shown && rec.Workspace != "" {
				fmt.Fprintf(w, "\ndiffs against the workspace as it is now (%s):\n", rec.Workspace)
			}
			shown = true
			fmt.Fprintf(w, "\n%s", v.Diff)
		case v.Binary || v.Large:
			old, new, what := "absent", "absent", "binary"
			if v.OldSize != nil {
				old = fmt.Sprintf("%d bytes", *v.OldSize)
			}
			if v.Kind != string(changes.Deleted) {
				new = fmt.Sprintf("%d bytes", v.Size)
			}
			if v.Large {
				what = fmt.Sprintf("larger than %d bytes, not compared", maxDiffFile)
			}
			fmt.Fprintf(w, "\nfile %s (%s): %s -> %s\n", printable(v.Path), what, old, new)
		}
	}
	return nil
}

func summaryOf(rec runRecord, set *changes.Set) string {
	if set == nil {
		return rec.Summary
	}
	return set.Summary()
}

// diffSet describes every change of set, with the diff of its content
// where there is one to show.
func diffSet(rec runRecord, set *changes.Set) []changeView {
	var ws, saved *os.Root
	if rec.Workspace != "" {
		ws, _ = os.OpenRoot(rec.Workspace)
	}
	saved, _ = os.OpenRoot(filepath.Join(runsDir(), rec.Session, "changes", "files"))
	defer func() {
		if ws != nil {
			ws.Close()
		}
		if saved != nil {
			saved.Close()
		}
	}()
	views := make([]changeView, 0, len(set.Changes))
	for _, c := range set.Changes {
		v := changeView{Path: c.Path, Kind: string(c.Kind), Type: string(c.Type), Prev: string(c.Prev), Size: c.Size, SHA256: c.SHA256,
			Target: c.Target, Reason: c.Reason}
		if c.Mode != 0 {
			v.Mode = fmt.Sprintf("%04o", changes.UnixMode(c.Mode))
		}
		// The old side: a file in the workspace now, if the path held
		// one before the change.
		var old []byte
		oldFile := false
		if c.Kind == changes.Modified || c.Kind == changes.Deleted || (c.Kind == changes.Replaced && c.Prev == changes.File) {
			if b, size, ok := readSmall(ws, c.Path); ok {
				old, oldFile = b, true
				v.OldSize = &size
			}
		}
		var new []byte
		newFile := false
		if c.Type == changes.File && (c.Kind == changes.Added || c.Kind == changes.Modified || c.Kind == changes.Replaced) {
			if b, _, ok := readSmall(saved, c.Path); ok {
				new, newFile = b, true
			}
		}
		if !oldFile && !newFile {
			views = append(views, v)
			continue
		}
		if (oldFile && old == nil) || (newFile && new == nil) {
			v.Large = true
			views = append(views, v)
			continue
		}
		if (oldFile && !changes.IsText(old)) || (newFile && !changes.IsText(new)) {
			v.Binary = true
			views = append(views, v)
			continue
		}
		from, to := "a/"+c.Path, "b/"+c.Path
		if !oldFile {
			from = "/dev/null"
		}
		if !newFile {
			to = "/dev/null"
		}
		v.Diff = changes.UnifiedDiff(from, to, old, new)
		views = append(views, v)
	}
	return views
}

// readSmall reads the regular file at path beneath root: its content if it
// is at most maxDiffFile bytes (else nil), its size, and whether there is
// such a file.
func readSmall(root *os.Root, path string) ([]byte, int64, bool) {
	return changes.ReadBounded(root, path, maxDiffFile)
}

// maxDiffFile is the largest file ward changes show shows as a diff; a
// larger one is shown by its sizes.
const maxDiffFile = 1 << 20

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
