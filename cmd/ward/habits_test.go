package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/changes"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/internal/strictjson"
)

// flagNames lists the flags a leaf's help shows ("-agent", "-o").
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

func helpFlags(help string) []string {
	var out []string
	for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestHelpEveryCommand walks the command table: every command's and every
// subcommand's --help (and -h, and ward help …) exits 0 and prints its own
// usage on standard output; a leaf's help lists exactly the flags it
// accepts, each of them in its usage line; the top-level usage names every
// command and subcommand.
func TestHelpEveryCommand(t *testing.T) {
	code, top, errOut := wardCLI("--help")
	if code != 0 || errOut != "" {
		t.Fatalf("ward --help: exit %d, stderr %q", code, errOut)
	}
	for _, c := range commands() {
		line := ""
		for _, l := range strings.Split(top, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "ward" && f[1] == c.name {
				line = l
			}
		}
		if line == "" {
			t.Errorf("top-level usage has no line for ward %s:\n%s", c.name, top)
			continue
		}
		for _, s := range c.subs {
			if !slices.Contains(strings.Split(strings.Fields(line)[2], "|"), s.name) {
				t.Errorf("top-level usage line %q does not name ward %s %s", line, c.name, s.name)
			}
		}
		if c.subs == nil {
			continue
		}
		for _, h := range []string{"--help", "-h", "help"} {
			code, out, errOut := wardCLI(c.name, h)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: ward "+c.name+" SUBCOMMAND") {
				t.Errorf("ward %s %s: exit %d, stdout %q, stderr %q", c.name, h, code, out, errOut)
			}
			for _, s := range c.subs {
				if !strings.Contains(out, "ward "+c.name+" "+s.name) {
					t.Errorf("ward %s %s does not list %s", c.name, h, s.name)
				}
			}
		}
	}
	for _, l := range leaves() {
		args := strings.Fields(l.path)
		code, help, errOut := wardCLI(append(args, "--help")...)
		if code != 0 || errOut != "" || !strings.HasPrefix(help, "usage: ward "+l.path) {
			t.Errorf("ward %s --help: exit %d, stdout %q, stderr %q", l.path, code, help, errOut)
			continue
		}
		for _, alt := range [][]string{append(args, "-h"), append([]string{"help"}, args...)} {
			if code, out, _ := wardCLI(alt...); code != 0 || out != help {
				t.Errorf("ward %s: exit %d, and not the help of --help:\n%s", strings.Join(alt, " "), code, out)
			}
		}
		// Every flag shown is accepted (it is the leaf's own flag set)
		// and named in the usage line, -o aside.
		usageLine := strings.SplitN(help, "\n", 2)[0]
		for _, f := range helpFlags(help) {
			if f != "o" && !strings.Contains(usageLine, "-"+f) {
				t.Errorf("ward %s: flag -%s is not in the usage line %q", l.path, f, usageLine)
			}
		}
		// And every flag in the usage line is shown.
		for _, m := range regexp.MustCompile(`[\s\[|]--?([a-z][a-z0-9-]*)`).FindAllStringSubmatch(usageLine, -1) {
			if !slices.Contains(helpFlags(help), m[1]) {
				t.Errorf("ward %s: usage line names -%s, which the command does not take", l.path, m[1])
			}
		}
	}
}

// TestHelpOwnFlagsOnly: a subcommand's help does not list its siblings'
// flags (they once shared one flag set), and those flags are refused.
func TestHelpOwnFlagsOnly(t *testing.T) {
	for _, tc := range []struct {
		path    string
		foreign []string
	}{
		{"session end", []string{"agent", "objective", "ttl", "tag", "model"}},
		{"session show", []string{"reason", "agent", "allow"}},
		{"sponsor list", []string{"kind", "allow"}},
		{"agent list", []string{"code-digest", "sponsor", "group", "allow"}},
		{"audit verify", []string{"witness-policy", "allow-unsealed", "session", "tool", "n"}},
		{"audit tail", []string{"checkpoint", "witnessed", "out"}},
		{"approvals show", []string{"reason", "state"}},
		{"changes show", []string{"workspace"}},
		{"tools list", []string{"hash"}},
	} {
		_, help, _ := wardCLI(append(strings.Fields(tc.path), "--help")...)
		for _, f := range tc.foreign {
			if slices.Contains(helpFlags(help), f) {
				t.Errorf("ward %s --help lists a sibling's flag -%s", tc.path, f)
			}
			code, _, errOut := wardCLI(append(strings.Fields(tc.path), "--"+f, "x")...)
			if code != 2 || !strings.Contains(errOut, "flag provided but not defined: -"+f) {
				t.Errorf("ward %s --%s x: exit %d, %q", tc.path, f, code, errOut)
			}
		}
	}
}

