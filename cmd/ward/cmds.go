package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/policytest"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// scopeFlag builds a scope from --allow patterns: tool:, resource: and
// prompt: ones as authority.ParsePatterns reads them, and host:HOST,
// host:*.DOMAIN or host:* for the hosts the egress proxy lets the session
// reach. A host is written in policy.CanonicalHost's form ("API.Example.com"
// becomes api.example.com, "[::1]" ::1); one it refuses (a port, a zone, a
// bad name) is a usage error.
func scopeFlag(patterns multi) (*grant.Scope, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var rest, hosts []string
	for _, p := range patterns {
		h, ok := strings.CutPrefix(strings.TrimSpace(p), "host:")
		if !ok {
			rest = append(rest, p)
			continue
		}
		if h != "*" {
			name, wild := strings.CutPrefix(h, "*.")
			c, err := policy.CanonicalHost(name)
			if err != nil {
				return nil, usagef("--allow %s: %v", p, err)
			}
			if h = c; wild {
				h = "*." + c
			}
		}
		hosts = append(hosts, h)
	}
	s, err := authority.ParsePatterns(rest)
	if err != nil {
		return nil, usagef("--allow: %v", err)
	}
	s.Hosts = hosts
	if err := s.Validate(); err != nil {
		return nil, usagef("--allow: %v", err)
	}
	return &s, nil
}

func cmdSponsor(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "sponsor", "create", "list", "credential")
	if err != nil {
		return err
	}
	fs := flags("sponsor " + sub)
	out := outputFlag(fs)
	kind := fs.String("kind", "human", "human or platform")
	var allow multi
	fs.Var(&allow, "allow", "ceiling pattern (repeatable): tool:SERVER.TOOL, resource:URI, prompt:SERVER.PROMPT; '*' only at the end")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if fs.NArg() != 1 {
			return usagef("usage: ward sponsor create NAME [--kind human|platform] [--allow PATTERN]...")
		}
		ceiling, err := scopeFlag(allow)
		if err != nil {
			return err
		}
		if ceiling == nil {
			ceiling = &grant.Scope{}
		}
		var v api.PrincipalView
		if done, err := c.call("POST", "/v1/sponsors", api.SponsorRequest{Name: fs.Arg(0), Kind: *kind, Ceiling: *ceiling}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sponsor %s (%s) created\ncredential (shown once): %s\n", v.Name, v.Kind, v.Credential)
	case "list":
		var vs []api.PrincipalView
		if done, err := c.call("GET", "/v1/sponsors", nil, &vs, *out, stdout); done || err != nil {
			return err
		}
		var rows [][]string
		for _, v := range vs {
			rows = append(rows, []string{v.Name, v.Kind, scopeText(v.Ceiling)})
		}
		table(stdout, "NAME\tKIND\tCEILING", rows)
	case "credential":
		if fs.NArg() != 1 {
			return usagef("usage: ward sponsor credential NAME")
		}
		var v map[string]string
		if done, err := c.call("POST", "/v1/sponsors/"+url.PathEscape(fs.Arg(0))+"/credentials", struct{}{}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new credential for %s (shown once): %s\n", v["principal"], v["credential"])
	}
	return nil
}

