package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// world is the universe random policies and requests are drawn from.
type world struct {
	servers, tools, groups, agents int
	hosts                          int // for egressPolicies
}

func (w world) server(r *rand.Rand) string { return fmt.Sprintf("s%d", r.IntN(w.servers)) }
func (w world) group(r *rand.Rand) string  { return fmt.Sprintf("g%d", r.IntN(w.groups)) }
func (w world) agent(r *rand.Rand) string  { return fmt.Sprintf("a%d", r.IntN(w.agents)) }
func (w world) tool(r *rand.Rand) string {
	return fmt.Sprintf("%s.t%d", w.server(r), r.IntN(w.tools))
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// Hosts, programs and datasets random requests and policies name, a few
// of each so that scopes and conditions match often.
var (
	genHosts    = []string{"api.example.com", "h1.example.com", "evil.test", "10.0.0.7", "::1"}
	genCommands = []string{"/usr/bin/git", "/bin/sh", "/usr/local/bin/tool"}
	genDatasets = []string{"d0", "d1"}
)

// randomPolicies generates n policies mixing every scope form ward indexes
// (and some it cannot match), conditions on arguments, groups, attributes
// that may be missing, and expressions that fail.
func randomPolicies(r *rand.Rand, w world, n int) string {
	var b strings.Builder
	for i := range n {
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, "@id(\"p%d\") ", i)
		}
		if r.IntN(10) == 0 {
			b.WriteString(`@escalate("1 of group:g1") `)
		}
		b.WriteString(pick(r, "permit", "permit", "permit", "forbid"))
		b.WriteString(" (")
		b.WriteString(pick(r,
			"principal", "principal", "principal",
			fmt.Sprintf("principal in Group::%q", w.group(r)),
			fmt.Sprintf("principal in Agent::%q", w.agent(r)),
			fmt.Sprintf("principal == Session::\"sess%d\"", r.IntN(3)),
			"principal is Session",
			fmt.Sprintf("principal is Session in Group::%q", w.group(r)),
			"principal is Agent",
		))
		b.WriteString(", ")
		b.WriteString(pick(r,
			"action", "action",
			`action == Action::"call_tool"`, `action == Action::"call_tool"`,
			`action == Action::"read_resource"`, `action == Action::"get_prompt"`,
			`action in Action::"call_tool"`,
			`action in [Action::"call_tool", Action::"get_prompt"]`,
			`action in [Action::"read_resource", Action::"read_resource"]`,
			`action == Action::"bogus"`,
			`action in Group::"g0"`,
			`action == Action::"http_request"`, `action == Action::"http_request"`,
			`action in Action::"exec"`, `action == Action::"exec"`,
			`action in [Action::"http_request", Action::"call_tool"]`,
			`action in [Action::"exec", Action::"http_request"]`,
		))
		b.WriteString(", ")
		b.WriteString(pick(r,
			"resource", "resource",
			fmt.Sprintf("resource == Tool::%q", w.tool(r)),
			fmt.Sprintf("resource == Tool::%q", w.tool(r)),
			fmt.Sprintf("resource == Prompt::%q", w.tool(r)),
			fmt.Sprintf("resource == Resource::\"file:///r%d\"", r.IntN(3)),
			fmt.Sprintf("resource in Server::%q", w.server(r)),
			fmt.Sprintf("resource in Server::%q", w.server(r)),
			fmt.Sprintf("resource in Tool::%q", w.tool(r)),
			"resource is Tool", "resource is Resource",
			fmt.Sprintf("resource is Prompt in Server::%q", w.server(r)),
			fmt.Sprintf("resource is Tool in Tool::%q", w.tool(r)),
			fmt.Sprintf("resource == Server::%q", w.server(r)),
			"resource is Server",
			fmt.Sprintf("resource == Host::%q", pick(r, genHosts...)),
			fmt.Sprintf("resource == Host::%q", pick(r, genHosts...)),
			fmt.Sprintf("resource in Host::%q", pick(r, genHosts...)),
			"resource is Host",
			fmt.Sprintf("resource is Host in Host::%q", pick(r, genHosts...)),
			fmt.Sprintf("resource == Path::%q", pick(r, genCommands...)),
			fmt.Sprintf("resource in Path::%q", pick(r, genCommands...)),
			"resource is Path",
			fmt.Sprintf("resource == Dataset::%q", pick(r, genDatasets...)),
			"resource is Dataset",
		))
		b.WriteString(")")
		for range r.IntN(3) {
			b.WriteString(pick(r, " when { ", " when { ", " unless { "))
			b.WriteString(pick(r,
				`context.arguments.path like "/tmp/*"`,
				`context.arguments.n > 3`,
				`context.arguments has force && context.arguments.force == true`,
				`context.arguments.tags.contains("x")`,
				`principal.depth > 0`,
				`principal.sponsor == Sponsor::"alice"`,
				`principal.agent.sponsor == principal.sponsor`,
				fmt.Sprintf("context.server == %q", w.server(r)),
				`context.name like "t1*"`,
				fmt.Sprintf("principal in Group::%q", w.group(r)),
				fmt.Sprintf("resource in Server::%q", w.server(r)),
				`resource.missing == 1`,
				`true`, `false`,
				`context.taint.contains("private")`,
				`context.taint.containsAll(["private", "untrusted"])`,
				`context has sink && context.sink && context.taint.contains("untrusted")`,
				`context.sink`,
				`context has tainted_arguments && context.tainted_arguments.contains("to")`,
				`context.tainted_arguments.isEmpty()`,
				`context has method && context.method == "GET"`,
				`context.method == "POST"`,
				`context.port == 443`,
				`context has path && context.path like "/srv/*"`,
				`context.path like "/api/*"`,
				`context.host like "*.example.com"`,
				`context.scheme == "https"`,
				`context.args.contains("--force")`,
				`context.cmdline like "push*"`,
				`context.cwd like "/work*"`,
				`context.command like "/usr/bin/*"`,
				fmt.Sprintf("context has dataset && context.dataset == Dataset::%q", pick(r, genDatasets...)),
				fmt.Sprintf("context.dataset in Dataset::%q", pick(r, genDatasets...)),
			))
			b.WriteString(" }")
		}
		b.WriteString(";\n")
	}
	return b.String()
}

