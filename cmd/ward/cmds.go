package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	cedarschema "github.com/cedar-policy/cedar-go/x/exp/schema"

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

func sponsorCreate(args []string, stdout io.Writer) error {
	fs := flags("sponsor create")
	out := outputFlag(fs)
	kind := fs.String("kind", "human", "human or platform")
	var allow multi
	fs.Var(&allow, "allow", "ceiling `pattern` (repeatable): tool:SERVER.TOOL, resource:URI, prompt:SERVER.PROMPT; '*' only at the end")
	if err := parseArgs(fs, args, out, "the sponsor's NAME"); err != nil {
		return err
	}
	name := fs.Arg(0)
	ceiling, err := scopeFlag(allow)
	if err != nil {
		return err
	}
	if ceiling == nil {
		ceiling = &grant.Scope{}
	}
	c, err := operatorClient()
	if err != nil {
		return err
	}
	var v api.PrincipalView
	if done, err := c.call("POST", "/v1/sponsors", api.SponsorRequest{Name: name, Kind: *kind, Ceiling: *ceiling}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sponsor %s (%s) created\ncredential (shown once): %s\n", v.Name, v.Kind, v.Credential)
	return nil
}

func sponsorList(args []string, stdout io.Writer) error {
	fs := flags("sponsor list")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	var vs []api.PrincipalView
	if done, err := c.call("GET", "/v1/sponsors", nil, &vs, *out, stdout); done || err != nil {
		return err
	}
	var rows [][]string
	for _, v := range vs {
		rows = append(rows, []string{v.Name, v.Kind, scopeText(v.Ceiling)})
	}
	table(stdout, "NAME\tKIND\tCEILING", rows)
	return nil
}

func sponsorCredential(args []string, stdout io.Writer) error {
	fs := flags("sponsor credential")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out, "the sponsor's NAME")
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	var v map[string]string
	if done, err := c.call("POST", "/v1/sponsors/"+url.PathEscape(name)+"/credentials", struct{}{}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new credential for %s (shown once): %s\n", v["principal"], v["credential"])
	return nil
}

func agentRegister(args []string, stdout io.Writer) error {
	fs := flags("agent register")
	out := outputFlag(fs)
	sponsor := fs.String("sponsor", "", "accountable `sponsor` (default: yourself, for a sponsor credential)")
	digest := fs.String("code-digest", "", "`digest` of the agent's code or image")
	var groups, allow multi
	fs.Var(&groups, "group", "`group` membership (repeatable)")
	fs.Var(&allow, "allow", "permission ceiling `pattern` (repeatable): tool:…, resource:…, prompt:…")
	if err := parseArgs(fs, args, out, "the agent's NAME"); err != nil {
		return err
	}
	n := fs.Arg(0)
	ceiling, err := scopeFlag(allow)
	if err != nil {
		return err
	}
	if ceiling == nil {
		return usagef("an agent needs a permission ceiling: --allow tool:SERVER.TOOL (repeatable)")
	}
	c, err := operatorClient()
	if err != nil {
		return err
	}
	var v api.AgentView
	if done, err := c.call("POST", "/v1/agents", api.AgentRequest{Name: n, Sponsor: *sponsor, Groups: groups, Ceiling: *ceiling, CodeDigest: *digest}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent %s registered (%s), sponsor %s\n", v.Name, v.SPIFFEID, v.Sponsor)
	return nil
}

func agentList(args []string, stdout io.Writer) error {
	fs := flags("agent list")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	var vs []api.AgentView
	if done, err := c.call("GET", "/v1/agents", nil, &vs, *out, stdout); done || err != nil {
		return err
	}
	var rows [][]string
	for _, v := range vs {
		rows = append(rows, []string{v.Name, v.Sponsor, strings.Join(v.Groups, ","), v.Status, strconv.Itoa(v.Trust)})
	}
	table(stdout, "NAME\tSPONSOR\tGROUPS\tSTATUS\tTRUST", rows)
	return nil
}

func agentShow(args []string, stdout io.Writer) error {
	fs := flags("agent show")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out, "the agent's NAME")
	if err != nil {
		return err
	}
	n := fs.Arg(0)
	var v api.AgentView
	if done, err := c.call("GET", "/v1/agents/"+url.PathEscape(n), nil, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent      %s\nspiffe id  %s\nsponsor    %s\ngroups     %s\nceiling    %s\nstatus     %s\ntrust      %d\n",
		v.Name, v.SPIFFEID, v.Sponsor, strings.Join(v.Groups, ","), scopeText(v.Ceiling), v.Status, v.Trust)
	return nil
}

func agentTrust(args []string, stdout io.Writer) error {
	fs := flags("agent trust")
	out := outputFlag(fs)
	if err := parseArgs(fs, args, out, "the agent's NAME", "a SCORE from 0 to 100"); err != nil {
		return err
	}
	score, err := strconv.Atoi(fs.Arg(1))
	if err != nil || score < 0 || score > 100 {
		return usagef("trust score %q: want a whole number from 0 to 100", fs.Arg(1))
	}
	c, err := operatorClient()
	if err != nil {
		return err
	}
	var v api.AgentView
	if done, err := c.call("POST", "/v1/agents/"+url.PathEscape(fs.Arg(0))+"/trust", map[string]int{"trust": score}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent %s trust is now %d\n", v.Name, v.Trust)
	return nil
}

// agentStatus is ward agent quarantine|release.
func agentStatus(sub string) func([]string, io.Writer) error {
	return func(args []string, stdout io.Writer) error {
		fs := flags("agent " + sub)
		out := outputFlag(fs)
		c, err := parseOperator(fs, args, out, "the agent's NAME")
		if err != nil {
			return err
		}
		n := fs.Arg(0)
		var v map[string]any
		if done, err := c.call("POST", "/v1/agents/"+url.PathEscape(n)+"/"+sub, struct{}{}, &v, *out, stdout); done || err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s is now %v; sessions ended: %v\n", n, v["status"], v["ended_sessions"])
		return nil
	}
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

func sessionStart(args []string, stdout io.Writer) error {
	fs := flags("session start")
	out := outputFlag(fs)
	agent := fs.String("agent", "", "`agent` to start a session for")
	objective := fs.String("objective", "", "the session's declared `objective`")
	ttl := fs.Duration("ttl", 0, "session lifetime (default: the node's, 10m)")
	dir := fs.String("out", "", "credentials `directory` (default $WARD_HOME/sessions/ID)")
	audience := fs.String("jwt-audience", "", "JWT-SVID `audience` (default ward)")
	model := fs.String("model", "", "the `model` that will pursue the objective (attested)")
	agentVersion := fs.String("agent-version", "", "the agent software's `version` (attested)")
	var allow, tags multi
	fs.Var(&tags, "tag", "objective `tag` (repeatable): the kinds of work the objective needs; policies see context.objective_tags")
	fs.Var(&allow, "allow", "narrow the scope (repeatable): tool:…, resource:…, prompt:…")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *agent == "" || *objective == "" {
		return usagef("needs --agent NAME and --objective TEXT")
	}
	scope, err := scopeFlag(allow)
	if err != nil {
		return err
	}
	c, err := operatorClient()
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
	return nil
}

func sessionEnd(args []string, stdout io.Writer) error {
	fs := flags("session end")
	out := outputFlag(fs)
	reason := fs.String("reason", "", "why the session ends (recorded)")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	id, err := oneArg(fs, "the session ID")
	if err != nil {
		return err
	}
	c, err := operatorClient()
	if err != nil {
		// A session may end itself with its own credentials.
		var serr error
		if c, _, serr = sessionClient(id); serr != nil {
			return err
		}
	}
	// A session the node no longer has active has nothing left to end:
	// say what became of it. One it has active is ended, even if this
	// machine's clock says it expired: the node's clock decides.
	var s api.SessionView
	if c.token != "" {
		if err := c.do("GET", "/v1/sessions/"+url.PathEscape(id), nil, &s); err != nil {
			return err
		}
		if s.Status != "active" {
			if *out == "json" {
				return printJSON(stdout, map[string]any{"ended": []string{}, "session": s})
			}
			fmt.Fprintf(stdout, "nothing to end: session %s %s\n", id, sessionState(s, time.Now()))
			return nil
		}
	}
	var v map[string][]string
	if err := c.do("POST", "/v1/sessions/"+url.PathEscape(id)+"/end", map[string]string{"reason": *reason}, &v); err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, v)
	}
	if len(v["ended"]) == 0 {
		fmt.Fprintf(stdout, "nothing to end: session %s was not active\n", id)
		return nil
	}
	note := ""
	if s.ID != "" && !time.Now().Before(s.Expires) {
		note = "; it had expired at " + s.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "ended: %s (grants revoked%s)\n", strings.Join(v["ended"], ", "), note)
	return nil
}

// sessionState says what became of a session: "is active until T",
// "expired at T", "ended at T (reason)".
func sessionState(s api.SessionView, now time.Time) string {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case s.Status == "active" && now.Before(s.Expires):
		return "is active until " + at(s.Expires)
	case s.Status == "active" || s.EndReason == "expired":
		return "expired at " + at(s.Expires)
	}
	msg := "ended"
	if s.Ended != nil {
		msg += " at " + at(*s.Ended)
	}
	if s.EndReason != "" {
		msg += " (" + s.EndReason + ")"
	}
	return msg
}

