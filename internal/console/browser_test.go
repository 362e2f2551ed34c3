package console_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// chromium returns the path of a Chromium to drive, or skips the test when
// there is none and WARD_REQUIRE_CHROMIUM is unset (`make test` sets it
// and installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WARD_REQUIRE_CHROMIUM") != "" {
		t.Fatal("WARD_REQUIRE_CHROMIUM is set but no chromium is installed: apt-get install chromium chromium-driver (make deps does)")
	}
	t.Skip("chromium is not installed: the console's browser tests need it (apt-get install chromium chromium-driver, or make test)")
	return ""
}

// artifacts is where screenshots go: $WARD_CONSOLE_ARTIFACTS, or a
// temporary directory kept for the test's life.
func artifacts(t *testing.T) string {
	if d := os.Getenv("WARD_CONSOLE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser starts a headless Chromium that trusts only the node's own
// certificate and those in also (by their public keys), besides the
// system's roots.
func browser(t *testing.T, n *node, also ...*x509.Certificate) context.Context {
	t.Helper()
	path := chromium(t)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(n.url, "https://"), &tls.Config{RootCAs: n.pool, ServerName: "localhost"})
	if err != nil {
		conn, err = tls.Dial("tcp", strings.TrimPrefix(n.url, "https://"), &tls.Config{RootCAs: n.pool})
	}
	if err != nil {
		t.Fatalf("read the node's certificate: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	var pins []string
	for _, c := range append([]*x509.Certificate{leaf}, also...) {
		spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		pins = append(pins, base64.StdEncoding.EncodeToString(spki[:]))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 860),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// One bound for the whole browser session: a step that never happens
	// fails the test instead of hanging it.
	ctx, cancel3 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel3)
	// Start the browser on this context: the browser lives as long as the
	// context its first action ran on, and steps run on shorter ones.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shot saves a screenshot of the page as NAME.png in dir.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// run runs steps, each run bounded (a step that never happens fails the
// test, with a screenshot of the page and its text, instead of hanging).
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			p := filepath.Join(os.Getenv("WARD_CONSOLE_ARTIFACTS"), "failed.png")
			if os.Getenv("WARD_CONSOLE_ARTIFACTS") == "" {
				p = filepath.Join(t.TempDir(), "failed.png")
			}
			os.WriteFile(p, b, 0o644)
			t.Logf("screenshot of the failure: %s", p)
		}
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
}

// TestConsoleInBrowser drives the console in a real headless Chromium: an
// approver logs in, sees the held call with its arguments and quorum,
// approves it with a comment, and the agent's call completes; an admin
// quarantines the agent and its next call is denied; an audit event's
// inclusion proof is verified by the page's own JavaScript, and a proof
// altered by one byte is refused. Each page is saved as a screenshot.
func TestConsoleInBrowser(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-a-dba") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, HoldTimeout: 2 * time.Minute,
		ApproverGroups: map[string][]string{"dba": {"olga"}},
		Limits:         []quota.Limit{{ID: "demo-calls", Scope: quota.ScopeAgent, Match: quota.Matcher{Tools: []string{"demo.*"}}, Window: time.Hour, Max: 50}}})
	n.setupAgent("janitor")
	pw := n.addUser("olga", console.RoleAdmin)
	shots := artifacts(t)
	ctx := browser(t, n)

	// The agent's call is held for approval.
	creds := n.startSession("janitor", "clean up stale notes")
	client := mcp.NewClient(&mcp.Implementation{Name: "console-test", Version: "1"}, nil)
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs, err := client.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "welcome", "text": "stale"}}); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	type result struct {
		text string
		err  error
	}
	held := make(chan result, 1)
	go func() {
		r, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}})
		if err != nil {
			held <- result{err: err}
			return
		}
		var sb strings.Builder
		for _, c := range r.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				sb.WriteString(tc.Text)
			}
		}
		held <- result{text: sb.String()}
	}()

	// Log in.
	run(t, ctx, "open the console", chromedp.Navigate(n.url+"/console/"), chromedp.WaitVisible(chromedp.ID("login-form")))
	shot(t, ctx, shots, "login")
	run(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("login-user"), "olga"),
		chromedp.SendKeys(chromedp.ID("login-password"), pw),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("nav")))

	// The held call appears with its context; approve it.
	run(t, ctx, "see the held call", chromedp.WaitVisible(chromedp.CSS(`[data-approval] [data-action="approve"]`)))
	card, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("[data-approval]")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"demo.delete_note", "janitor", "clean up stale notes", "deletes-need-a-dba", `"welcome"`, "0 of 1 from group dba"} {
		if !strings.Contains(card, want) {
			t.Errorf("approval card lacks %q:\n%s", want, card)
		}
	}
	run(t, ctx, "the escalating decision, checked in the page", chromedp.WaitVisible(chromedp.CSS("[data-approval] [data-decision-check].ok")))
	check, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("[data-decision-check]")))
	if !strings.Contains(check, "escalate") {
		t.Errorf("decision check on the approval card: %q", check)
	}
	shot(t, ctx, shots, "approvals")
	run(t, ctx, "approve",
		chromedp.SendKeys(chromedp.CSS("[data-approval] textarea"), "stale note, fine to delete"),
		chromedp.Click(chromedp.CSS(`[data-approval] [data-action="approve"]`)),
		chromedp.WaitVisible(chromedp.ID("no-pending")))
	r := <-held
	if r.err != nil || !strings.Contains(r.text, "deleted welcome") {
		t.Fatalf("the held call after approval in the console: %q, %v", r.text, r.err)
	}
	var decided []approval.Request
	n.admin("GET", "/v1/approvals", nil, &decided)
	if len(decided) != 1 || len(decided[0].Votes) != 1 || decided[0].Votes[0].Voter != "olga" || decided[0].Votes[0].Reason != "stale note, fine to delete" {
		t.Fatalf("the vote cast in the console: %+v", decided)
	}

	// What a `ward run` runtime reports of the session (here posted as
	// the runtime does) is on the session page with the changed paths
	// and their diff, whose lines come from the agent's workspace: markup
	// in them is shown as text and never runs.
	const hostile = `+<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">`
	diff := map[string]any{"files": []map[string]any{
		{"path": "notes/welcome.txt", "kind": "modified", "old_size": 6, "size": 80,
			"diff": "--- a/notes/welcome.txt\n+++ b/notes/welcome.txt\n@@ -1 +1,2 @@\n-hello\n+HELLO\n" + hostile + "\n"},
		{"path": "logo.png", "kind": "added", "omitted": "binary", "old_size": -1, "size": 4},
	}}
	n.admin("POST", "/v1/sessions/"+creds.Session+"/runtime", map[string]any{"events": []map[string]any{{
		"time": time.Now(), "kind": "end", "detail": "exited 0",
		"data": map[string]any{"exit_code": 0, "applied": false, "rolled_back": false, "changes": []string{"logo.png", "notes/welcome.txt"}, "diff": diff},
	}, {
		"time": time.Now(), "kind": "changes.note", "detail": "a diff the node could not keep",
		"data": map[string]any{"diff": "(not recorded: too large)"},
	}}}, nil)

	// The session page shows the calls and their decisions.
	run(t, ctx, "session page", chromedp.Navigate(n.url+"/console/#session/"+creds.Session),
		chromedp.WaitVisible(chromedp.CSS("#calls table")))
	calls, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("calls")))
	if !strings.Contains(calls, "demo.delete_note") || !strings.Contains(calls, "escalate") || !strings.Contains(calls, "allow") {
		t.Errorf("session calls:\n%s", calls)
	}
	run(t, ctx, "runtime on the session page", chromedp.WaitVisible(chromedp.CSS("#runtime table")))
	rt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("runtime")))
	if !strings.Contains(rt, "notes/welcome.txt") || !strings.Contains(rt, "exited 0") {
		t.Errorf("runtime on the session page:\n%s", rt)
	}
	run(t, ctx, "the diff on the session page", chromedp.WaitVisible(chromedp.CSS("#diff pre.diff")))
	for sel, want := range map[string]string{
		"#diff pre.diff .del":        "-hello",
		"#diff pre.diff .hunk":       "@@ -1 +1,2 @@",
		"#diff pre.diff .add":        "+HELLO",
		"#diff pre.diff .add ~ .add": hostile,
		"#diff pre.diff .meta":       "--- a/notes/welcome.txt",
		"#diff [data-omitted]":       "not shown: binary",
	} {
		// The session page refreshes itself: a node read as it is
		// replaced is gone ("No node with given id"); read it again.
		var got string
		var err error
		for try := 0; try < 50; try++ {
			if got, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))); err == nil && strings.Contains(got, want) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%s: %q (%v), want %q", sel, got, err, want)
		}
	}
	if note, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#diff p[data-diff]"))); err != nil || !strings.Contains(note, "the diff was (not recorded: too large)") {
		t.Errorf("a diff not recorded: %q, %v", note, err)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.querySelectorAll("#diff script, #diff img, #diff [onerror]").length + " " + String(window.pwned)`))
	if err != nil || injected != "0 undefined" {
		t.Errorf("markup in the diff became elements or ran: %q, %v", injected, err)
	}
	taintText, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("taint")))
	if !strings.Contains(taintText, "untrusted") {
		t.Errorf("taint labels on the session page:\n%s", taintText)
	}
	shot(t, ctx, shots, "session")
	run(t, ctx, "sessions page", chromedp.Navigate(n.url+"/console/#sessions"), chromedp.WaitVisible(chromedp.CSS("#page table")))
	shot(t, ctx, shots, "sessions")

	// Quarantine the agent: its next call is denied.
	run(t, ctx, "agent page", chromedp.Navigate(n.url+"/console/#agents/janitor"), chromedp.WaitVisible(chromedp.ID("quarantine")))
	shot(t, ctx, shots, "agents")
	run(t, ctx, "quarantine", chromedp.Click(chromedp.ID("quarantine")), chromedp.WaitVisible(chromedp.ID("release")))
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}); err == nil {
		t.Fatal("the quarantined agent's call went through")
	} else if !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("the quarantined agent's call: %v", err)
	}
	var agent struct{ Status string }
	n.admin("GET", "/v1/agents/janitor", nil, &agent)
	if agent.Status != "quarantined" {
		t.Fatalf("agent after quarantine in the console: %s", agent.Status)
	}
	key, err := sessioncred.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		t.Fatal(err)
	}
	status, body := n.do(n.client(), "POST", "/v1/sessions", map[string]any{"agent": "janitor", "objective": "x", "csr": base64.RawURLEncoding.EncodeToString(csr)},
		map[string]string{"Authorization": "Bearer " + n.AdminCredential})
	if status != http.StatusForbidden || !strings.Contains(string(body), "quarantined") {
		t.Fatalf("a quarantined agent's new session: %d %s", status, body)
	}

	// Verify the approved call's decision event in the browser.
	var evs []struct {
		Index uint64
		Data  struct{ Name, Decision string }
	}
	n.admin("GET", "/v1/audit/events?session="+creds.Session+"&type=decision", nil, &evs)
	var idx uint64
	for _, e := range evs {
		if e.Data.Name == "demo.delete_note" && e.Data.Decision == "allow" {
			idx = e.Index
		}
	}
	if idx == 0 {
		t.Fatalf("no allowed decision for the approved call: %+v", evs)
	}
	run(t, ctx, "audit page", chromedp.Navigate(n.url+"/console/#audit"), chromedp.WaitVisible(chromedp.CSS(`#audit-results button[data-verify]`)),
		chromedp.Click(chromedp.CSS(`#audit-results button[data-verify="`+itoa(idx)+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#proof-result")))
	verified, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("proof-result"), "data-verified"))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("proof-result")))
	if verified.Value != "true" || !strings.Contains(text, "demo.delete_note") {
		t.Fatalf("proof of event %d in the browser: %s", idx, text)
	}
	shot(t, ctx, shots, "audit")
	// The same check refuses a proof with one byte of the entry, of the
	// audit path or of the signature changed.
	for _, tamper := range []string{
		`p.entry_b64 = btoa(atob(p.entry_b64).replace("delete_note", "delete_notf"))`,
		`p.hashes[0] = btoa(String.fromCharCode(...atob(p.hashes[0]).split("").map((c, i) => i ? c.charCodeAt(0) : c.charCodeAt(0) ^ 1)))`,
		`p.checkpoint = p.checkpoint.replace(/\n(\d+)\n/, (m, s) => "\n" + (Number(s) + 1) + "\n")`,
		`p.index = p.index + 1`,
	} {
		js := `(async () => {
			const m = await import("/console/verify.js");
			const r = await fetch("/console/api/proof/` + itoa(idx) + `", {credentials: "same-origin"});
			const p = await r.json();
			await m.verifyProof(p, p.log_key);
			` + tamper + `;
			try { await m.verifyProof(p, p.log_key); return "accepted"; } catch (e) { return "refused: " + e.message; }
		})()`
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil || !strings.HasPrefix(got, "refused") {
			t.Errorf("tampered proof (%s): %q, %v", tamper, got, err)
		}
	}

	// Log keys whose base64 holds "+" or "/" parse (a key is
	// NAME+HASH+BASE64, and only the first two "+" separate).
	for _, want := range []string{"+", "/"} {
		var vkey string
		for {
			_, v, err := audit.NewNoteKey("test.ward/audit")
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(v, "+", 3)
			if strings.Contains(parts[2], want) {
				vkey = v
				break
			}
		}
		js := `import("/console/verify.js").then((m) => m.parseKey(` + string(must(json.Marshal(vkey))) + `)).then((k) => k.name + " " + k.pub.length, (e) => "refused: " + e.message)`
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil || got != "test.ward/audit 32" {
			t.Errorf("parseKey(%s): %q, %v", vkey, got, err)
		}
	}

	// The policies page shows the Cedar in force and decides a dry run.
	run(t, ctx, "policies page", chromedp.Navigate(n.url+"/console/#policies"), chromedp.WaitVisible(chromedp.CSS(".policy")),
		chromedp.SendKeys(chromedp.ID("dry-agent"), "janitor"), chromedp.SendKeys(chromedp.ID("dry-name"), "demo.delete_note"),
		chromedp.SendKeys(chromedp.ID("dry-args"), `{"name": "x"}`),
		chromedp.Click(chromedp.CSS(`#page form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#dry-result .card")))
	dry, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("dry-result")))
	if !strings.Contains(dry, "escalate") {
		t.Errorf("dry run of an escalated call: %s", dry)
	}
	// Replay a recorded trace in shadow mode: fs.read_text_file is not
	// permitted here, so its calls are denied.
	trace, err := os.ReadFile(filepath.Join("..", "replay", "testdata", "example.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "replay", chromedp.SetValue(chromedp.ID("replay-trace"), string(trace)),
		chromedp.Click(chromedp.CSS(`#replay-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#replay-result table")))
	rep, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("replay-result")))
	if !strings.Contains(rep, "fs.read_text_file") || !strings.Contains(rep, "deny") {
		t.Errorf("replay result: %s", rep)
	}
	shot(t, ctx, shots, "policies")
	run(t, ctx, "activity page", chromedp.Navigate(n.url+"/console/#activity"), chromedp.WaitVisible(chromedp.CSS(`#plot-calls svg path[data-series="allow"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#plot-budget svg rect[data-bar]`)))
	budget, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("plot-budget")))
	if !strings.Contains(budget, "demo-calls janitor") || !strings.Contains(budget, "/ 50") {
		t.Errorf("budget plot: %q", budget)
	}
	shot(t, ctx, shots, "activity")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func itoa(i uint64) string { b, _ := json.Marshal(i); return string(b) }

