package replay

import (
	"bytes"
	"cmp"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/policy"
)

// FuzzRun: Run never panics; when it succeeds, the summary counts the
// calls, every non-blank line is a session, call, http or exec record, and
// each call's outcome, reason and policies are what Set.Decide says on the
// request rebuilt independently from the trace lines.
func FuzzRun(f *testing.F) {
	example, err := os.ReadFile("testdata/example.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(lines(analyst, `{"type":"call","method":"tools/call","name":"db.delete_rows","impact":{"rows":11}}`, intern,
		`{"type":"call","method":"prompts/get","name":"tmpl.x","arguments":[1]}`)))
	f.Add([]byte(`{"type":"session","session":"s","agent":"a","agent":"b"}`))
	f.Add([]byte("{\"type\":\"call\"}\r\n\n"))
	egress, err := os.ReadFile("testdata/egress.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(egress)
	f.Add([]byte(lines(analyst, `{"type":"http","method":"GET","host":"a.b","port":80,"scheme":"http","path":"/%2e%2e"}`,
		`{"type":"exec","command":"x","args":[],"cwd":null,"taint":["A"]}`,
		`{"type":"http","method":"CONNECT","host":"a.b"}`, `{"type":"http","method":"CONNECT","host":"a.b","scheme":"http"}`)))
	set := testSet(f)
	f.Fuzz(func(t *testing.T, trace []byte) {
		rep, err := Run(set, bytes.NewReader(trace), Options{MaxLines: 200, MaxLineBytes: 4096})
		if err != nil {
			if rep != nil {
				t.Fatalf("report with error %v", err)
			}
			return
		}
		s := rep.Summary
		if s.Calls != len(rep.Calls) || s.Allowed+s.Denied+s.Escalated != s.Calls {
			t.Fatalf("summary %+v for %d calls", s, len(rep.Calls))
		}
		byPolicy := map[string]int{}
		for _, c := range rep.Calls {
			for _, id := range c.Policies {
				byPolicy[id]++
			}
		}
		if len(byPolicy) != len(s.ByPolicy) {
			t.Fatalf("by policy %v, calls say %v", s.ByPolicy, byPolicy)
		}
		for id, n := range byPolicy {
			if s.ByPolicy[id] != n {
				t.Fatalf("by policy %v, calls say %v", s.ByPolicy, byPolicy)
			}
		}

		// Rebuild every request from the raw lines with encoding/json.
		type rec struct {
			Type, Session, Agent, Sponsor string
			Groups                        []string
			Depth                         int
			Trust                         *int
			Method, Server, Name, Verb    string
			Arguments                     json.RawMessage
			Impact                        map[string]int64
			Dataset, Path                 string
			Taint                         []string
			Scheme, Host                  string
			Port                          int
			Command, Cwd                  string
			Args                          []string
		}
		raw := bytes.Split(trace, []byte("\n"))
		var sess *rec
		sessions, next := 0, 0
		for i, l := range raw {
			l = bytes.Trim(bytes.TrimSuffix(l, []byte("\r")), " \t")
			if len(l) == 0 {
				continue
			}
			var r rec
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatalf("line %d accepted by Run, refused by encoding/json: %v", i+1, err)
			}
			switch r.Type {
			case "session":
				sess = &r
				sessions++
				continue
			case "call", "http", "exec":
			default:
				t.Fatalf("line %d: record type %q accepted", i+1, r.Type)
			}
			if sess == nil || next >= len(rep.Calls) {
				t.Fatalf("line %d: call not reported", i+1)
			}
			c := rep.Calls[next]
			next++
			trust := DefaultTrust
			if sess.Trust != nil {
				trust = *sess.Trust
			}
			req := policy.Request{Session: sess.Session, Agent: sess.Agent, Sponsor: sess.Sponsor, Groups: sess.Groups,
				Depth: sess.Depth, Trust: trust, Taint: r.Taint}
			method, name, server := r.Method, r.Name, r.Server
			switch r.Type {
			case "http":
				h := &policy.HTTPRequest{Method: r.Method, Scheme: cmp.Or(r.Scheme, "https"), Host: r.Host, Port: r.Port, Path: cmp.Or(r.Path, "/")}
				if r.Method == "CONNECT" {
					h.Scheme, h.Path = r.Scheme, r.Path
				}
				if h.Port == 0 {
					h.Port = map[bool]int{true: 80, false: 443}[r.Scheme == "http"]
				}
				req.Action, req.HTTP = policy.ActionHTTPRequest, h
				method, name = "http", r.Host
			case "exec":
				req.Action, req.Exec = policy.ActionExec, &policy.ExecRequest{Command: r.Command, Args: r.Args, Dir: r.Cwd}
				method, name = "exec", r.Command
			default:
				if server == "" {
					server, _, _ = strings.Cut(r.Name, ".")
				}
				req.Action = map[string]policy.Action{"tools/call": policy.ActionCallTool, "prompts/get": policy.ActionGetPrompt,
					"resources/read": policy.ActionReadResource, "resources/subscribe": policy.ActionReadResource}[r.Method]
				req.Server, req.Name, req.Arguments, req.Verb, req.Impact = server, r.Name, r.Arguments, r.Verb, r.Impact
				req.Dataset, req.Path = r.Dataset, r.Path
			}
			if c.Line != i+1 || c.Session != sess.Session || c.Name != name || c.Method != method || c.Server != req.Server {
				t.Fatalf("line %d: reported %+v", i+1, c)
			}
			d := set.Decide(req)
			var ids []string
			for _, pr := range d.Reasons {
				ids = append(ids, pr.PolicyID)
			}
			if c.Outcome != d.Outcome() || c.Reason != d.Explain(req) || !slices.Equal(c.Policies, ids) {
				t.Fatalf("line %d: replay says %s %q %v, Decide says %s %q %v", i+1, c.Outcome, c.Reason, c.Policies, d.Outcome(), d.Explain(req), ids)
			}
		}
		if next != len(rep.Calls) || sessions != s.Sessions {
			t.Fatalf("%d calls and %d sessions in the trace, report has %d and %d", next, sessions, len(rep.Calls), s.Sessions)
		}
	})
}