// TestFlagErrorsOneLine: a flag error is one line naming the error and the
// help to read, exit 2, for every command; so is a missing or unknown
// subcommand and an unknown command.
func TestFlagErrorsOneLine(t *testing.T) {
	check := func(args []string, want ...string) {
		t.Helper()
		code, out, errOut := wardCLI(args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "Usage") {
			t.Errorf("ward %v: exit %d, stdout %q, stderr %q: want exit 2 and one line", args, code, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("ward %v: %q does not say %q", args, errOut, w)
			}
		}
	}
	for _, l := range leaves() {
		check(append(strings.Fields(l.path), "--no-such-flag"), "flag provided but not defined: -no-such-flag", "see ward "+l.path+" --help")
		if l.cmd.args == "" {
			check(append(strings.Fields(l.path), "extra"), "unexpected argument", "see ward "+l.path+" --help")
		}
	}
	for _, c := range commands() {
		if c.subs != nil {
			check([]string{c.name}, "needs a subcommand", "see ward "+c.name+" --help")
			check([]string{c.name, "frobnicate"}, "unknown subcommand", "see ward "+c.name+" --help")
		}
	}
	check([]string{"sesion", "list"}, `unknown command "sesion"`, `did you mean "session"`)
	check([]string{"session", "strat"}, `did you mean "start"`)
	check([]string{"session", "start", "--agnet", "x"}, "flag provided but not defined: -agnet (did you mean --agent?)")
	check([]string{"agent", "list", "-o", "yaml"}, `-o "yaml": want text or json`)
	if code, out, _ := wardCLI("--version"); code != 0 || out != "ward "+version+"\n" {
		t.Errorf("ward --version: exit %d %q", code, out)
	}
}