func cmdAgent(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "agent", "register", "list", "show", "quarantine", "release", "trust")
	if err != nil {
		return err
	}
	fs := flags("agent " + sub)
	out := outputFlag(fs)
	sponsor := fs.String("sponsor", "", "accountable sponsor (default: yourself, for a sponsor credential)")
	digest := fs.String("code-digest", "", "digest of the agent's code or image")
	var groups, allow multi
	fs.Var(&groups, "group", "group membership (repeatable)")
	fs.Var(&allow, "allow", "permission ceiling pattern (repeatable): tool:…, resource:…, prompt:…")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	name := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usagef("usage: ward agent %s NAME", sub)
		}
		return fs.Arg(0), nil
	}
	switch sub {
	case "register":
		n, err := name()
		if err != nil {
			return err
		}
		ceiling, err := scopeFlag(allow)
		if err != nil {
			return err
		}
		if ceiling == nil {
			return usagef("an agent needs a permission ceiling: --allow tool:SERVER.TOOL (repeatable)")
		}
		var v api.AgentView
		if done, err := c.call("POST", "/v1/agents", api.AgentRequest{Name: n, Sponsor: *sponsor, Groups: groups, Ceiling: *ceiling, CodeDigest: *digest}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s registered (%s), sponsor %s\n", v.Name, v.SPIFFEID, v.Sponsor)
	case "list":
		var vs []api.AgentView
		if done, err := c.call("GET", "/v1/agents", nil, &vs, *out, stdout); done || err != nil {
			return err
		}
		var rows [][]string
		for _, v := range vs {
			rows = append(rows, []string{v.Name, v.Sponsor, strings.Join(v.Groups, ","), v.Status})
		}
		table(stdout, "NAME\tSPONSOR\tGROUPS\tSTATUS", rows)
	case "show":
		n, err := name()
		if err != nil {
			return err
		}
		var v api.AgentView
		if done, err := c.call("GET", "/v1/agents/"+url.PathEscape(n), nil, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent      %s\nspiffe id  %s\nsponsor    %s\ngroups     %s\nceiling    %s\nstatus     %s\ntrust      %d\n",
			v.Name, v.SPIFFEID, v.Sponsor, strings.Join(v.Groups, ","), scopeText(v.Ceiling), v.Status, v.Trust)
	case "trust":
		if fs.NArg() != 2 {
			return usagef("usage: ward agent trust NAME SCORE (0-100)")
		}
		score, err := strconv.Atoi(fs.Arg(1))
		if err != nil || score < 0 || score > 100 {
			return usagef("trust score %q: want a whole number from 0 to 100", fs.Arg(1))
		}
		var v api.AgentView
		if done, err := c.call("POST", "/v1/agents/"+url.PathEscape(fs.Arg(0))+"/trust", map[string]int{"trust": score}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s trust is now %d\n", v.Name, v.Trust)
	case "quarantine", "release":
		n, err := name()
		if err != nil {
			return err
		}
		var v map[string]any
		if done, err := c.call("POST", "/v1/agents/"+url.PathEscape(n)+"/"+sub, struct{}{}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s is now %v; sessions ended: %v\n", n, v["status"], v["ended_sessions"])
	}
	return nil
}

// newSessionKey generates the session key and its CSR on this machine.
func newSessionKey() (*sessioncred.Credentials, string, error) {
	key, err := sessioncred.NewKey()
	if err != nil {
		return nil, "", err
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		return nil, "", err
	}
	return &sessioncred.Credentials{Key: key}, base64.RawURLEncoding.EncodeToString(csr), nil
}

// saveIssued stores what the node issued next to the locally generated key.
func saveIssued(creds *sessioncred.Credentials, v api.IssuedView, server, dir string) (string, error) {
	creds.Info = sessioncred.Info{Session: v.Session, SPIFFEID: v.SPIFFEID, Agent: v.Agent, Parent: v.Parent, Server: server, Expires: v.Expires}
	creds.Grant, creds.JWTSVID = v.Grant, v.JWTSVID
	if dir == "" {
		dir = sessionDir(v.Session)
	}
	if err := sessioncred.Save(dir, creds, []byte(v.X509SVID), []byte(v.Bundle)); err != nil {
		return "", err
	}
	return dir, nil
}

func printIssued(w io.Writer, v api.IssuedView, dir string) {
	fmt.Fprintf(w, "session    %s\nspiffe id  %s\nagent      %s (sponsor %s)\n", v.Session, v.SPIFFEID, v.Agent, v.Sponsor)
	if v.Parent != "" {
		fmt.Fprintf(w, "parent     %s (depth %d)\n", v.Parent, v.Depth)
	}
	fmt.Fprintf(w, "scope      %s\nexpires    %s\ncredentials %s  (key.pem never left this machine)\n", scopeText(v.Scope), v.Expires.Format(time.RFC3339), dir)
}

func cmdSession(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "session", "start", "end", "show", "list")
	if err != nil {
		return err
	}
	fs := flags("session " + sub)
	out := outputFlag(fs)
	agent := fs.String("agent", "", "agent to start a session for")
	objective := fs.String("objective", "", "the session's declared objective")
	ttl := fs.Duration("ttl", 0, "session lifetime (default: the node's, 10m)")
	dir := fs.String("out", "", "credentials directory (default $WARD_HOME/sessions/ID)")
	reason := fs.String("reason", "", "why the session ends")
	audience := fs.String("jwt-audience", "", "JWT-SVID audience (default ward)")
	model := fs.String("model", "", "the model that will pursue the objective (attested)")
	agentVersion := fs.String("agent-version", "", "the agent software's version (attested)")
	var allow, tags multi
	fs.Var(&tags, "tag", "objective tag (repeatable): the kinds of work the objective needs; policies see context.objective_tags")
	fs.Var(&allow, "allow", "narrow the scope (repeatable): tool:…, resource:…, prompt:…")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	switch sub {
	case "start":
		if *agent == "" || *objective == "" {
			return usagef("usage: ward session start --agent NAME --objective TEXT [--allow PATTERN]... [--ttl 10m]")
		}
		c, err := operatorClient()
		if err != nil {
			return err
		}
		scope, err := scopeFlag(allow)
		if err != nil {
			return err
		}
		creds, csr, err := newSessionKey()
		if err != nil {
			return err
		}
		req := api.SessionRequest{Agent: *agent, Objective: *objective, Tags: tags, Model: *model, AgentVersion: *agentVersion, Scope: scope, CSR: csr}
		if *ttl > 0 {
			req.TTL = ttl.String()
		}
		if *audience != "" {
			req.JWTAudience = []string{*audience}
		}
		var v api.IssuedView
		if err := c.do("POST", "/v1/sessions", req, &v); err != nil {
			return err
		}
		d, err := saveIssued(creds, v, c.base, *dir)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(stdout, map[string]any{"session": v.Session, "spiffe_id": v.SPIFFEID, "agent": v.Agent, "sponsor": v.Sponsor,
				"scope": v.Scope, "expires": v.Expires, "credentials": d, "grant": v.Grant, "jwt_svid": v.JWTSVID, "x509_svid": v.X509SVID})
		}
		printIssued(stdout, v, d)
	case "end":
		if fs.NArg() != 1 {
			return usagef("usage: ward session end ID [--reason TEXT]")
		}
		id := fs.Arg(0)
		var c *client
		if c, err = operatorClient(); err != nil {
			// A session may end itself with its own credentials.
			c, _, err = sessionClient(id)
			if err != nil {
				return err
			}
		}
		var v map[string][]string
		if done, err := c.call("POST", "/v1/sessions/"+url.PathEscape(id)+"/end", map[string]string{"reason": *reason}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ended: %s (grants revoked)\n", strings.Join(v["ended"], ", "))
	case "show":
		if fs.NArg() != 1 {
			return usagef("usage: ward session show ID")
		}
		c, err := operatorClient()
		if err != nil {
			return err
		}
		var v api.SessionView
		if done, err := c.call("GET", "/v1/sessions/"+url.PathEscape(fs.Arg(0)), nil, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "session    %s\nspiffe id  %s\nagent      %s (sponsor %s)\nparent     %s\ndepth      %d\nobjective  %s\nscope      %s\nstatus     %s %s\nexpires    %s\n",
			v.ID, v.SPIFFEID, v.Agent, v.Sponsor, v.Parent, v.Depth, v.Objective, scopeText(v.Scope), v.Status, v.EndReason, v.Expires.Format(time.RFC3339))
	case "list":
		c, err := operatorClient()
		if err != nil {
			return err
		}
		q := url.Values{}
		if *agent != "" {
			q.Set("agent", *agent)
		}
		var vs []api.SessionView
		if done, err := c.call("GET", "/v1/sessions?"+q.Encode(), nil, &vs, *out, stdout); done || err != nil {
			return err
		}
		var rows [][]string
		for _, v := range vs {
			rows = append(rows, []string{v.ID, v.Agent, v.Parent, v.Status, v.Expires.Format(time.RFC3339)})
		}
		table(stdout, "SESSION\tAGENT\tPARENT\tSTATUS\tEXPIRES", rows)
	}
	return nil
}

func cmdToken(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "token", "exchange")
	if err != nil {
		return err
	}
	fs := flags("token " + sub)
	out := outputFlag(fs)
	session := fs.String("session", "", "the delegating (parent) session")
	agent := fs.String("agent", "", "sub-agent name (default: the parent's agent)")
	ttl := fs.Duration("ttl", 0, "child lifetime (default: the parent's remaining)")
	dir := fs.String("out", "", "credentials directory for the child (default $WARD_HOME/sessions/CHILD)")
	var allow multi
	fs.Var(&allow, "allow", "child scope (repeatable), must lie within the parent's")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *session == "" {
		return usagef("usage: ward token exchange --session PARENT [--agent NAME] [--allow PATTERN]... [--ttl D]")
	}
	c, parent, err := sessionClient(*session)
	if err != nil {
		return err
	}
	if len(allow) > 0 {
		if _, err := scopeFlag(allow); err != nil {
			return err
		}
	}
	creds, csr, err := newSessionKey()
	if err != nil {
		return err
	}
	form := url.Values{
		"grant_type":         {api.GrantTypeTokenExchange},
		"subject_token":      {parent.Grant},
		"subject_token_type": {api.TokenTypeGrant},
		"csr":                {csr},
	}
	if len(allow) > 0 {
		form.Set("scope", strings.Join(allow, " "))
	}
	if *agent != "" {
		form.Set("agent", *agent)
	}
	if *ttl > 0 {
		form.Set("ttl", ttl.String())
	}
	var resp struct {
		AccessToken string         `json:"access_token"`
		Scope       string         `json:"scope"`
		Session     api.IssuedView `json:"session"`
	}
	if err := c.do("POST", "/v1/token", form, &resp); err != nil {
		return err
	}
	d, err := saveIssued(creds, resp.Session, c.base, *dir)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, map[string]any{"session": resp.Session.Session, "spiffe_id": resp.Session.SPIFFEID, "parent": resp.Session.Parent,
			"depth": resp.Session.Depth, "scope": resp.Scope, "act": resp.Session.Act, "expires": resp.Session.Expires, "credentials": d, "grant": resp.AccessToken})
	}
	printIssued(stdout, resp.Session, d)
	return nil
}

