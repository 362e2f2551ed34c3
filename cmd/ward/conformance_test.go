package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/ward-dev/ward/internal/server"
)

// The official MCP conformance suite (@modelcontextprotocol/conformance,
// pinned in testdata/conformance) runs against ward's own reference server
// (testdata/conformance/refserver) twice: directly, to prove the fixture,
// and through ward, to prove ward. Both must pass all of the suite's active
// server checks. The other tests here check what the suite does not: that a
// tool's requests to the client travel on the tool call's own stream, and
// the fixture's subscriptions, logging levels, resumable streams and
// DNS-rebinding guard, directly and, where ward carries them, through ward.

// suiteChecks is how many checks the suite's active server scenarios make
// (30 scenarios, 0.1.13) against a server that answers a POST of one
// request with an SSE stream, as the reference server does.
const suiteChecks = "40"

// conformanceDir holds the official MCP conformance suite
// (testdata/conformance, installed by make test).
func conformanceDir(t *testing.T) string {
	dir := filepath.Join(repoRoot(), "testdata", "conformance")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "conformance")); err != nil {
		if os.Getenv("WARD_REQUIRE_NPM") != "" {
			t.Fatal("the conformance suite is not installed (make test installs it)")
		}
		t.Skip("the conformance suite is not installed; make test installs it")
	}
	return dir
}

// startProcess runs cmd in its own process group, killed at cleanup, and
// returns a reader of its standard output.
func startProcess(t *testing.T, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return bufio.NewReader(out)
}

// waitLine reads r until a line matches re, and returns the match.
func waitLine(t *testing.T, r *bufio.Reader, re *regexp.Regexp, what string) []string {
	t.Helper()
	found := make(chan []string, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if m := re.FindStringSubmatch(line); m != nil {
				found <- m
				io.Copy(io.Discard, r)
				return
			}
			if err != nil {
				found <- nil
				return
			}
		}
	}()
	select {
	case m := <-found:
		if m == nil {
			t.Fatalf("%s: the process ended first", what)
		}
		return m
	case <-time.After(90 * time.Second):
		t.Fatalf("%s: nothing after 90 s", what)
	}
	return nil
}

// startRefServer builds ward's conformance reference server and runs it on
// a free loopback port; it returns the server's MCP endpoint.
func startRefServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "refserver")
	build := exec.Command("go", "build", "-o", bin, "./testdata/conformance/refserver")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the reference server: %v\n%s", err, out)
	}
	out := startProcess(t, exec.Command(bin, "-addr", "127.0.0.1:0"))
	return waitLine(t, out, regexp.MustCompile(`MCP endpoint (http://\S+)`), "reference server")[1]
}

// runSuite runs the suite's active server scenarios once against url and
// fails unless every check passes.
func runSuite(t *testing.T, url, where, want string) {
	t.Helper()
	dir := conformanceDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	suite := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", "conformance"), "server", "--url", url)
	suite.Dir = t.TempDir()
	out, err := suite.CombinedOutput()
	summary := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindSubmatch(out)
	if summary == nil {
		t.Fatalf("conformance suite %s: %v, no summary:\n%s", where, err, out)
	}
	passed, failed := string(summary[1]), string(summary[2])
	if failed != "0" || passed != want {
		var bad []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "✗") {
				bad = append(bad, line)
			}
		}
		t.Fatalf("conformance %s: %s passed, %s failed (want %s and 0):\n%s\n\nfull output:\n%s", where, passed, failed, want, strings.Join(bad, "\n"), out)
	}
}

// wardFront is a ward deployment in front of one upstream MCP server, as a
// user runs it: a node whose policy allows everything, one ward session,
// and the session's sidecar (`ward mcp serve`, the real binary).
type wardFront struct {
	// URL is the sidecar's MCP endpoint with the session's token in its
	// path, as the README offers to clients that cannot set a header.
	URL     string
	Data    string // the node's data directory
	Session string
}