var randomArguments = []string{
	"", `null`, `{}`,
	`{"path":"/tmp/a","n":5}`,
	`{"path":"/etc/passwd","force":true}`,
	`{"n":"x","force":false}`,
	`{"n":2,"tags":["x","y"]}`,
	`{"tags":[1,{"x":null}],"path":"/tmp/"}`,
	`{"n":1.5}`,
}

func randomRequest(r *rand.Rand, w world) Request {
	req := Request{
		Session: fmt.Sprintf("sess%d", r.IntN(3)),
		Agent:   w.agent(r),
		Sponsor: pick(r, "alice", "bob", ""),
		Depth:   pick(r, 0, 0, 1, 2),
		Action:  pick(r, ActionCallTool, ActionCallTool, ActionReadResource, ActionGetPrompt, ActionHTTPRequest, ActionHTTPRequest, ActionExec),
		Taint:   pick(r, nil, []string{"private"}, []string{"untrusted"}, []string{"untrusted", "private"}),
	}
	for range r.IntN(3) {
		req.Groups = append(req.Groups, w.group(r))
	}
	switch req.Action {
	case ActionHTTPRequest:
		req.HTTP = &HTTPRequest{
			Method: pick(r, "GET", "GET", "POST", "DELETE"),
			Scheme: pick(r, "https", "http"),
			Host:   pick(r, genHosts...),
			Port:   pick(r, 443, 80, 8443),
			Path:   pick(r, "/", "/api/v1/reports", "/srv/a", "/api/%2F"),
		}
		if r.IntN(2) == 0 {
			req.Name = req.HTTP.Host
		}
		if r.IntN(8) == 0 {
			req.HTTP.Method, req.HTTP.Scheme, req.HTTP.Path = MethodConnect, "", ""
		}
		return req
	case ActionExec:
		req.Exec = &ExecRequest{
			Command: pick(r, genCommands...),
			Args:    pick(r, nil, []string{"push", "--force"}, []string{"status"}, []string{"push", "origin"}),
			Dir:     pick(r, "", "/work/repo", "/tmp"),
		}
		return req
	case ActionCallTool, ActionGetPrompt:
		req.Name = w.tool(r)
		req.Server = strings.Split(req.Name, ".")[0]
	default:
		req.Server = w.server(r)
		req.Name = fmt.Sprintf("file:///r%d", r.IntN(3))
	}
	if a := pick(r, randomArguments...); a != "" {
		req.Arguments = json.RawMessage(a)
	}
	req.Dataset = pick(r, "", "", "d0", "d1")
	req.Path = pick(r, "", "", "/srv/a", "/tmp/x")
	req.Sink = r.IntN(2) == 0
	req.TaintedArguments = pick(r, nil, nil, []string{"to"}, []string{"url", "to"})
	return req
}