func cmdTools(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "tools", "list", "approve")
	if err != nil {
		return err
	}
	fs := flags("tools " + sub)
	out := outputFlag(fs)
	srv := fs.String("server", "", "only this upstream")
	hash := fs.String("hash", "", "the hash of the definition you reviewed (ward tools list -o json)")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return toolsList(c, *srv, *out, stdout)
	case "approve":
		if fs.NArg() != 1 {
			return usagef("usage: ward tools approve SERVER.TOOL --hash sha256:…")
		}
		var v api.PinView
		if done, err := c.call("POST", "/v1/tools/approve", map[string]string{"name": fs.Arg(0), "hash": *hash}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tool %s approved at %s\n", v.Name, v.ApprovedHash)
	}
	return nil
}

func cmdPolicy(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "policy", "check", "explain", "test", "schema")
	if err != nil {
		return err
	}
	fs := flags("policy " + sub)
	out := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if sub == "test" {
		return policyTest(fs.Args(), *out, stdout)
	}
	if sub == "schema" {
		_, err := stdout.Write(policy.Schema())
		return err
	}
	if fs.NArg() == 0 {
		return usagef("usage: ward policy %s FILE|DIR...", sub)
	}
	set, err := server.LoadPolicies(fs.Args())
	if err != nil {
		return err
	}
	if sub == "explain" {
		// The Cedar ward enforces, rules compiled, in evaluation order.
		if *out == "json" {
			return printJSON(stdout, set.Policies())
		}
		for _, p := range set.Policies() {
			fmt.Fprintf(stdout, "// %s (%s %s)\n%s\n\n", p.ID, p.Effect, p.Position, p.Text)
		}
		return nil
	}
	if *out == "json" {
		return printJSON(stdout, map[string]any{"ok": true, "policies": set.Policies()})
	}
	fmt.Fprintf(stdout, "ok: %d policies\n", set.Len())
	for _, p := range set.Policies() {
		fmt.Fprintf(stdout, "  %-32s %-7s %s\n", p.ID, p.Effect, p.Position)
	}
	return nil
}