func startWardFront(t *testing.T, upstream string) wardFront {
	t.Helper()
	bin := buildWard(t)
	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "all.cedar"), []byte(`@id("everything") permit (principal, action, resource);`), 0o600)
	data := t.TempDir()
	startNode(t, server.Config{Data: data, Policies: []string{pol}, Upstreams: []server.Upstream{
		{Name: "ref", URL: upstream},
	}})
	mustCLI(t, "sponsor", "create", "qa", "--kind", "platform", "--allow", "tool:*", "--allow", "resource:*", "--allow", "prompt:*")
	mustCLI(t, "agent", "register", "conformance", "--sponsor", "qa", "--allow", "tool:*", "--allow", "resource:*", "--allow", "prompt:*")
	var s struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "conformance", "--objective", "run the MCP conformance suite", "--ttl", "1h", "-o", "json")), &s)
	if s.Session == "" {
		t.Fatal("no session")
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	side := exec.Command(bin, "mcp", "serve", "--session", s.Session, "--listen", "127.0.0.1:"+freePort(t), "--token-file", tokenFile)
	side.Env = os.Environ()
	sideOut := startProcess(t, side)
	endpoint := waitLine(t, sideOut, regexp.MustCompile(`MCP endpoint (http://\S+)`), "ward mcp serve")[1]
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return wardFront{URL: endpoint + "/" + strings.TrimSpace(string(token)), Data: data, Session: s.Session}
}

// TestConformanceDirect runs the suite against the reference server alone:
// a failure here is the fixture's, not ward's.
func TestConformanceDirect(t *testing.T) {
	conformanceDir(t)
	runSuite(t, startRefServer(t), "directly against the reference server", suiteChecks)
}