func sessionShow(args []string, stdout io.Writer) error {
	fs := flags("session show")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out, "the session ID")
	if err != nil {
		return err
	}
	id := fs.Arg(0)
	var v api.SessionView
	if done, err := c.call("GET", "/v1/sessions/"+url.PathEscape(id), nil, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "session    %s\nspiffe id  %s\nagent      %s (sponsor %s)\nparent     %s\ndepth      %d\nobjective  %s\nscope      %s\nstatus     %s\nexpires    %s\n",
		v.ID, v.SPIFFEID, v.Agent, v.Sponsor, v.Parent, v.Depth, v.Objective, scopeText(v.Scope), sessionState(v, time.Now()), v.Expires.Format(time.RFC3339))
	return nil
}

func sessionList(args []string, stdout io.Writer) error {
	fs := flags("session list")
	out := outputFlag(fs)
	agent := fs.String("agent", "", "only this `agent`'s sessions")
	c, err := parseOperator(fs, args, out)
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
	now := time.Now()
	for _, v := range vs {
		status := v.Status
		if v.Status == "active" && !now.Before(v.Expires) || v.EndReason == "expired" {
			status = "expired"
		}
		rows = append(rows, []string{v.ID, v.Agent, v.Parent, status, v.Expires.Format(time.RFC3339)})
	}
	table(stdout, "SESSION\tAGENT\tPARENT\tSTATUS\tEXPIRES", rows)
	return nil
}