func cmdAdmin(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "admin", "credential")
	if err != nil {
		return err
	}
	fs := flags("admin " + sub)
	data := fs.String("data", server.DefaultData, "the node's data directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx := context.Background()
	node, err := server.Open(ctx, server.Config{Data: *data, TrustDomain: trustDomainOf(*data)})
	if err != nil {
		return fmt.Errorf("open %s (is ward still running? stop it first): %w", *data, err)
	}
	defer node.Close()
	cred := node.AdminCredential
	if cred == "" {
		if cred, err = node.Auth.NewCredential(ctx, authority.AdminPrincipal, "ward admin credential (local)"); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "admin credential (shown once): %s\n", cred)
	return nil
}

// trustDomainOf reads the trust domain a data directory was created for.
func trustDomainOf(data string) string {
	certs, err := readBundle(filepath.Join(data, "bundle.pem"))
	if err != nil || len(certs) == 0 || len(certs[0].URIs) == 0 {
		return ""
	}
	return certs[0].URIs[0].Host
}

func readBundle(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return sessioncred.ParseCertificates(b)
}

// scopeText shows a scope as the patterns the command line takes.
func scopeText(raw json.RawMessage) string {
	sc, err := authority.ParseScope(raw)
	if err != nil {
		return string(raw)
	}
	p := authority.FormatPatterns(sc)
	if len(p) == 0 {
		return "(nothing)"
	}
	return strings.Join(p, " ")
}