// realisticPolicies generates n policies shaped like a real deployment:
// per-tool grants to groups, server-wide grants conditioned on arguments,
// argument-conditioned forbids, prompt and resource grants, and a few
// global guards. servers and groups grow with n.
func realisticPolicies(r *rand.Rand, n int) (string, world) {
	w := world{servers: max(2, n/20), tools: 10, groups: max(2, n/25), agents: 50}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "@id(\"p%d\")\n", i)
		switch k := r.IntN(100); {
		case k < 2:
			b.WriteString("forbid (principal, action, resource) when { principal.depth > 3 };\n")
		case k < 50:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"call_tool\", resource == Tool::%q);\n", w.group(r), w.tool(r))
		case k < 70:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"call_tool\", resource in Server::%q)\nwhen { context.arguments has path && context.arguments.path like \"/tmp/*\" };\n", w.group(r), w.server(r))
		case k < 80:
			fmt.Fprintf(&b, "forbid (principal, action == Action::\"call_tool\", resource == Tool::%q)\nwhen { context.arguments has force && context.arguments.force == true };\n", w.tool(r))
		case k < 88:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"get_prompt\", resource in Server::%q);\n", w.group(r), w.server(r))
		case k < 95:
			fmt.Fprintf(&b, "permit (principal, action == Action::\"read_resource\", resource == Resource::\"file:///docs/%d\");\n", r.IntN(50))
		default:
			fmt.Fprintf(&b, "forbid (principal in Agent::%q, action, resource in Server::%q) unless { principal has sponsor && principal.sponsor == Sponsor::\"alice\" };\n", w.agent(r), w.server(r))
		}
	}
	return b.String(), w
}

// realisticRequest is a tool call like an agent makes: an agent in one or
// two groups, mostly root sessions, arguments with a path.
func realisticRequest(r *rand.Rand, w world) Request {
	tool := w.tool(r)
	req := Request{
		Session:   fmt.Sprintf("%016x", r.Uint64()),
		Agent:     w.agent(r),
		Sponsor:   pick(r, "alice", "bob"),
		Groups:    []string{w.group(r)},
		Depth:     pick(r, 0, 0, 0, 1),
		Action:    ActionCallTool,
		Server:    strings.Split(tool, ".")[0],
		Name:      tool,
		Arguments: json.RawMessage(pick(r, `{"path":"/tmp/out.csv","limit":100}`, `{"path":"/etc/hosts"}`, `{"path":"/tmp/x","force":true}`)),
	}
	if r.IntN(3) == 0 {
		req.Groups = append(req.Groups, w.group(r))
	}
	return req
}

// egressPolicies generates n policies for outgoing HTTP shaped like a real
// deployment, with ids e0…: per-host grants to groups (most for reading
// methods), per-host forbids of writes, path-conditioned grants, a few
// wildcard grants on host names (which no index can narrow: they are
// filed under resource is Host), group guards on tainted sessions, and one
// global lethal-trifecta forbid. Hosts grow with n.
func egressPolicies(r *rand.Rand, w world, n int) string {
	var b strings.Builder
	b.WriteString("@id(\"e-trifecta\")\nforbid (principal, action == Action::\"http_request\", resource)\nwhen { context.taint.containsAll([\"private\", \"untrusted\"]) };\n")
	for i := range n - 1 {
		fmt.Fprintf(&b, "@id(\"e%d\")\n", i)
		switch k := r.IntN(100); {
		case k < 55:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"http_request\", resource == Host::%q)\nwhen { [\"GET\", \"HEAD\"].contains(context.method) };\n", w.group(r), w.host(r))
		case k < 70:
			fmt.Fprintf(&b, "forbid (principal, action == Action::\"http_request\", resource == Host::%q)\nwhen { context.method == \"DELETE\" };\n", w.host(r))
		case k < 85:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"http_request\", resource == Host::%q)\nwhen { context.scheme == \"https\" && context.path like \"/api/*\" };\n", w.group(r), w.host(r))
		case k < 90:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"http_request\", resource is Host)\nwhen { context.host like \"*.z%d.example.com\" };\n", w.group(r), r.IntN(10))
		default:
			fmt.Fprintf(&b, "forbid (principal in Group::%q, action == Action::\"http_request\", resource)\nwhen { context.taint.contains(\"untrusted\") && context.method != \"GET\" };\n", w.group(r))
		}
	}
	return b.String()
}

func (w world) host(r *rand.Rand) string { return fmt.Sprintf("h%d.example.com", r.IntN(w.hosts)) }

// egressRequest is an outgoing HTTP request like an agent makes: mostly
// GET over https to an API path, sometimes from a tainted session.
func egressRequest(r *rand.Rand, w world) Request {
	return Request{
		Session: fmt.Sprintf("%016x", r.Uint64()),
		Agent:   w.agent(r),
		Sponsor: pick(r, "alice", "bob"),
		Groups:  []string{w.group(r)},
		Action:  ActionHTTPRequest,
		HTTP: &HTTPRequest{
			Method: pick(r, "GET", "GET", "GET", "POST", "DELETE"),
			Scheme: "https", Host: w.host(r), Port: 443,
			Path: pick(r, "/api/v1/reports", "/api/v1/orders/42", "/login"),
		},
		Taint: pick(r, nil, nil, []string{"private"}, []string{"untrusted"}),
	}
}