// TestExitStatusFromNode: what the node refuses as bad input (400, 404,
// 409, 413, 422) exits 2; its other refusals and failures exit 1.
func TestExitStatusFromNode(t *testing.T) {
	for status := 400; status < 600; status++ {
		if http.StatusText(status) == "" {
			continue
		}
		want := 1
		if slices.Contains([]int{400, 404, 409, 413, 422}, status) {
			want = 2
		}
		var stderr bytes.Buffer
		err := fmt.Errorf("context: %w", &apiError{status: status, msg: "no"})
		if got := finish(err, "x", io.Discard, &stderr); got != want {
			t.Errorf("HTTP %d: exit %d, want %d", status, got, want)
		}
	}
	startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	mustCLI(t, "sponsor", "create", "erin", "--allow", "tool:demo.*")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"session", "show", "no-such-session"}, 2, "HTTP 404"},
		{[]string{"agent", "show", "nobody"}, 2, "HTTP 404"},
		{[]string{"sponsor", "create", "erin"}, 2, "HTTP 409"},
		{[]string{"agent", "register", "wide", "--sponsor", "erin", "--allow", "tool:fs.*"}, 1, "HTTP 403"},
		{[]string{"session", "start", "--agent", "nobody", "--objective", "x"}, 2, "nobody"},
	} {
		code, _, errOut := wardCLI(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("ward %v: exit %d, %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	t.Setenv("WARD_TOKEN", "ward_"+strings.Repeat("A", 43))
	if code, _, errOut := wardCLI("agent", "list"); code != 1 || !strings.Contains(errOut, "HTTP 401") {
		t.Errorf("a credential the node does not know: exit %d %q", code, errOut)
	}
}

// fakeRun keeps a run of session id the way ward run does: a run record
// and a saved change set of workspace ws whose new content is in upper.
func fakeRun(t *testing.T, id, ws string, upper map[string][]byte) {
	t.Helper()
	up := t.TempDir()
	for name, b := range upper {
		os.MkdirAll(filepath.Dir(filepath.Join(up, name)), 0o700)
		if err := os.WriteFile(filepath.Join(up, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := changes.Scan(up, ws, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(runsDir(), id, "changes")
	os.MkdirAll(filepath.Dir(dir), 0o700)
	if err := changes.Save(set, up, dir); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := writeRunRecord(runRecord{Session: id, Agent: "clerk", Workspace: ws, Command: []string{"edit"}, Started: now, Ended: now}); err != nil {
		t.Fatal(err)
	}
}

// habitsNode starts a node with the demo server, an escalating policy and
// a session that has made calls, and returns the session's id and the
// node's data directory.
func habitsNode(t *testing.T) (*server.Node, string, string) {
	t.Helper()
	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "p.cedar"), []byte(`
@id("demo") permit (principal, action, resource in Server::"demo");
@id("deletes-need-ops") @escalate("1 of group:ops")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{pol}, Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}},
		HoldTimeout: -1, ApproverGroups: map[string][]string{"ops": {"admin"}}})
	data := filepath.Dir(os.Getenv("WARD_CA"))
	mustCLI(t, "sponsor", "create", "carol", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "clerk", "--sponsor", "carol", "--allow", "tool:demo.*")
	var s struct{ Session, Credentials string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "clerk", "--objective", "keep notes", "-o", "json")), &s)
	creds, err := sessioncred.Load(s.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: n.URL() + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, c := range []*mcp.CallToolParams{
		{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}},
		{Name: "demo.add", Arguments: map[string]any{"a": 1, "b": 2}},
		{Name: "demo.delete_note", Arguments: map[string]any{"name": "a"}},
		{Name: "demo.delete_note", Arguments: map[string]any{"name": "b"}},
	} {
		cs.CallTool(context.Background(), c)
	}
	return n, s.Session, data
}

// TestJSONEverywhere runs every command whose help offers -o against a
// real node with -o json and checks that what it prints parses as JSON
// (one document; one a line for audit tail and search). The list comes
// from the command table: a command that prints data must have a case
// here, and only the commands that print no data of their own lack -o.
func TestJSONEverywhere(t *testing.T) {
	n, session, data := habitsNode(t)
	bin := buildWard(t)
	keyFile := filepath.Join(t.TempDir(), "audit.pub")
	os.WriteFile(keyFile, must(os.ReadFile(filepath.Join(data, "keys", "audit.pub"))), 0o600)
	var pins []struct{ Name, Hash string }
	json.Unmarshal([]byte(mustCLI(t, "tools", "list", "-o", "json")), &pins)
	hash := ""
	for _, p := range pins {
		if p.Name == "demo.echo" {
			hash = p.Hash
		}
	}
	var pending []struct{ ID string }
	json.Unmarshal([]byte(mustCLI(t, "approvals", "list", "-o", "json")), &pending)
	if len(pending) != 2 {
		t.Fatalf("%d pending approvals, want 2", len(pending))
	}
	receipts := filepath.Join(t.TempDir(), "receipts.json")
	os.WriteFile(receipts, []byte(mustCLI(t, "receipts", "--session", session)), 0o600)
	var other struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "clerk", "--objective", "other", "-o", "json")), &other)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("one\ntwo\n"), 0o644)
	fakeRun(t, session, ws, map[string][]byte{"a.txt": []byte("one\n2\n")})
	fakeRun(t, other.Session, t.TempDir(), map[string][]byte{"b.txt": []byte("new\n")})
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	// A retiring key for ward keys retire.
	mustCLI(t, "keys", "rotate", "--kind", "jwt")
	var keyList []struct{ Kind, KID, State string }
	json.Unmarshal([]byte(mustCLI(t, "keys", "list", "-o", "json")), &keyList)
	retiringKID := ""
	for _, k := range keyList {
		if k.Kind == "jwt" && k.State == "retiring" {
			retiringKID = k.KID
		}
	}
	tests := filepath.Join(repoRoot(), "internal", "policytest", "testdata", "pass.yaml")
	rdir := filepath.Join(repoRoot(), "internal", "replay", "testdata")

	cases := map[string][]string{
		"version":             {},
		"sponsor create":      {"dave", "--allow", "tool:demo.echo"},
		"sponsor list":        {},
		"sponsor credential":  {"dave"},
		"agent register":      {"helper", "--sponsor", "carol", "--allow", "tool:demo.echo"},
		"agent list":          {},
		"agent show":          {"clerk"},
		"agent trust":         {"helper", "40"},
		"agent quarantine":    {"helper"},
		"agent release":       {"helper"},
		"session start":       {"--agent", "clerk", "--objective", "more notes"},
		"session show":        {session},
		"session list":        {},
		"session end":         {other.Session},
		"token exchange":      {"--session", session, "--allow", "tool:demo.echo"},
		"tools list":          {},
		"tools approve":       {"demo.echo", "--hash", hash},
		"approvals list":      {"--state", "all"},
		"approvals show":      {pending[0].ID},
		"approvals approve":   {pending[0].ID},
		"approvals deny":      {pending[1].ID},
		"policy check":        {filepath.Join(rdir, "policies.cedar")},
		"policy explain":      {filepath.Join(rdir, "policies.cedar")},
		"policy test":         {tests},
		"policy schema":       {},
		"replay":              {filepath.Join(rdir, "example.jsonl"), "--policies", filepath.Join(rdir, "policies.cedar")},
		"receipts":            {"--session", session},
		"claim verify":        {"--data", data, "--session", session, "--tool", "demo.echo", "--receipt", receipts},
		"audit verify":        {"--data", data, "--key", keyFile},
		"audit tail":          {"--data", data},
		"audit search":        {"--data", data, "--session", session},
		"audit prove":         {"--data", data, "1"},
		"audit export":        {"--data", data, "--session", session, "--out", bundle},
		"audit verify-bundle": {"--key", keyFile, "--allow-unsealed", bundle},
		"doctor":              {"--data", data, "--key", keyFile, "--no-runtime"},
		"health":              {},
		"keys list":           {},
		"keys rotate":         {"--kind", "receipt"},
		"keys retire":         {"--kid", retiringKID},
		"changes show":        {session},
		"changes apply":       {session},
		"changes discard":     {other.Session},
		"console user":        {"add", "cora", "--role", "viewer", "--data", data},
		// Run last, as real processes (they serve until stopped):
		"mcp serve":        {"--session", session, "--listen", "127.0.0.1:0"},
		"up":               {"--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0"},
		"admin credential": {"--data", data},
	}
	// Their standard output is the program's, the MCP stream, or a
	// client's own configuration format.
	noData := []string{"run", "mcp wrap", "mcp config", "completion"}
	late := []string{"changes show", "changes apply", "changes discard", "audit export", "audit verify-bundle", "mcp serve", "up", "admin credential"}
	// ward audit nodes reads a PostgreSQL store: checked when one runs here.
	var unchecked []string
	if dsn, schema, ok := testPGSchema(t); ok {
		pg := filepath.Join(t.TempDir(), "pg.yaml")
		os.WriteFile(pg, fmt.Appendf(nil, "store: {postgres: %q, schema: %s}\n", dsn, schema), 0o600)
		cases["audit nodes"] = []string{"--config", pg}
		// One node's system (its head never published to this store).
		sys := filepath.Join(t.TempDir(), "system.yaml")
		os.WriteFile(sys, fmt.Appendf(nil, "store: {postgres: %q, schema: %s}\nnodes: [{id: solo, data: %q, log_keys: [%q]}]\n",
			dsn, schema, data, strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "keys", "audit.pub")))))), 0o600)
		cases["audit reindex"] = []string{"--config", sys}
	} else {
		unchecked = append(unchecked, "audit nodes", "audit reindex")
	}
	var order []string
	for _, l := range leaves() {
		_, help, _ := wardCLI(append(strings.Fields(l.path), "--help")...)
		takesO := slices.Contains(helpFlags(help), "o")
		switch _, ok := cases[l.path]; {
		case !takesO && !slices.Contains(noData, l.path):
			t.Errorf("ward %s takes no -o", l.path)
		case takesO && !ok && !slices.Contains(unchecked, l.path):
			t.Errorf("ward %s takes -o but this test has no case for it", l.path)
		case ok && !slices.Contains(late, l.path):
			order = append(order, l.path)
		}
	}
	for _, p := range late {
		order = append(order, p)
	}
	for _, path := range order {
		args := append(append(strings.Fields(path), cases[path]...), "-o", "json")
		var out string
		switch path {
		case "mcp serve", "up":
			out = firstJSON(t, bin, args)
		case "admin credential":
			n.Close() // it works on a stopped node
			out = mustCLI(t, args...)
		default:
			out = mustCLI(t, args...)
		}
		if err := validJSON(path, out); err != nil {
			t.Errorf("ward %s -o json: %v:\n%s", path, err, out)
		}
	}
}

// jsonLines are the commands whose -o json is a stream of records: one
// JSON object a line.
var jsonLines = []string{"audit tail", "audit search", "replay"}

// validJSON checks -o json output of the command at path.
func validJSON(path, out string) error {
	if !slices.Contains(jsonLines, path) {
		return strictjson.Valid([]byte(out))
	}
	if !strings.HasSuffix(out, "\n") {
		return errors.New("no newline at the end")
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if err := strictjson.Valid([]byte(l)); err != nil {
			return fmt.Errorf("line %q: %w", l, err)
		}
	}
	return nil
}

// firstJSON runs the real binary and returns the first JSON document it
// prints, then stops it.
func firstJSON(t *testing.T, bin string, args []string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	var raw json.RawMessage
	if err := json.NewDecoder(stdout).Decode(&raw); err != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Fatalf("ward %v: %v; stderr: %s", args, err, stderr.String())
	}
	return string(raw)
}

// TestPolicySchemaJSON: -o json prints Cedar's JSON schema format, which
// cedar-go reads back; text prints the Cedar schema as written.
func TestPolicySchemaJSON(t *testing.T) {
	out := mustCLI(t, "policy", "schema", "-o", "json")
	var doc map[string]struct {
		EntityTypes map[string]json.RawMessage `json:"entityTypes"`
		Actions     map[string]json.RawMessage `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	ns, ok := doc[""]
	if !ok || ns.EntityTypes["Session"] == nil || ns.Actions["call_tool"] == nil || ns.Actions["exec"] == nil {
		t.Fatalf("JSON schema lacks what the Cedar one declares:\n%s", out)
	}
	if text := mustCLI(t, "policy", "schema"); !strings.Contains(text, "action call_tool appliesTo") {
		t.Fatalf("text schema: %s", text)
	}
}

// TestConfigUnknownKey: an unknown key anywhere in the configuration is
// named with the file, its line, where it is and the closest valid key.
func TestConfigUnknownKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"session_tll: 5m\n", `:1: unknown key "session_tll" at the top level (did you mean session_ttl?)`},
		{"trust_domain: a.b\n\nSession_TTL: 5m\n", `:3: unknown key "Session_TTL" at the top level (did you mean session_ttl? keys are case-sensitive)`},
		{"servers:\n  - name: fs\n    comand: [x]\n", `:3: unknown key "comand" in servers[0] (did you mean command?)`},
		{"monitor:\n  lern: 5\n", `:2: unknown key "lern" in monitor (did you mean learn?)`},
		{"monitor:\n  trust:\n    denail: 1\n", `:3: unknown key "denail" in monitor.trust (did you mean denial?)`},
		{"monitor:\n  playbooks:\n    - {name: x, signal: [drift], actions: [alert]}\n", `:3: unknown key "signal" in monitor.playbooks[0] (did you mean signals?)`},
		{"audit:\n  record:\n    redact:\n      rules: [{tool: x, paht: y}]\n", `:4: unknown key "paht" in audit.record.redact.rules[0] (did you mean path?)`},
		{"limits:\n  - id: a\n    windw: 1h\n", `:3: unknown key "windw" in limits[0] (did you mean window?)`},
		{"approvals:\n  reviewers: [{name: r, ulr: x}]\n", `:2: unknown key "ulr" in approvals.reviewers[0] (did you mean url?)`},
		{"egress:\n  listen: 127.0.0.1:0\n  credentials: [{hots: a}]\n", `:3: unknown key "hots" in egress.credentials[0] (did you mean host?)`},
		{"tools:\n  db.drop: {verb: delete, impakt: {}}\n", `:2: unknown key "impakt" in tools.db.drop (did you mean impact?)`},
		{"witness:\n  - {origin: a, kye: b}\n", `:2: unknown key "kye" in witness[0] (did you mean key?)`},
		{"zzzzzzzzzz: 1\n", `:1: unknown key "zzzzzzzzzz" at the top level (see the documented keys)`},
		{"approvals:\n  hodl: 1s\n", `:2: unknown key "hodl" in approvals (did you mean hold?)`},
		{"approvals:\n  zzzzzz: 1s\n", `:2: unknown key "zzzzzz" in approvals (valid keys: groups, hold, reviewers, timeout)`},
	} {
		path := filepath.Join(dir, "ward.yaml")
		os.WriteFile(path, []byte(tc.body), 0o600)
		_, err := loadConfig(path)
		if err == nil || !strings.Contains(err.Error(), "config "+path+tc.want) || strings.Contains(err.Error(), "main.") {
			t.Errorf("%q: error %v, want %q", tc.body, err, "config "+path+tc.want)
		}
	}
	// Other errors name the file and the line of the value at fault too.
	path := filepath.Join(dir, "ward.yaml")
	for _, tc := range []struct {
		body string
		line int
		want string
	}{
		{"trust_domain: a\nmax_delegation_depth: many\n", 2, `want a whole number here, not the string "many"`},
		{"servers: {name: a}\n", 1, "want a list here, not a mapping"},
		{"servers:\n  - [a]\n", 2, "want a mapping of keys here, not a list"},
		{"7\n", 1, `want a mapping of keys here, not the number "7"`},
		{"session_ttl: [1]\n", 1, "want a string here, not a list"},
		{"trust_domain: a\nmax_delegation_depth: 99\n", 2, "max_delegation_depth 99: must be 1-16"},
		{"monitor:\n  learn: abc\n", 2, `want a whole number here, not the string "abc"`},
		{"monitor:\n  learn_for: abc\n", 2, `want a duration such as 10m here, not the string "abc"`},
		{"trust_domain: a\nmonitor:\n  trust:\n    half_life: -1s\n", 4, "trust.half_life"},
		{"servers:\n  - name: ok\n    builtin: demo\n  - name: Bad.Name\n    builtin: demo\n", 4, "servers[1]"},
		{"approvals:\n  hold: soon\n", 2, "approvals.hold"},
		{"limits:\n  - id: x\n    window: never\n", 3, "limits[0].window"},
		{"tools:\n  db.drop:\n    verb: smash\n", 3, "tools.db.drop.verb"},
		{"x_x: 1\ntool_pinning: sometimes\n", 1, `unknown key "x_x"`},
		{"tool_pinning: sometimes\n", 1, "tool_pinning"},
		{"egress:\n  credentials: []\n", 1, "egress.listen"},
	} {
		os.WriteFile(path, []byte(tc.body), 0o600)
		_, err := loadConfig(path)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("config %s:%d: ", path, tc.line)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want line %d and %q", tc.body, err, tc.line, tc.want)
		}
	}
	os.WriteFile(path, []byte("trust_domain: a\nmax_delegation_depth: many\n"), 0o600)
	code, _, errOut := wardCLI("up", "--config", filepath.Join(dir, "ward.yaml"))
	if code != 1 || !strings.Contains(errOut, "ward.yaml:2:") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("ward up with a bad config: exit %d %q", code, errOut)
	}
}

// TestUpChecksBeforeCreating: a first start that cannot serve (its address
// taken, its egress address taken, its policies broken) creates nothing,
// so that the next start is a first start that shows the admin credential.
func TestUpChecksBeforeCreating(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pol := filepath.Join(dir, "pol")
	os.Mkdir(pol, 0o700)
	os.WriteFile(filepath.Join(pol, "p.cedar"), []byte("permit (principal, action, resource) when { x };\n"), 0o600)
	badPol := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badPol, []byte("policies: [pol]\n"), 0o600)
	egress := filepath.Join(dir, "egress.yaml")
	os.WriteFile(egress, []byte("egress:\n  listen: "+taken.Addr().String()+"\n"), 0o600)
	for _, args := range [][]string{
		{"up", "--data", data, "--addr", taken.Addr().String()},
		{"up", "--data", data, "--addr", "127.0.0.1:0", "--config", egress},
		{"up", "--data", data, "--addr", "127.0.0.1:0", "--config", badPol},
	} {
		code, _, errOut := wardCLI(args...)
		if code != 1 || !strings.Contains(errOut, "nothing was created") {
			t.Errorf("ward %v: exit %d %q", args, code, errOut)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ward %v created %s", args, data)
		}
	}
	// The next start is a first start and shows the credential.
	var info struct {
		Credential string `json:"admin_credential"`
	}
	json.Unmarshal([]byte(firstJSON(t, buildWard(t), []string{"up", "--data", data, "--addr", "127.0.0.1:0", "-o", "json"})), &info)
	if !credRE.MatchString(info.Credential) {
		t.Fatalf("the start after the failed ones shows no admin credential: %+v", info)
	}
}