func tokenExchange(args []string, stdout io.Writer) error {
	fs := flags("token exchange")
	out := outputFlag(fs)
	session := fs.String("session", "", "the delegating (parent) `session`")
	agent := fs.String("agent", "", "sub-agent `name` (default: the parent's agent)")
	ttl := fs.Duration("ttl", 0, "child lifetime (default: the parent's remaining)")
	dir := fs.String("out", "", "credentials `directory` for the child (default $WARD_HOME/sessions/CHILD)")
	var allow multi
	fs.Var(&allow, "allow", "child scope `pattern` (repeatable), must lie within the parent's")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *session == "" {
		return usagef("needs --session PARENT")
	}
	c, parent, err := sessionClient(*session)
	if err != nil {
		return err
	}
	if err := sessionUsable(parent, time.Now()); err != nil {
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

// sessionUsable refuses session credentials that expired, saying when;
// whether the node still honours them otherwise, only it can say.
func sessionUsable(creds *sessioncred.Credentials, now time.Time) error {
	if exp := creds.Expires; !exp.IsZero() && !now.Before(exp) {
		return fmt.Errorf("session %s expired at %s (%s ago): start a new session", creds.Session, exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second))
	}
	return nil
}

func toolsList(args []string, stdout io.Writer) error {
	fs := flags("tools list")
	out := outputFlag(fs)
	srv := fs.String("server", "", "only this upstream `server`")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	return listTools(c, *srv, *out, stdout)
}

func toolsApprove(args []string, stdout io.Writer) error {
	fs := flags("tools approve")
	out := outputFlag(fs)
	hash := fs.String("hash", "", "the `hash` of the definition you reviewed (ward tools list -o json)")
	c, err := parseOperator(fs, args, out, "the tool's SERVER.TOOL name")
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	var v api.PinView
	if done, err := c.call("POST", "/v1/tools/approve", map[string]string{"name": name, "hash": *hash}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tool %s approved at %s\n", v.Name, v.ApprovedHash)
	return nil
}

// loadPolicyArgs parses ward policy check|explain and loads the policies
// named.
func loadPolicyArgs(path string, args []string) (*policy.Set, string, error) {
	fs := flags(path)
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return nil, "", err
	}
	if fs.NArg() == 0 {
		return nil, "", usagef("needs policy files or directories")
	}
	set, err := server.LoadPolicies(fs.Args())
	return set, *out, err
}

func policyCheck(args []string, stdout io.Writer) error {
	set, out, err := loadPolicyArgs("policy check", args)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(stdout, map[string]any{"ok": true, "policies": set.Policies()})
	}
	fmt.Fprintf(stdout, "ok: %d policies\n", set.Len())
	for _, p := range set.Policies() {
		fmt.Fprintf(stdout, "  %-32s %-7s %s\n", p.ID, p.Effect, p.Position)
	}
	return nil
}