// TestConsoleOIDCInBrowser: the single sign-on works in a real browser,
// whose cookie rules the HTTP client of TestConsoleOIDC does not apply:
// the state's binding cookie (SameSite=Lax) comes back when the user
// follows the provider's page back to the console (a cross-site
// navigation, on which a Strict cookie would not be sent), and the session
// cookie (SameSite=Strict) set then is sent by the page that follows.
func TestConsoleOIDCInBrowser(t *testing.T) {
	chromium(t)
	p := newProvider(t)
	p.consent = true
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: p.secret,
		Roles: map[string]console.Role{"olga@example.org": console.RoleApprover}, Client: p.srv.Client()}})
	ctx := browser(t, n, p.srv.Certificate())
	// The console as localhost, the provider as 127.0.0.1: two sites, so
	// the redirect back is cross-site, as with a real provider.
	if !strings.HasPrefix(n.url, "https://127.0.0.1:") {
		t.Fatalf("node URL %s: want https://127.0.0.1:PORT", n.url)
	}
	console := strings.Replace(n.url, "127.0.0.1", "localhost", 1)
	run(t, ctx, "log in with the provider", chromedp.Navigate(console+"/console/"), chromedp.WaitVisible(chromedp.ID("sso-link")),
		chromedp.Click(chromedp.ID("sso-link")), chromedp.WaitVisible(chromedp.ID("consent")), chromedp.Click(chromedp.ID("consent")))
	// Wait for the page after the redirects to say who is logged in.
	// A poll can be cut by the navigation it waits for: poll again then.
	var who string
	var err error
	for range 20 {
		who, err = chromedp.Run(ctx, chromedp.Poll[string](`location.pathname === "/console/" && document.getElementById("who") && document.getElementById("who").textContent`,
			chromedp.WithPollingTimeout(time.Minute)))
		if err == nil || !(strings.Contains(err.Error(), "context") || strings.Contains(err.Error(), "navigated or closed")) {
			break
		}
	}
	if err != nil || who != "olga@example.org (approver)" {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("logged in as %q, %v; at %s:\n%s", who, err, loc, body)
	}
	shot(t, ctx, artifacts(t), "oidc")
}
