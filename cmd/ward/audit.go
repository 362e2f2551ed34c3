package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/witness"
)

// maxKeyFile bounds a key file read for --key.
const maxKeyFile = 4 << 10

// logKey is the audit log key a command trusts, and where it came from.
type logKey struct {
	v      note.Verifier
	text   string   // the key, "name+hash+base64" (the first, across a rotation)
	texts  []string // every key, across a rotation of the log's key
	source string   // "--key", a file given to --key, or DATA/keys/audit.pub
	pinned bool     // given by the user, not read from the directory under test
}

// auditKey returns the key given to --key (the key itself, or a file
// holding it, or several keys of the log one a line, across a rotation
// of its key), else the ones in DATA/keys (audit.pub, and audit.next.pub
// and audit.retired across a rotation), which are not pinned: they come
// from the directory under test.
func auditKey(data, flag string) (logKey, error) {
	if flag == "" {
		path := filepath.Join(data, "keys", "audit.pub")
		v, text, err := readKeyFile(path)
		if err != nil {
			return logKey{}, err
		}
		texts := []string{text}
		for _, f := range []string{"audit.next.pub", "audit.retired"} {
			_, more, err := readKeys(filepath.Join(data, "keys", f))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return logKey{}, err
			}
			texts = append(texts, more...)
		}
		if len(texts) > 1 {
			if v, err = logKeyring(texts); err != nil {
				return logKey{}, fmt.Errorf("audit keys in %s: %w", filepath.Join(data, "keys"), err)
			}
		}
		return logKey{v: v, text: text, texts: texts, source: path}, nil
	}
	if v, err := audit.ParseVerifierKey(flag); err == nil {
		return logKey{v: v, text: flag, texts: []string{flag}, source: "--key", pinned: true}, nil
	}
	v, texts, err := readKeys(flag)
	if errors.Is(err, os.ErrNotExist) && strings.Count(flag, "+") >= 2 {
		_, perr := audit.ParseVerifierKey(flag)
		return logKey{}, usagef("--key %q: neither a readable file nor a log key (%v)", flag, perr)
	}
	if err != nil {
		return logKey{}, err
	}
	return logKey{v: v, text: texts[0], texts: texts, source: flag, pinned: true}, nil
}

// readKeys reads a file of one or more keys of one log, one a line.
func readKeys(path string) (note.Verifier, []string, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, nil, err
	}
	var texts []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			texts = append(texts, l)
		}
	}
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("audit public key %s: empty", path)
	}
	v, err := logKeyring(texts)
	if err != nil {
		return nil, nil, fmt.Errorf("audit public key %s: %w", path, err)
	}
	return v, texts, nil
}