// TestConformanceThroughWard runs the official MCP conformance suite
// unmodified against the reference server behind ward. Every check must
// pass, as it does directly (TestConformanceDirect).
func TestConformanceThroughWard(t *testing.T) {
	conformanceDir(t)
	front := startWardFront(t, startRefServer(t))
	runSuite(t, front.URL, "through ward", suiteChecks)

	// The checks ran through ward: every call was decided and recorded
	// under the one session. The node is running: an offline reader of
	// its log sees what its next checkpoint covers (within about 200 ms).
	methods := []string{"tools/call", "resources/read", "prompts/get", "resources/subscribe"}
	var decided map[string]int
	for try := 0; ; try++ {
		out := mustCLI(t, "audit", "search", "--data", front.Data, "--session", front.Session, "--type", "decision", "-o", "json")
		decided = map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var e struct {
				Data struct{ Method, Decision string }
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Data.Decision == "allow" {
				decided[e.Data.Method]++
			}
		}
		if !slices.ContainsFunc(methods, func(m string) bool { return decided[m] == 0 }) || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range methods {
		if decided[m] == 0 {
			t.Errorf("no %s was decided by ward (decisions: %v)", m, decided)
		}
	}
}

// testProtocol is the protocol version the raw clients below speak: the
// one the suite's clients negotiate.
const testProtocol = "2025-11-25"

// rawMCP is a bare Streamable HTTP client. Unlike the SDKs' clients it shows
// which HTTP response each message arrives on, and it never opens the
// standalone GET stream unless asked.
type rawMCP struct {
	t       *testing.T
	url     string
	session string
	version string // MCP-Protocol-Version sent after initialize
}

// rawMessage is any JSON-RPC message.
type rawMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (m rawMessage) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// rawConnect initializes a session with the given client capabilities.
func rawConnect(t *testing.T, url, capabilities string) *rawMCP {
	t.Helper()
	c := &rawMCP{t: t, url: url}
	resp := c.send(http.MethodPost, fmt.Sprintf(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":%q,"capabilities":%s,"clientInfo":{"name":"ward-conformance-test","version":"1.0.0"}}}`, testProtocol, capabilities), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: HTTP %d", resp.StatusCode)
	}
	c.session = resp.Header.Get("Mcp-Session-Id")
	answer := newStream(t, resp).until(`"init"`)
	var res struct{ ProtocolVersion string }
	if answer.Error != nil || json.Unmarshal(answer.Result, &res) != nil || res.ProtocolVersion == "" {
		t.Fatalf("initialize answered %s", answer)
	}
	c.version = res.ProtocolVersion
	c.accepted(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return c
}

// send makes one HTTP request of the session; the body is closed at
// cleanup. The timeout only keeps a broken server from hanging the test.
func (c *rawMCP) send(method, body string, header http.Header) *http.Response {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c.t.Cleanup(cancel)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if method == http.MethodGet {
		req.Header.Set("Accept", "text/event-stream")
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if c.version != "" {
		req.Header.Set("Mcp-Protocol-Version", c.version)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, body, err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// call posts a request and returns the stream of its answer.
func (c *rawMCP) call(body string) *sseStream {
	c.t.Helper()
	resp := c.send(http.MethodPost, body, nil)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		c.t.Fatalf("POST %s: HTTP %d: %s", body, resp.StatusCode, b)
	}
	return newStream(c.t, resp)
}

// accepted posts a notification or a response, which the server must take
// with 202 Accepted.
func (c *rawMCP) accepted(body string) {
	c.t.Helper()
	resp := c.send(http.MethodPost, body, nil)
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		c.t.Fatalf("POST %s: HTTP %d, want 202: %s", body, resp.StatusCode, b)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ ID, Name, Data, Retry string }

// sseStream reads the messages of one HTTP response, an SSE stream or a
// single JSON body, in the order the server sent them.
type sseStream struct {
	t    *testing.T
	r    *bufio.Reader
	json bool
	done bool
	// seen is every message read so far.
	seen []rawMessage
}

func newStream(t *testing.T, resp *http.Response) *sseStream {
	ct := resp.Header.Get("Content-Type")
	return &sseStream{t: t, r: bufio.NewReader(io.LimitReader(resp.Body, 16<<20)), json: strings.HasPrefix(ct, "application/json")}
}

// event returns the next event; ok is false at the end of the stream.
func (s *sseStream) event() (ev sseEvent, ok bool) {
	s.t.Helper()
	if s.done {
		return ev, false
	}
	if s.json {
		s.done = true
		b, err := io.ReadAll(s.r)
		if err != nil {
			s.t.Fatalf("read JSON answer: %v", err)
		}
		return sseEvent{Data: string(b)}, true
	}
	started := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.done = true
			if started {
				return ev, true
			}
			return ev, false
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if started {
				return ev, true
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		started = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Name = value
		case "retry":
			ev.Retry = value
		case "data":
			if ev.Data != "" {
				ev.Data += "\n"
			}
			ev.Data += value
		}
	}
}

// next returns the next message, skipping events without data (priming
// events); ok is false at the end of the stream.
func (s *sseStream) next() (rawMessage, bool) {
	s.t.Helper()
	for {
		ev, ok := s.event()
		if !ok {
			return rawMessage{}, false
		}
		if strings.TrimSpace(ev.Data) == "" {
			continue
		}
		var m rawMessage
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			s.t.Fatalf("event %q is not a JSON-RPC message: %v", ev.Data, err)
		}
		s.seen = append(s.seen, m)
		return m, true
	}
}

// until reads messages until the response with the given id (as JSON) and
// returns it.
func (s *sseStream) until(id string) rawMessage {
	s.t.Helper()
	for {
		m, ok := s.next()
		if !ok {
			s.t.Fatalf("the stream ended without the response %s; it carried %v", id, s.seen)
		}
		if string(m.ID) == id && m.Method == "" {
			return m
		}
	}
}

// toolText returns the text of a tools/call response, failing on an error
// or a tool error.
func toolText(t *testing.T, m rawMessage) string {
	t.Helper()
	var res struct {
		IsError bool
		Content []struct{ Type, Text string }
	}
	if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call answered %s", m)
	}
	return res.Content[0].Text
}

// methods lists the methods of the requests and notifications in msgs.
func methods(msgs []rawMessage) []string {
	var out []string
	for _, m := range msgs {
		if m.Method != "" {
			out = append(out, m.Method)
		}
	}
	return out
}

// TestConformanceStreams checks, directly against the reference server and
// through ward, what the Streamable HTTP transport asks of messages a tool
// sends while its call is in flight: its sampling and elicitation requests,
// log messages and progress go on the stream of the call's own POST, before
// its result. The client here never opens the standalone GET stream, so a
// request sent anywhere else is never seen and the call never ends; the
// suite's tools-call-sampling only passes reliably for the same reason.
// Resource updates, which concern no request, reach a subscriber on its
// standalone stream, carrying the version they announce.
func TestConformanceStreams(t *testing.T) {
	ref := startRefServer(t)
	targets := []struct{ name, url string }{
		{"direct", ref},
		{"through ward", startWardFront(t, ref).URL},
	}
	for _, target := range targets {
		t.Run(target.name+"/sampling", func(t *testing.T) {
			c := rawConnect(t, target.url, `{"sampling":{},"elicitation":{}}`)
			s := c.call(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"Which stream is this on?"}}}`)
			req, ok := s.next()
			if !ok || req.Method != "sampling/createMessage" || len(req.ID) == 0 {
				t.Fatalf("the call's stream carried %v first; want the sampling/createMessage request", s.seen)
			}
			var p struct {
				Messages []struct {
					Role    string
					Content struct{ Type, Text string }
				}
				MaxTokens int
			}
			if json.Unmarshal(req.Params, &p) != nil || len(p.Messages) != 1 || p.Messages[0].Content.Text != "Which stream is this on?" || p.MaxTokens != 100 {
				t.Fatalf("sampling request %s", req.Params)
			}
			c.accepted(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","content":{"type":"text","text":"this one"},"model":"test-model","stopReason":"endTurn"}}`, req.ID))
			if got := toolText(t, s.until("7")); got != "LLM response: this one" {
				t.Errorf("result %q, want %q", got, "LLM response: this one")
			}
		})
		t.Run(target.name+"/elicitation", func(t *testing.T) {
			c := rawConnect(t, target.url, `{"sampling":{},"elicitation":{}}`)
			s := c.call(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"Who are you?"}}}`)
			req, ok := s.next()
			if !ok || req.Method != "elicitation/create" || len(req.ID) == 0 {
				t.Fatalf("the call's stream carried %v first; want the elicitation/create request", s.seen)
			}
			var p struct {
				Message         string
				RequestedSchema struct{ Required []string }
			}
			if json.Unmarshal(req.Params, &p) != nil || p.Message != "Who are you?" || strings.Join(p.RequestedSchema.Required, ",") != "username,email" {
				t.Fatalf("elicitation request %s", req.Params)
			}
			c.accepted(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"username":"ward","email":"ward@example.com"}}}`, req.ID))
			want := `User response: action=accept, content={"email":"ward@example.com","username":"ward"}`
			if got := toolText(t, s.until("8")); got != want {
				t.Errorf("result %q, want %q", got, want)
			}
		})
		t.Run(target.name+"/logging and progress", func(t *testing.T) {
			c := rawConnect(t, target.url, `{}`)
			if m := c.call(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`).until("1"); m.Error != nil {
				t.Fatalf("logging/setLevel: %s", m)
			}
			s := c.call(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}}`)
			toolText(t, s.until("2"))
			var logged []string
			for _, m := range s.seen {
				var p struct{ Level, Data string }
				if m.Method == "notifications/message" && json.Unmarshal(m.Params, &p) == nil {
					logged = append(logged, p.Level+": "+p.Data)
				}
			}
			want := "info: Tool execution started|info: Tool processing data|info: Tool execution completed"
			if strings.Join(logged, "|") != want {
				t.Errorf("before its result the call's stream carried log messages %q (all: %v); want %q", logged, methods(s.seen), want)
			}

			s = c.call(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p-3"}}}`)
			toolText(t, s.until("3"))
			var progress []string
			for _, m := range s.seen {
				var p struct {
					ProgressToken   string
					Progress, Total float64
				}
				if m.Method == "notifications/progress" && json.Unmarshal(m.Params, &p) == nil {
					progress = append(progress, fmt.Sprintf("%s %v/%v", p.ProgressToken, p.Progress, p.Total))
				}
			}
			if got, want := strings.Join(progress, "|"), "p-3 0/100|p-3 50/100|p-3 100/100"; got != want {
				t.Errorf("before its result the call's stream carried progress %q (all: %v); want %q", got, methods(s.seen), want)
			}
		})
		t.Run(target.name+"/resource updates", func(t *testing.T) {
			testResourceUpdates(t, target.url)
		})
	}
}