// TestAdminCredentialNeedsANode: ward admin credential refuses a directory
// that holds no node, and creates nothing there.
func TestAdminCredentialNeedsANode(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	halfway := filepath.Join(dir, "halfway") // a copy of the keys, no store
	os.MkdirAll(filepath.Join(halfway, "ca"), 0o700)
	os.WriteFile(filepath.Join(halfway, "bundle.pem"), nil, 0o600)
	for _, d := range []string{filepath.Join(dir, "typo-dir"), empty, file, halfway} {
		code, out, errOut := wardCLI("admin", "credential", "--data", d)
		if code != 2 || out != "" || !strings.Contains(errOut, d) || strings.Contains(errOut, "ward_") {
			t.Errorf("admin credential --data %s: exit %d, %q %q", d, code, out, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo-dir")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("admin credential created a node in a mistyped directory")
	}
	if es, _ := os.ReadDir(empty); len(es) != 0 {
		t.Fatalf("admin credential wrote into an empty directory: %v", es)
	}
	// A stopped node's directory works.
	n := startNode(t, server.Config{})
	data := filepath.Dir(os.Getenv("WARD_CA"))
	n.Close()
	if out := mustCLI(t, "admin", "credential", "--data", data); !credRE.MatchString(out) {
		t.Fatalf("admin credential: %s", out)
	}
	// The offline commands on a mistyped directory say so too.
	for _, args := range [][]string{
		{"audit", "verify", "--data", filepath.Join(dir, "typo-dir")},
		{"audit", "tail", "--data", empty},
		{"claim", "verify", "--data", empty, "--session", "s", "--tool", "a.b", "--receipt", file},
	} {
		if code, _, errOut := wardCLI(args...); code != 2 || !strings.Contains(errOut, "--data") {
			t.Errorf("ward %v: exit %d %q", args, code, errOut)
		}
	}
}

// TestClaimVerifyReceiptsFile: the array ward receipts prints is accepted:
// the receipt of the claimed tool and outcome is found in it; a claim no
// receipt in it backs is refused naming what it holds; a forged receipt
// beside a good one does not hide the good one, nor pass for a claim.
func TestClaimVerifyReceiptsFile(t *testing.T) {
	_, session, data := habitsNode(t)
	out := mustCLI(t, "receipts", "--session", session)
	var envs []json.RawMessage
	if err := json.Unmarshal([]byte(out), &envs); err != nil || len(envs) != 2 {
		t.Fatalf("receipts: %v %s", err, out)
	}
	file := filepath.Join(t.TempDir(), "receipts.json")
	os.WriteFile(file, []byte(out), 0o600)
	for _, tool := range []string{"demo.echo", "demo.add"} {
		out := mustCLI(t, "claim", "verify", "--data", data, "--session", session, "--tool", tool, "--receipt", file)
		if !strings.Contains(out, "claim holds: "+tool) {
			t.Errorf("claim of %s from the array: %s", tool, out)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tool", "demo.write_note"}, 1, "none of the 2 receipts"},
		{[]string{"--tool", "demo.echo", "--outcome", "error"}, 1, "1× demo.echo success in session " + session},
	} {
		args := append([]string{"claim", "verify", "--data", data, "--session", session, "--receipt", file}, tc.args...)
		if code, _, errOut := wardCLI(args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("ward %v: exit %d %q", tc.args, code, errOut)
		}
	}
	// A forged receipt (the echo one, claiming another tool) beside the
	// genuine ones.
	var env struct {
		PayloadType string            `json:"payloadType"`
		Payload     string            `json:"payload"`
		Signatures  []json.RawMessage `json:"signatures"`
	}
	json.Unmarshal(envs[0], &env)
	forged := env
	forged.Payload = strings.Replace(forged.Payload, "A", "B", 1)
	fb, _ := json.Marshal(forged)
	mixed, _ := json.Marshal([]json.RawMessage{fb, envs[0], envs[1]})
	os.WriteFile(file, mixed, 0o600)
	out = mustCLI(t, "claim", "verify", "--data", data, "--session", session, "--tool", "demo.echo", "--receipt", file)
	if !strings.Contains(out, "claim holds") || !strings.Contains(out, "1 of the 3 receipts") {
		t.Errorf("claim with a forged receipt beside: %s", out)
	}
	// One envelope still works; an empty array or not JSON is bad input.
	os.WriteFile(file, envs[1], 0o600)
	mustCLI(t, "claim", "verify", "--data", data, "--session", session, "--tool", "demo.add", "--receipt", file)
	for _, body := range []string{"[]", "[{]", `[{"payload":"a","payload":"b"}]`} {
		os.WriteFile(file, []byte(body), 0o600)
		if code, _, errOut := wardCLI("claim", "verify", "--data", data, "--session", session, "--tool", "demo.add", "--receipt", file); code != 2 {
			t.Errorf("receipt file %s: exit %d %q", body, code, errOut)
		}
	}
	// ward receipts -o text is a table of what they say.
	if out := mustCLI(t, "receipts", "--session", session, "-o", "text"); !strings.Contains(out, "demo.echo") || !strings.Contains(out, "success") {
		t.Errorf("receipts -o text: %s", out)
	}
}

// TestChangesShowDiff: ward changes show prints a unified diff of the text
// files a run changed, the sizes of binary ones; after a discard, show and
// apply say it was discarded and when.
func TestChangesShowDiff(t *testing.T) {
	_, session, _ := habitsNode(t)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("alpha\nbeta\ngamma\ndelta\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "logo.bin"), []byte{0, 1, 2, 3}, 0o644)
	fakeRun(t, session, ws, map[string][]byte{
		"notes.txt":   []byte("alpha\nBETA\ngamma\ndelta\nepsilon\n"),
		"logo.bin":    {0, 1, 2, 3, 4, 5},
		"new/hi.txt":  []byte("hello\n"),
		"nonl.txt":    []byte("no newline"),
		"big/img.raw": bytes.Repeat([]byte{0xff}, 10),
	})
	out := mustCLI(t, "changes", "show", session)
	for _, want := range []string{
		"M notes.txt\n",
		"--- a/notes.txt\n+++ b/notes.txt\n@@ -1,4 +1,5 @@\n alpha\n-beta\n+BETA\n gamma\n delta\n+epsilon\n",
		"--- /dev/null\n+++ b/new/hi.txt\n@@ -0,0 +1 @@\n+hello\n",
		"+no newline\n\\ No newline at end of file\n",
		"file logo.bin (binary): 4 bytes -> 6 bytes\n",
		"file big/img.raw (binary): absent -> 10 bytes\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("changes show lacks %q:\n%s", want, out)
		}
	}
	var js struct {
		State   string
		Changes []struct {
			Path, Kind, Diff string
			Binary           bool
		}
	}
	json.Unmarshal([]byte(mustCLI(t, "changes", "show", session, "-o", "json")), &js)
	if js.State != "kept, not applied" || len(js.Changes) != 7 {
		t.Fatalf("changes show -o json: %+v", js)
	}
	mustCLI(t, "changes", "discard", session)
	for _, sub := range []string{"apply", "discard"} {
		code, _, errOut := wardCLI("changes", sub, session)
		if code != 1 || !regexp.MustCompile(`were discarded at \d{4}-\d\d-\d\dT`).MatchString(errOut) || strings.Contains(errOut, "no such file") {
			t.Errorf("changes %s after discard: exit %d %q", sub, code, errOut)
		}
	}
	if out := mustCLI(t, "changes", "show", session); !strings.Contains(out, "were discarded at ") {
		t.Errorf("changes show after discard: %s", out)
	}
	if code, _, errOut := wardCLI("changes", "show", "no-such-run"); code != 2 || !strings.Contains(errOut, "no run of session no-such-run") {
		t.Errorf("changes show of no run: exit %d %q", code, errOut)
	}
}

// TestExpiredSession: an expired session is said to have expired, and
// when, by the node (after the sweep too) and by the CLI; ward mcp serve
// and ward token exchange refuse it, and refuse an ended one saying so.
func TestExpiredSession(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	mustCLI(t, "sponsor", "create", "carol", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "clerk", "--sponsor", "carol", "--allow", "tool:demo.*")
	start := func(ttl string) (string, *sessioncred.Credentials) {
		var s struct{ Session, Credentials string }
		json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "clerk", "--objective", "x", "--ttl", ttl, "-o", "json")), &s)
		creds, err := sessioncred.Load(s.Credentials)
		if err != nil {
			t.Fatal(err)
		}
		return s.Session, creds
	}
	short, creds := start("1s")
	ended, _ := start("10m")
	mustCLI(t, "session", "end", ended, "--reason", "done for today")
	for time.Now().Before(creds.Expires.Add(100 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond) // until it has expired: not a timed assertion
	}
	expiredAt := creds.Expires.UTC().Format(time.RFC3339)
	check := func(when string) {
		t.Helper()
		for _, args := range [][]string{
			{"mcp", "serve", "--session", short},
			{"mcp", "wrap", "--server", "fs", "--session", short, "--", "true"},
			{"token", "exchange", "--session", short},
		} {
			if code, _, errOut := wardCLI(args...); code != 1 || !strings.Contains(errOut, "expired at "+expiredAt) {
				t.Errorf("%s: ward %v: exit %d %q", when, args, code, errOut)
			}
		}
		if out := mustCLI(t, "session", "show", short); !strings.Contains(out, "expired at "+expiredAt) {
			t.Errorf("%s: session show: %s", when, out)
		}
		// The node says so to the session itself.
		c, _, _ := sessionClient(short)
		err := c.do("GET", "/v1/session", nil, nil)
		if err == nil || !strings.Contains(err.Error(), "session "+short+" expired at "+expiredAt) {
			t.Errorf("%s: the node's answer to the expired session: %v", when, err)
		}
	}
	check("before the sweep")
	if _, err := n.Auth.ExpireSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after the sweep")
	if out := mustCLI(t, "session", "end", short); !strings.Contains(out, "nothing to end: session "+short+" expired at "+expiredAt) {
		t.Errorf("session end after the sweep: %s", out)
	}
	// Before the node's sweep, ending a session this machine's clock
	// says expired still ends it: the node's clock decides.
	other, ocreds := start("1s")
	for time.Now().Before(ocreds.Expires.Add(100 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond)
	}
	if out := mustCLI(t, "session", "end", other); !strings.Contains(out, "ended: "+other) || !strings.Contains(out, "it had expired at") {
		t.Errorf("session end of an expired, unswept session: %s", out)
	}
	// An ended session: refused, saying it ended, when and why.
	for _, args := range [][]string{
		{"mcp", "serve", "--session", ended, "--listen", "127.0.0.1:0"},
		{"mcp", "wrap", "--server", "fs", "--session", ended, "--", "true"},
	} {
		code, _, errOut := wardCLI(args...)
		if code != 1 || !strings.Contains(errOut, "session "+ended+" has ended at ") || !strings.Contains(errOut, "(done for today)") {
			t.Errorf("ward %v on an ended session: exit %d %q", args, code, errOut)
		}
	}
}