// logKeyring parses keys of one log into one verifier.
func logKeyring(texts []string) (note.Verifier, error) {
	var vs []note.Verifier
	for _, t := range texts {
		v, err := audit.ParseVerifierKey(t)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return audit.Keyring(vs...)
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("audit public key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("audit public key %s: larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

func readKeyFile(path string) (note.Verifier, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("audit public key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("audit public key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, "", fmt.Errorf("audit public key %s: larger than %d bytes", path, maxKeyFile)
	}
	text := strings.TrimSuffix(string(b), "\n")
	v, err := audit.ParseVerifierKey(text)
	if err != nil {
		return nil, "", fmt.Errorf("audit public key %s: %w", path, err)
	}
	return v, text, nil
}

// auditCmd is ward audit verify|tail|search|prove|export: offline, on a
// data directory (or a copy of its audit/ and keys/).
func auditCmd(sub string) func([]string, io.Writer) error {
	return func(args []string, stdout io.Writer) error {
		fs := flags("audit " + sub)
		out := outputFlag(fs)
		data := fs.String("data", server.DefaultData, "the node's data `directory` (or a copy of its audit/ and keys/)")
		keyFlag := fs.String("key", "", "the log's public key to pin, or a `file` holding it (your copy of DATA/keys/audit.pub; default: the one in DATA, not pinned)")
		var (
			n             *int
			session, file *string
			format        *string
			witnessed     *bool
			checkpoints   multi
			match         auditFilter
			system        *bool
			systemConfig  *string
			node          *string
		)
		switch sub {
		case "verify":
			fs.Var(&checkpoints, "checkpoint", "a `file` holding a checkpoint of this log you hold from elsewhere (a signed checkpoint, cosigned or not, or a copy of DATA/audit/checkpoints); the log must extend it (repeatable)")
			system = fs.Bool("system", false, "verify every node's log of a system of several at once, against the keys in --config")
			systemConfig = fs.String("config", "", "with --system: the system `file` (its store, and every node's keys and data directory)")
		case "tail":
			n = fs.Int("n", 20, "how many events")
		case "search":
			n = fs.Int("n", 20, "at most this many events, the newest (0: all)")
			session = fs.String("session", "", "only this `session`'s events")
			fs.StringVar(&match.Type, "type", "", "event `type` (decision, result, session.start, approval.pending, …)")
			fs.StringVar(&match.Agent, "agent", "", "only this `agent`'s events")
			fs.StringVar(&match.Sponsor, "sponsor", "", "only this `sponsor`'s events")
			fs.StringVar(&match.Name, "tool", "", "tool, prompt or resource `name`")
			fs.StringVar(&match.Decision, "decision", "", "allow, deny or escalate")
			system = fs.Bool("system", false, "search every node of a system of several, through the query index in its store")
			systemConfig = fs.String("config", "", "with --system: the system `file` (see ward audit verify --system)")
			node = fs.String("node", "", "with --system: only this `node`'s events")
		case "export":
			session = fs.String("session", "", "the `session` whose events to bundle (with its sub-agents'); with --format ocsf, only its events (default: all)")
			file = fs.String("out", "", "the bundle `file` to write (--format ocsf: default standard output)")
			format = fs.String("format", "bundle", "`bundle` (forensic bundle with proofs) or ocsf (OCSF JSON for SIEMs, one event a line)")
			witnessed = fs.Bool("witnessed", false, "prove under the latest checkpoint published with its witnesses' cosignatures (DATA/witness/published)")
		}
		if err := parseOut(fs, args, out); err != nil {
			return err
		}
		if sub != "prove" {
			if err := noArgs(fs); err != nil {
				return err
			}
		}
		if sub == "verify" && (*system || *systemConfig != "") {
			if !*system {
				return usagef("--config names a system file: add --system")
			}
			var other []string
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "data" || f.Name == "key" || f.Name == "checkpoint" {
					other = append(other, "--"+f.Name)
				}
			})
			if len(other) > 0 {
				return usagef("--system takes every node's data and keys from --config, not %s", strings.Join(other, ", "))
			}
			return verifySystem(*systemConfig, *out, stdout)
		}
		if sub == "search" && (*system || *systemConfig != "") {
			if !*system {
				return usagef("--config names a system file: add --system")
			}
			if fs.Lookup("data").Value.String() != server.DefaultData || *keyFlag != "" {
				return usagef("--system takes every node's data and keys from --config, not --data or --key")
			}
			match.Session = *session
			return searchSystem(*systemConfig, match, *node, *n, *out, stdout)
		}
		if sub == "search" && *node != "" {
			return usagef("--node picks a node of a system of several: add --system --config FILE")
		}
		if sub == "export" && *format != "bundle" && *format != "ocsf" {
			return usagef("--format %q: want bundle or ocsf", *format)
		}
		if sub == "export" && *format == "bundle" && (*session == "" || *file == "") {
			return usagef("needs --session ID and --out FILE")
		}
		var idx uint64
		if sub == "prove" {
			arg, err := oneArg(fs, "an event INDEX")
			if err != nil {
				return err
			}
			if idx, err = strconv.ParseUint(arg, 10, 64); err != nil {
				return usagef("event index %q: want a number", arg)
			}
		}
		if err := holdsLog(*data); err != nil {
			return err
		}
		key, err := auditKey(*data, *keyFlag)
		if err != nil {
			return err
		}
		v, origin := key.v, key.v.Name()
		dir := filepath.Join(*data, "audit")
		prog := startProgress("ward audit "+sub, *out, readingLog(dir))
		defer prog.Stop()
		switch sub {
		case "verify":
			return verifyLog(*data, key, checkpoints, *out, stdout, prog)
		case "export":
			if *format == "ocsf" {
				events, err := verifiedEvents(dir, v, origin)
				if err != nil {
					return err
				}
				prog.Stop()
				return exportOCSF(events, *session, *file, stdout)
			}
			return exportBundle(*data, key, *session, *file, *witnessed, *out, stdout, prog)
		case "search":
			match.Session = *session
			events, err := verifiedEvents(dir, v, origin)
			if err != nil {
				return err
			}
			var found []audit.Event
			for _, e := range events {
				if match.matches(e) {
					found = append(found, e)
				}
			}
			if *n > 0 && len(found) > *n {
				found = found[len(found)-*n:]
			}
			prog.Stop()
			printEvents(stdout, found, *out)
		case "prove":
			p, err := audit.Prove(dir, v, origin, idx)
			if err != nil {
				return err
			}
			prog.Stop()
			if *out == "json" {
				return printJSON(stdout, p)
			}
			fmt.Fprintf(stdout, "event %d of %d\nentry %s\nleaf  %x\npath  (%d hashes)\n", p.Index, p.Size, p.Entry, p.LeafHash, len(p.Hashes))
			for _, h := range p.Hashes {
				fmt.Fprintf(stdout, "  %x\n", h)
			}
			fmt.Fprintf(stdout, "checkpoint\n%s", p.Checkpoint)
		case "tail":
			events, err := verifiedEvents(dir, v, origin)
			if err != nil {
				return err
			}
			if len(events) > *n {
				events = events[len(events)-*n:]
			}
			prog.Stop()
			printEvents(stdout, events, *out)
		}
		return nil
	}
}

// holdsLog refuses a data directory without an audit log (a typo in
// --data) as a usage error.
func holdsLog(data string) error {
	st, err := os.Stat(filepath.Join(data, "audit"))
	if err == nil && st.IsDir() {
		return nil
	}
	if _, derr := os.Stat(data); derr != nil {
		return usagef("--data %s: no such directory: name a node's data directory (or a copy of its audit/ and keys/)", data)
	}
	return usagef("--data %s holds no audit log (no %s): name a node's data directory (or a copy of its audit/ and keys/)", data, filepath.Join(data, "audit"))
}

// exportBundle is ward audit export: the session's events and its
// sub-agents', each with an inclusion proof, checked before it is written.
func exportBundle(data string, key logKey, session, file string, witnessed bool, out string, stdout io.Writer, prog *progress) error {
	v, origin := key.v, key.v.Name()
	dir := filepath.Join(data, "audit")
	rkey, _ := os.ReadFile(filepath.Join(data, "keys", "receipt.pub"))
	// The session and every session delegated from it (their ids appear
	// in its session.end and token.exchange records).
	sessions := []string{session}
	events, err := verifiedEvents(dir, v, origin)
	if err != nil {
		return err
	}
	for _, e := range events {
		if e.Type != "token.exchange" || slices.Contains(sessions, e.Session) {
			continue
		}
		var d struct {
			Parent string `json:"parent_session"`
		}
		if json.Unmarshal(e.Data, &d) == nil && slices.Contains(sessions, d.Parent) {
			sessions = append(sessions, e.Session)
		}
	}
	var at []byte
	if witnessed {
		if at, err = os.ReadFile(filepath.Join(data, "witness", "published")); err != nil {
			return fmt.Errorf("--witnessed: no witnessed checkpoint: %w", err)
		}
	}
	b, err := audit.Export(dir, audit.ExportConfig{Verifier: v, Origin: origin, LogKey: key.text, ReceiptKey: string(rkey), At: at, Sessions: sessions})
	if err != nil {
		return err
	}
	if b.Sessions[0] != session {
		return fmt.Errorf("no events of session %s under the checkpoint", session)
	}
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	rep, err := audit.VerifyBundleWith(raw, audit.BundleCheck{Verifier: v, Session: session, AllowUnsealed: true})
	if err != nil {
		return fmt.Errorf("the exported bundle does not verify: %w", err)
	}
	var notes []string
	// The bundle's checkpoint may be newer than the events read above (a
	// running node signs checkpoints on its own cadence).
	later := events[min(rep.TreeSize, uint64(len(events))):]
	if newer := countIf(later, func(e audit.Event) bool { return slices.Contains(sessions, e.Session) }); newer > 0 {
		notes = append(notes, fmt.Sprintf("%d event(s) of the session are newer than the witnessed checkpoint and are not in the bundle", newer))
	}
	var unsealed []string
	for _, s := range rep.Sessions {
		if !s.Sealed {
			unsealed = append(unsealed, s.ID)
			notes = append(notes, fmt.Sprintf("session %s is not sealed under this checkpoint (it had not ended): verify-bundle will not call the bundle complete without --allow-unsealed; export again once it has ended", s.ID))
		}
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		return err
	}
	prog.Stop()
	if out == "json" {
		return printJSON(stdout, map[string]any{"file": file, "events": len(b.Events), "sessions": b.Sessions, "tree_size": rep.TreeSize,
			"unsealed": unsealed, "notes": notes})
	}
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	fmt.Fprintf(stdout, "wrote %s: %d events of %d session(s), each with a C2SP tlog-proof under the checkpoint of size %d\n", file, len(b.Events), len(b.Sessions), rep.TreeSize)
	return nil
}

// auditVerifyBundle is ward audit verify-bundle.
func auditVerifyBundle(args []string, stdout io.Writer) error {
	fs := flags("audit verify-bundle")
	out := outputFlag(fs)
	keyFlag := fs.String("key", "", "the log's public key to pin, or a `file` holding it (required: never taken from the bundle)")
	session := fs.String("session", "", "the `session` the bundle must be of")
	witnessPolicy := fs.String("witness-policy", "", "require the bundle's checkpoint to be cosigned as this witness policy `file` says")
	allowUnsealed := fs.Bool("allow-unsealed", false, "accept a session that was still open at the bundle's checkpoint (its later events are then not proven absent)")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	return verifyBundle(fs.Args(), *keyFlag, *witnessPolicy, *session, *allowUnsealed, *out, stdout)
}

func printEvents(w io.Writer, events []audit.Event, out string) {
	for _, e := range events {
		if out == "json" {
			b, _ := json.Marshal(e)
			fmt.Fprintln(w, string(b))
			continue
		}
		fmt.Fprintf(w, "%6d %s %-16s %-12s %s %s\n", e.Index, e.Time.Format(time.RFC3339), e.Type, e.Session, e.Actor, e.Data)
	}
}

// verifyLog is ward audit verify: the log in DATA/audit against the key,
// ward's remembered head (DATA/audit.head), the checkpoint the witnesses
// cosigned (DATA/witness/published) and the checkpoints given. The head
// and the published checkpoint come from the directory under test: they
// can only add failures, never vouch for the log. A plain "ok" needs a
// pinned key.
func verifyLog(data string, key logKey, checkpoints []string, out string, stdout io.Writer, prog *progress) error {
	for _, c := range checkpoints {
		if _, err := os.Stat(c); err != nil {
			return usagef("--checkpoint: %v", err)
		}
	}
	anchors := append(slices.Clone(checkpoints), filepath.Join(data, "witness", "published"))
	rep, verr := audit.VerifyLog(filepath.Join(data, "audit"), audit.VerifyConfig{Verifier: key.v, Origin: key.v.Name(),
		Head: filepath.Join(data, "audit.head"), Anchors: anchors})
	if verr == nil && len(key.texts) > 1 {
		verr = audit.CheckKeyOrder(filepath.Join(data, "audit"), key.v)
	}
	prog.Stop()
	var problems []string
	if key.pinned {
		if _, text, err := readKeyFile(filepath.Join(data, "keys", "audit.pub")); err == nil && !slices.Contains(key.texts, text) {
			problems = append(problems, fmt.Sprintf("%s holds the key %s, not the pinned %s: it was replaced",
				filepath.Join(data, "keys", "audit.pub"), keyID(text), keyID(key.text)))
		}
	}
	trust := "pinned key " + keyID(key.text)
	if !key.pinned {
		trust = "key " + keyID(key.text) + " read from " + key.source + ", the directory under test (not pinned)"
	}
	if verr != nil || len(problems) > 0 {
		if verr != nil {
			problems = append(problems, verr.Error())
		}
		msg := fmt.Sprintf("AUDIT LOG FAILED VERIFICATION against the %s: %s", trust, strings.Join(problems, "; "))
		if !key.pinned {
			msg += " (if the key file was replaced, verify with the key you recorded: --key FILE|KEY)"
		}
		return errors.New(msg)
	}
	var warnings []string
	if !rep.HeadFound {
		warnings = append(warnings, fmt.Sprintf("ward's remembered head (%s) is missing, so a rollback of the log cannot be ruled out", filepath.Join(data, "audit.head")))
	}
	if rep.TailEntries > 0 || rep.TailBytes > 0 {
		warnings = append(warnings, fmt.Sprintf("%d entries (%d bytes) after the latest checkpoint are covered by no checkpoint and not verified: a batch being written, or a crash (ward keeps them aside when it next starts)", rep.TailEntries, rep.TailBytes))
	}
	if len(checkpoints) == 0 {
		warnings = append(warnings, "no --checkpoint given: whoever can rewrite the whole data directory could have rolled it back; keep the checkpoint below (or your witnesses') and pass it next time")
	}
	var anchored []string
	for _, a := range rep.Anchors {
		anchored = append(anchored, fmt.Sprintf("%s (size %d)", a.Source, a.Size))
	}
	if out == "json" {
		return printJSON(stdout, map[string]any{"ok": key.pinned, "pinned": key.pinned, "key": keyID(key.text), "key_source": key.source,
			"size": rep.Size, "root": fmt.Sprintf("%x", rep.Root), "checkpoint": string(rep.Checkpoint), "anchors": rep.Anchors,
			"tail_entries": rep.TailEntries, "tail_bytes": rep.TailBytes, "anomalies": rep.Anomalies, "warnings": warnings})
	}
	if key.pinned {
		fmt.Fprintf(stdout, "ok: %d events; every entry matches the checkpoint signed by the %s", rep.Size, trust)
	} else {
		fmt.Fprintf(stdout, "UNPINNED: %d events consistent with the %s.\nWhoever can rewrite the log can replace that key too, so this is no evidence against them.\nPin the key you recorded when the node was set up: ward audit verify --key FILE|KEY", rep.Size, trust)
	}
	if len(anchored) > 0 {
		fmt.Fprintf(stdout, "\nthe log extends %s", strings.Join(anchored, ", "))
	}
	fmt.Fprintln(stdout)
	for _, a := range rep.Anomalies {
		fmt.Fprintf(stdout, "accepted earlier with --allow-unverified-audit: %s\n", a)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s", rep.Checkpoint)
	return nil
}

// keyID names a key by its name and hash.
func keyID(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}

func countIf[T any](xs []T, f func(T) bool) int {
	n := 0
	for _, x := range xs {
		if f(x) {
			n++
		}
	}
	return n
}

// verifyBundle checks a forensic bundle offline against a pinned log key,
// that it holds every event of its sessions and, if a witness policy is
// given, the cosignatures on its checkpoint.
func verifyBundle(args []string, keyFlag, policyFile, session string, allowUnsealed bool, out string, stdout io.Writer) error {
	if keyFlag == "" {
		return usagef("needs --key AUDIT.pub|KEY: the key is pinned, never taken from the bundle")
	}
	if len(args) != 1 {
		return usagef("needs one bundle FILE")
	}
	raw, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	key, err := auditKey("", keyFlag)
	if err != nil {
		return err
	}
	rep, err := audit.VerifyBundleWith(raw, audit.BundleCheck{Verifier: key.v, Session: session, AllowUnsealed: allowUnsealed})
	if err != nil {
		return fmt.Errorf("BUNDLE FAILED VERIFICATION: %w", err)
	}
	witnessed := ""
	if policyFile != "" {
		text, err := os.ReadFile(policyFile)
		if err != nil {
			return err
		}
		policy, err := witness.ParsePolicy(text)
		if err != nil {
			return err
		}
		if !policy.Satisfied(rep.Checkpoint) {
			return fmt.Errorf("BUNDLE FAILED VERIFICATION: its checkpoint lacks the cosignatures %s requires", policyFile)
		}
		witnessed = ", cosigned as " + policyFile + " requires"
	}
	if out == "json" {
		return printJSON(stdout, map[string]any{"ok": true, "tree_size": rep.TreeSize, "sessions": rep.Sessions, "events": rep.Events})
	}
	fmt.Fprintf(stdout, "ok: %d events, each included in the log of size %d signed by %s%s\n", len(rep.Events), rep.TreeSize, keyID(key.text), witnessed)
	for _, s := range rep.Sessions {
		if s.Sealed {
			fmt.Fprintf(stdout, "  session %s: all %d of its events (sealed at log index %d)\n", s.ID, s.Events, s.Last)
		} else {
			fmt.Fprintf(stdout, "  session %s: NOT PROVEN COMPLETE: %d events with none missing up to log index %d, but it was not sealed at tree size %d, so later events may exist\n", s.ID, s.Events, s.Last, rep.TreeSize)
		}
	}
	return nil
}

// auditFilter selects events for ward audit search; empty fields match all.
type auditFilter struct{ Type, Session, Agent, Sponsor, Name, Decision string }

func (f auditFilter) matches(e audit.Event) bool {
	if (f.Type != "" && e.Type != f.Type) || (f.Session != "" && e.Session != f.Session) ||
		(f.Agent != "" && e.Agent != f.Agent) || (f.Sponsor != "" && e.Sponsor != f.Sponsor) {
		return false
	}
	if f.Name == "" && f.Decision == "" {
		return true
	}
	var d struct {
		Name     string `json:"name"`
		Decision string `json:"decision"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return (f.Name == "" || d.Name == f.Name) && (f.Decision == "" || d.Decision == f.Decision)
}

// verifiedEvents verifies the log in dir and returns every event its signed
// checkpoint covers.
func verifiedEvents(dir string, v note.Verifier, origin string) ([]audit.Event, error) {
	rep, err := audit.Verify(dir, v, origin)
	if err != nil {
		return nil, fmt.Errorf("AUDIT LOG FAILED VERIFICATION: %w", err)
	}
	return audit.ReadDir(dir, 0, rep.Size)
}