// testResourceUpdates subscribes to the watched resource, changes it, and
// checks which changes are announced on the standalone stream: each one
// while subscribed, none after unsubscribing.
func testResourceUpdates(t *testing.T, url string) {
	c := rawConnect(t, url, `{}`)
	// Once the GET is answered, the server holds the stream: nothing sent
	// after can miss it.
	get := c.send(http.MethodGet, "", nil)
	if get.StatusCode != http.StatusOK || !strings.HasPrefix(get.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET: HTTP %d %s", get.StatusCode, get.Header.Get("Content-Type"))
	}
	standalone := newStream(t, get)

	const uri = "test://watched-resource"
	id := 0
	request := func(method, params string) rawMessage {
		t.Helper()
		id++
		m := c.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)).until(fmt.Sprint(id))
		if m.Error != nil {
			t.Fatalf("%s %s: %s", method, params, m)
		}
		return m
	}
	change := func() int {
		t.Helper()
		text := toolText(t, request("tools/call", `{"name":"update_watched_resource","arguments":{}}`))
		var v int
		if _, err := fmt.Sscanf(text, uri+" is now at version %d.", &v); err != nil {
			t.Fatalf("update_watched_resource said %q", text)
		}
		return v
	}
	// announced reads the standalone stream up to the next update.
	announced := func() int {
		t.Helper()
		for {
			m, ok := standalone.next()
			if !ok {
				t.Fatalf("the standalone stream ended; it carried %v", standalone.seen)
			}
			if m.Method != "notifications/resources/updated" {
				continue
			}
			var p struct {
				URI  string
				Meta struct {
					Version *int `json:"refserver/version"`
				} `json:"_meta"`
			}
			if json.Unmarshal(m.Params, &p) != nil || p.URI != uri || p.Meta.Version == nil {
				t.Fatalf("resources/updated %s", m.Params)
			}
			return *p.Meta.Version
		}
	}

	request("resources/subscribe", `{"uri":"`+uri+`"}`)
	v1 := change()
	if got := announced(); got != v1 {
		t.Fatalf("announced version %d, want %d", got, v1)
	}
	var read struct{ Contents []struct{ Text string } }
	json.Unmarshal(request("resources/read", `{"uri":"`+uri+`"}`).Result, &read)
	if want := fmt.Sprintf("Watched resource content, version %d.", v1); len(read.Contents) != 1 || read.Contents[0].Text != want {
		t.Fatalf("read %s after the change: %+v, want %q", uri, read, want)
	}
	request("resources/unsubscribe", `{"uri":"`+uri+`"}`)
	v2 := change()
	request("resources/subscribe", `{"uri":"`+uri+`"}`)
	v3 := change()
	// The stream is ordered: had the change made while unsubscribed been
	// announced, it would come first.
	if got := announced(); got != v3 {
		t.Fatalf("after unsubscribing, version %d was announced first (want only %d, not %d)", got, v3, v2)
	}
	id++
	if m := c.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"resources/subscribe","params":{"uri":"test://no-such-resource"}}`, id)).until(fmt.Sprint(id)); m.Error == nil {
		t.Errorf("subscribing to a resource the server does not have answered %s", m)
	}
}

// TestConformanceRefServer checks the reference server on what the suite
// checks only in part or not at all, so that the fixture the suite proves
// ward against is itself a faithful MCP server.
func TestConformanceRefServer(t *testing.T) {
	ref := startRefServer(t)
	port := ref[strings.LastIndex(ref, ":")+1 : strings.LastIndex(ref, "/")]

	t.Run("DNS rebinding", func(t *testing.T) {
		initialize := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"rebinding","version":"1"}}}`, testProtocol)
		for _, tc := range []struct {
			host    string
			origins []string
			want    int
		}{
			{"127.0.0.1:" + port, nil, http.StatusOK},
			{"localhost:" + port, []string{"http://localhost:" + port}, http.StatusOK},
			{"LOCALHOST:" + port, []string{"http://127.0.0.1:3000"}, http.StatusOK},
			{"[::1]:" + port, []string{"https://[::1]"}, http.StatusOK},
			{"127.0.0.1", nil, http.StatusOK},
			{"127.0.0.2:" + port, nil, http.StatusOK},

			{"evil.example.com", []string{"http://evil.example.com"}, http.StatusForbidden},
			{"evil.example.com:" + port, nil, http.StatusForbidden},
			{"evil.example.com", []string{"http://localhost:" + port}, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"http://evil.example.com"}, http.StatusForbidden},
			{"localhost.evil.example.com:" + port, nil, http.StatusForbidden},
			{"127.0.0.1.nip.io:" + port, nil, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"null"}, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"http://127.0.0.1@evil.example.com"}, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"file:///etc/passwd"}, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"http://localhost:99999"}, http.StatusForbidden},
			{"127.0.0.1:" + port, []string{"http://localhost", "http://evil.example.com"}, http.StatusForbidden},
			{"127.0.0.1:", nil, http.StatusForbidden},
		} {
			req, _ := http.NewRequest(http.MethodPost, ref, strings.NewReader(initialize))
			req.Host = tc.host
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header["Origin"] = tc.origins
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q Origin %q: HTTP %d, want %d: %s", tc.host, tc.origins, resp.StatusCode, tc.want, body)
				continue
			}
			if tc.want == http.StatusForbidden {
				var m rawMessage
				if json.Unmarshal(body, &m) != nil || m.Error == nil || !strings.Contains(m.Error.Message, "forbidden") {
					t.Errorf("Host %q Origin %q: refused with %q, want a JSON-RPC error", tc.host, tc.origins, body)
				}
			}
		}
	})

	t.Run("logging level", func(t *testing.T) {
		c := rawConnect(t, ref, `{}`)
		logs := func(id int) []string {
			t.Helper()
			s := c.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_tool_with_logging"}}`, id))
			toolText(t, s.until(fmt.Sprint(id)))
			var out []string
			for _, m := range s.seen {
				if m.Method == "notifications/message" {
					out = append(out, string(m.Params))
				}
			}
			return out
		}
		if got := logs(1); len(got) != 0 {
			t.Errorf("before any logging/setLevel the tool logged %q", got)
		}
		if m := c.call(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}}`).until("2"); m.Error != nil || string(m.Result) != "{}" {
			t.Fatalf("logging/setLevel answered %s, want {}", m)
		}
		if got := logs(3); len(got) != 0 {
			t.Errorf("at level warning the tool's info messages were sent: %q", got)
		}
		c.call(`{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":"debug"}}`).until("4")
		if got := logs(5); len(got) != 3 {
			t.Errorf("at level debug the tool logged %q, want its 3 info messages", got)
		}
	})

	t.Run("resumable stream", func(t *testing.T) {
		c := rawConnect(t, ref, `{}`)
		s := c.call(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_reconnection"}}`)
		var last sseEvent
		for {
			ev, ok := s.event()
			if !ok {
				break
			}
			if strings.TrimSpace(ev.Data) != "" {
				t.Fatalf("the stream carried %q before the server closed it; want only a priming event", ev.Data)
			}
			if ev.ID != "" {
				last = ev
			}
		}
		if last.ID == "" {
			t.Fatal("the closed stream had no event id to resume from")
		}
		get := c.send(http.MethodGet, "", http.Header{"Last-Event-Id": {last.ID}})
		if get.StatusCode != http.StatusOK {
			t.Fatalf("resume with Last-Event-ID %s: HTTP %d", last.ID, get.StatusCode)
		}
		if got := toolText(t, newStream(t, get).until("1")); got != "Reconnection test completed successfully" {
			t.Errorf("resumed stream: %q", got)
		}

		// A client of 2025-03-26 gets no event ids and so could not
		// resume: its stream is not closed, and the result comes on it.
		c.version = "2025-03-26"
		if got := toolText(t, c.call(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_reconnection"}}`).until("2")); got != "Reconnection test completed successfully" {
			t.Errorf("2025-03-26: %q", got)
		}
	})

	t.Run("client capabilities", func(t *testing.T) {
		c := rawConnect(t, ref, `{}`)
		for id, call := range []string{
			`{"name":"test_sampling","arguments":{"prompt":"hello"}}`,
			`{"name":"test_elicitation","arguments":{"message":"hello"}}`,
			`{"name":"test_elicitation_sep1034_defaults"}`,
		} {
			s := c.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, call))
			m := s.until(fmt.Sprint(id))
			var res struct {
				IsError bool
				Content []struct{ Text string }
			}
			json.Unmarshal(m.Result, &res)
			if !res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].Text, "does not support") || len(methods(s.seen)) != 0 {
				t.Errorf("%s from a client without the capability: %s, after %v; want a tool error and no request", call, m, methods(s.seen))
			}
		}
	})

	t.Run("arguments", func(t *testing.T) {
		c := rawConnect(t, ref, `{"sampling":{}}`)
		for id, call := range []string{
			`{"name":"test_simple_text","arguments":{"unexpected":1}}`,
			`{"name":"test_sampling","arguments":{}}`,
			`{"name":"test_sampling","arguments":{"prompt":1}}`,
			`{"name":"test_sampling","arguments":{"prompt":"a","prompt":"b"}}`,
			`{"name":"json_schema_2020_12_tool","arguments":{"name":"x","extra":true}}`,
		} {
			s := c.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, call))
			m := s.until(fmt.Sprint(id))
			var res struct{ IsError bool }
			json.Unmarshal(m.Result, &res)
			if m.Error == nil && !res.IsError || len(methods(s.seen)) != 0 {
				t.Errorf("%s: %s after %v; want it refused, and no request to the client", call, m, methods(s.seen))
			}
		}
		if m := c.call(`{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":"test_prompt_with_arguments","arguments":{"arg1":"a"}}}`).until("9"); m.Error == nil {
			t.Errorf("a prompt without its required argument answered %s", m)
		}
		m := c.call(`{"jsonrpc":"2.0","id":10,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},"argument":{"name":"arg1","value":"par"}}}`).until("10")
		var comp struct{ Completion struct{ Values []string } }
		if json.Unmarshal(m.Result, &comp) != nil || strings.Join(comp.Completion.Values, ",") != "paris,park,party" {
			t.Errorf("completion of arg1 from %q: %s", "par", m)
		}
	})

	t.Run("loopback only", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "refserver")
		build := exec.Command("go", "build", "-o", bin, "./testdata/conformance/refserver")
		build.Dir = repoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		out, err := exec.Command(bin, "-addr", "0.0.0.0:0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "not a loopback address") {
			t.Errorf("-addr 0.0.0.0:0: %v %s; want a refusal", err, out)
		}
	})
}
