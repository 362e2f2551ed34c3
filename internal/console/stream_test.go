package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

// openStream opens the live stream of a session's events with c and
// returns the response (the caller closes its body), whatever its status.
func openStream(t *testing.T, ctx context.Context, n *node, c *http.Client, session string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/console/api/stream/sessions/"+session, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("open the stream: %v", err)
	}
	return resp
}

// nextEvent reads the next "audit" event of an SSE stream.
func nextEvent(t *testing.T, sc *bufio.Scanner) audit.Event {
	t.Helper()
	var kind, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if kind == "audit" {
				var e audit.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					t.Fatalf("stream data %q: %v", data, err)
				}
				return e
			}
			kind, data = "", ""
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("the stream ended: %v", sc.Err())
	return audit.Event{}
}

// runtimeEvent has the node record a runtime report for session (an
// audit event of that session).
func runtimeEvent(n *node, session, detail string) {
	n.admin("POST", "/v1/sessions/"+session+"/runtime", map[string]any{"events": []map[string]any{{
		"time": time.Now(), "kind": "end", "detail": detail, "data": map[string]any{"exit_code": 0},
	}}}, nil)
}

// TestSessionStream: the console's live stream of a session needs a
// login, carries the console's CSP, sends the session's new audit events
// as they are appended and no other session's, and each user holds at
// most console.MaxStreamsPerUser streams at once.
func TestSessionStream(t *testing.T) {
	n := startNode(t, server.Config{})
	n.setupAgent("watched")
	mine := n.startSession("watched", "first").Info.Session
	other := n.startSession("watched", "second").Info.Session
	pw := n.addUser("vic", console.RoleViewer)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	anon := openStream(t, ctx, n, n.client(), mine)
	anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a stream without a login: %d", anon.StatusCode)
	}

	c := n.client()
	csrf := login(t, n, c, "vic", pw)
	resp := openStream(t, ctx, n, c, mine)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("stream CSP: %q", csp)
	}
	// Another session's event first: the stream must skip it.
	runtimeEvent(n, other, "not this one")
	runtimeEvent(n, mine, "this one")
	sc := bufio.NewScanner(resp.Body)
	e := nextEvent(t, sc)
	var d struct{ Detail string }
	json.Unmarshal(e.Data, &d)
	if e.Session != mine || e.Type != "runtime" || d.Detail != "this one" {
		t.Fatalf("first streamed event: %+v", e)
	}
	runtimeEvent(n, mine, "and the next")
	if e2 := nextEvent(t, sc); e2.Index <= e.Index || e2.Session != mine {
		t.Fatalf("second streamed event: %+v after %d", e2, e.Index)
	}

	// The user holds one stream; it may open MaxStreamsPerUser-1 more.
	for i := 1; i < console.MaxStreamsPerUser; i++ {
		r := openStream(t, ctx, n, c, mine)
		defer r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of %d: %d", i+1, console.MaxStreamsPerUser, r.StatusCode)
		}
	}
	over := openStream(t, ctx, n, c, mine)
	over.Body.Close()
	if over.StatusCode != http.StatusTooManyRequests || over.Header.Get("Retry-After") == "" {
		t.Fatalf("a stream beyond the bound: %d", over.StatusCode)
	}
	// Another user is not bound by vic's streams.
	pw2 := n.addUser("wendy", console.RoleViewer)
	c2 := n.client()
	login(t, n, c2, "wendy", pw2)
	r2 := openStream(t, ctx, n, c2, mine)
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK {
		t.Fatalf("another user's stream: %d", r2.StatusCode)
	}

	// Logging out ends the streams of the login.
	if status, b := n.do(c, "POST", "/console/api/logout", nil, map[string]string{"X-CSRF-Token": csrf}); status != http.StatusOK {
		t.Fatalf("logout: %d %s", status, b)
	}
	for sc.Scan() {
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the stream after logout: %v", err)
	}
}

// TestSessionStreamInBrowser: the session page follows the session live,
// in a real Chromium: a call the agent makes appears without a reload and
// without polling; when the user has no stream left, the page falls back
// to polling and still shows new calls.
func TestSessionStreamInBrowser(t *testing.T) {
	n := startNode(t, server.Config{})
	n.setupAgent("busy")
	creds := n.startSession("busy", "echo things")
	pw := n.addUser("vic", console.RoleViewer)
	ctx := browser(t, n)
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "console-test", Version: "1"}, nil)
	cs, err := client.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()

	run(t, ctx, "log in", chromedp.Navigate(n.url+"/console/"), chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("login-user"), "vic"),
		chromedp.SendKeys(chromedp.ID("login-password"), pw),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("nav")))
	run(t, ctx, "session page, streaming", chromedp.Navigate(n.url+"/console/#session/"+creds.Info.Session),
		chromedp.WaitVisible(chromedp.CSS(`#live[data-live="stream"]`)))
	// A mark that a reload would wipe.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.wardMark = true`)); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hello"}}); err != nil {
		t.Fatalf("call: %v", err)
	}
	waitTrue(t, ctx, "the call appears, streamed", `document.getElementById("calls").textContent.includes("demo.echo")`)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.wardMark === true && document.getElementById("live").dataset.live === "stream"`))
	if err != nil || !got {
		t.Fatalf("the call appeared, but not by the stream without a reload (%v)", err)
	}
	calls, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("calls")))
	if !strings.Contains(calls, "allow") {
		t.Errorf("the streamed call's decision:\n%s", calls)
	}
	shot(t, ctx, artifacts(t), "session-live")

	// Leave the page (its stream closes), then take every stream vic may
	// hold: back on the page, the browser is refused one and polls.
	run(t, ctx, "sessions page", chromedp.Navigate(n.url+"/console/#sessions"), chromedp.WaitVisible(chromedp.CSS("#page table")))
	c := n.client()
	login(t, n, c, "vic", pw)
	held := 0
	for held < console.MaxStreamsPerUser {
		// A 429 here is the browser's stream not yet released.
		r := openStream(t, cctx, n, c, creds.Info.Session)
		if r.StatusCode == http.StatusOK {
			held++
			defer r.Body.Close()
			continue
		}
		r.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	run(t, ctx, "session page, polling", chromedp.Navigate(n.url+"/console/#session/"+creds.Info.Session),
		chromedp.WaitVisible(chromedp.CSS(`#live[data-live="poll"]`)))
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "demo.add", Arguments: map[string]any{"a": 1, "b": 2}}); err != nil {
		t.Fatalf("call: %v", err)
	}
	waitTrue(t, ctx, "the call appears, polled", `document.getElementById("calls").textContent.includes("demo.add")`)
}

// waitTrue waits, at most a minute, until expr is true in the page.
func waitTrue(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](expr)); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
}