// policyTest runs a policy test file: its own policies, or those given
// after it.
func policyTest(args []string, out string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: ward policy test FILE [POLICY_FILE|DIR...]")
	}
	f, err := policytest.Load(args[0])
	if err != nil {
		return err
	}
	paths := f.ResolvedPolicyPaths()
	if len(args) > 1 {
		paths = args[1:]
	}
	if len(paths) == 0 {
		return usagef("%s names no policies: add `policies: [...]` to it or pass them after the file", args[0])
	}
	set, err := server.LoadPolicies(paths)
	if err != nil {
		return err
	}
	rs := policytest.Run(f, set)
	if out == "json" {
		type result struct {
			Name    string `json:"name"`
			Line    int    `json:"line"`
			Pass    bool   `json:"pass"`
			Outcome string `json:"outcome"`
			Why     string `json:"why,omitempty"`
		}
		var js []result
		for _, r := range rs {
			js = append(js, result{r.Case.Name, r.Case.Line, r.Pass, r.Got.Outcome(), r.Why})
		}
		if err := printJSON(stdout, js); err != nil {
			return err
		}
	} else if err := policytest.WriteText(stdout, rs); err != nil {
		return err
	}
	if _, failed := policytest.Summary(rs); failed > 0 {
		return fmt.Errorf("%d of %d policy test cases failed", failed, len(rs))
	}
	return nil
}