// TestTyposKeepTrust: calling names that do not exist (typos of tools,
// prompts and servers) is refused without costing the agent trust; a
// denial of a real tool outside the grant does cost it (the monitor is
// on).
func TestTyposKeepTrust(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	mustCLI(t, "sponsor", "create", "carol", "--allow", "tool:demo.*", "--allow", "prompt:demo.*")
	mustCLI(t, "agent", "register", "clerk", "--sponsor", "carol", "--allow", "tool:demo.*", "--allow", "prompt:demo.*")
	var s struct{ Session, Credentials string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "clerk", "--objective", "x", "--allow", "tool:demo.echo", "--allow", "prompt:demo.*", "-o", "json")), &s)
	creds, _ := sessioncred.Load(s.Credentials)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: n.URL() + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	trust := func() int {
		var a struct{ Trust int }
		json.Unmarshal([]byte(mustCLI(t, "agent", "show", "clerk", "-o", "json")), &a)
		return a.Trust
	}
	before := trust()
	for _, name := range []string{"demo.ech0", "dem0.echo", "demo.Echo", "demo.echo ", "demo.", ".echo", "demo.echo.x"} {
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Errorf("call of %q: %v", name, err)
		}
	}
	if _, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "demo.no_such_prompt"}); err == nil {
		t.Error("unknown prompt served")
	}
	if got := trust(); got != before {
		t.Fatalf("typos cost trust: %d -> %d", before, got)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "a", "text": "b"}}); err == nil {
		t.Fatal("a call outside the grant went through")
	}
	if got := trust(); got >= before {
		t.Fatalf("a denial of a real tool did not cost trust: %d -> %d", before, got)
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	return m, s
}