func policyExplain(args []string, stdout io.Writer) error {
	set, out, err := loadPolicyArgs("policy explain", args)
	if err != nil {
		return err
	}
	// The Cedar ward enforces, rules compiled, in evaluation order.
	if out == "json" {
		return printJSON(stdout, set.Policies())
	}
	for _, p := range set.Policies() {
		fmt.Fprintf(stdout, "// %s (%s %s)\n%s\n\n", p.ID, p.Effect, p.Position, p.Text)
	}
	return nil
}

func policyTestCmd(args []string, stdout io.Writer) error {
	fs := flags("policy test")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	return policyTest(fs.Args(), *out, stdout)
}

// policySchema prints ward's Cedar schema: as written (with its comments)
// for text, in Cedar's JSON schema format for -o json.
func policySchema(args []string, stdout io.Writer) error {
	fs := flags("policy schema")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *out == "text" {
		_, err := stdout.Write(policy.Schema())
		return err
	}
	var s cedarschema.Schema
	if err := s.UnmarshalCedar(policy.Schema()); err != nil {
		return fmt.Errorf("ward's schema: %w", err)
	}
	b, err := s.MarshalJSON()
	if err != nil {
		return fmt.Errorf("ward's schema: %w", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("ward's schema: %w", err)
	}
	return printJSON(stdout, v)
}

// adminCredential mints an admin credential with the node stopped. It
// refuses a directory that holds no node: minting would create one.
func adminCredential(args []string, stdout io.Writer) error {
	fs := flags("admin credential")
	out := outputFlag(fs)
	data := fs.String("data", server.DefaultData, "the node's data `directory`")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := holdsNode(*data); err != nil {
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
	if *out == "json" {
		return printJSON(stdout, map[string]string{"principal": authority.AdminPrincipal, "credential": cred})
	}
	fmt.Fprintf(stdout, "admin credential (shown once): %s\n", cred)
	return nil
}

// nodeFiles are what every node's data directory holds once it has started.
var nodeFiles = []string{"ward.db", "bundle.pem", filepath.Join("ca", "ca.key")}

// holdsNode refuses a data directory that holds no ward node (a typo in
// --data): a usage error naming what is missing.
func holdsNode(data string) error {
	st, err := os.Stat(data)
	if err != nil {
		return usagef("--data %s: %v: name the data directory of a node (ward up --data DIR creates one)", data, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return usagef("--data %s is not a directory: name the data directory of a node", data)
	}
	for _, f := range nodeFiles {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			return usagef("--data %s holds no ward node (no %s): name the data directory of a node (ward up --data DIR creates one)", data, f)
		}
	}
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
		return usagef("needs a test file: ward policy test CASES.yaml [FILE|DIR...]")
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