// runOnTerminal runs the binary with standard error on a terminal and
// returns what it printed on standard output and on the terminal.
func runOnTerminal(t *testing.T, bin string, args ...string) (string, string) {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	term := make(chan string)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(master)) // ends with EIO once the child has exited
		term <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ward %v: %v", args, err)
	}
	return stdout.String(), <-term
}

// TestProgressOnTerminal: the long offline operations show a progress line
// on a terminal, erase it, and show none when standard error is not a
// terminal or the output is -o json.
func TestProgressOnTerminal(t *testing.T) {
	_, session, data := habitsNode(t)
	bin := buildWard(t)
	key := filepath.Join(data, "keys", "audit.pub")
	bundle := filepath.Join(t.TempDir(), "b.json")
	rdir := filepath.Join(repoRoot(), "internal", "replay", "testdata", "eval")
	for _, tc := range []struct {
		path  string
		label string
		args  []string
	}{
		{"audit verify", "ward audit verify: ", []string{"audit", "verify", "--data", data, "--key", key}},
		{"audit export", "ward audit export: ", []string{"audit", "export", "--data", data, "--session", session, "--out", bundle}},
		{"audit prove", "ward audit prove: ", []string{"audit", "prove", "--data", data, "1"}},
		{"audit tail", "ward audit tail: ", []string{"audit", "tail", "--data", data}},
		{"replay", "ward replay: ", []string{"replay", rdir, "--policies", filepath.Join(rdir, "policies.cedar"), "--config", filepath.Join(rdir, "ward.yaml")}},
	} {
		out, term := runOnTerminal(t, bin, tc.args...)
		if !strings.Contains(term, tc.label) || !strings.HasSuffix(term, "\r\x1b[K") {
			t.Errorf("ward %v on a terminal: %q", tc.args, term)
		}
		if strings.Contains(out, "\r") || strings.Contains(out, tc.label) {
			t.Errorf("ward %v: progress on standard output: %q", tc.args, out)
		}
		out, term = runOnTerminal(t, bin, append(tc.args, "-o", "json")...)
		if term != "" || validJSON(tc.path, out) != nil {
			t.Errorf("ward %v -o json on a terminal: terminal %q, output %q", tc.args, term, out)
		}
		cmd := exec.Command(bin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() != 0 {
			t.Errorf("ward %v with standard error not a terminal: %v %q", tc.args, err, stderr.String())
		}
	}
}

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's Commands block from the command table")

// readmeCommands is the Commands block of the README: every leaf's usage
// line and what it does.
func readmeCommands() string {
	var b strings.Builder
	for _, l := range leaves() {
		line := strings.TrimSpace("ward " + l.path + " " + l.cmd.args)
		if len(line) < 50 && len(line)+2+len(l.cmd.summary) <= 130 {
			fmt.Fprintf(&b, "%-50s  %s\n", line, l.cmd.summary)
		} else {
			fmt.Fprintf(&b, "%s\n%-50s  %s\n", line, "", l.cmd.summary)
		}
	}
	return b.String()
}

// TestReadmeCommands: the README's Commands section is the command table:
// every command's usage line and what it does (go test -run
// TestReadmeCommands -update-readme rewrites it).
func TestReadmeCommands(t *testing.T) {
	path := filepath.Join(repoRoot(), "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, section, ok := strings.Cut(string(b), "\n## Commands\n\n```\n")
	if !ok {
		t.Fatal("README has no Commands section opening with a code block")
	}
	block, tail, ok := strings.Cut(section, "```\n")
	if !ok {
		t.Fatal("README's Commands block does not end")
	}
	want := readmeCommands()
	if *updateReadme {
		os.WriteFile(path, []byte(head+"\n## Commands\n\n```\n"+want+"```\n"+tail), 0o644)
		return
	}
	if block != want {
		t.Errorf("README's Commands block is not the command table's (go test -run TestReadmeCommands -update-readme rewrites it); want:\n%s", want)
	}
}
