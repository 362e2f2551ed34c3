// Package story is what the runnable stories in examples/ share: it finds
// the node and the ward command, runs ward commands the way a user types
// them (printing each command and what it printed), and plays the agent's
// side of a session: an MCP client that reaches the node's gateway with the
// session's credentials, and an HTTP client for the node's API and egress
// proxy.
//
// The agents here are scripted: a story is a program making the calls an
// agent would make, so that what ward decides can be seen, and tested,
// without a language model.
//
// A story runs against a node the user started (`ward up --config
// examples/NAME/ward.yaml`) and reads where it is from the environment that
// `ward up` prints: WARD_SERVER, WARD_CA and WARD_TOKEN (the admin
// credential). The node's data directory, for `ward audit search`, is the
// directory holding WARD_CA (ward up prints WARD_CA as DATA/bundle.pem),
// unless -data says otherwise. The ward command is $WARD_BIN, else `ward`
// on PATH (go install ./cmd/ward).
package story

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Story is one run of a story against a node.
type Story struct {
	Name   string // the story's directory under examples/
	Ward   string // the ward command
	Data   string // the node's data directory
	Server string // the node's URL
	Home   string // WARD_HOME of this run: where session credentials go
	Out    io.Writer
	// MaxLines bounds the lines of a result a story prints (0:
	// DefaultMaxLines).
	MaxLines int

	token string
	http  *http.Client

	mu     sync.Mutex
	agents []*Agent // started, for Close
}

// DefaultMaxLines is how many lines of a result a story prints.
const DefaultMaxLines = 6

// callTimeout bounds every request a story makes of the node.
const callTimeout = 30 * time.Second

// New reads the flags and environment of the story named name (its
// directory under examples/). The caller must Close it.
func New(name string) (*Story, error) {
	data := flag.String("data", "", "the node's data directory (default: the directory of $WARD_CA)")
	flag.Parse()
	s := &Story{Name: name, Out: os.Stdout, Server: strings.TrimRight(os.Getenv("WARD_SERVER"), "/"), token: os.Getenv("WARD_TOKEN")}
	ca := os.Getenv("WARD_CA")
	if s.Server == "" || ca == "" || s.token == "" {
		return nil, errors.New("set WARD_SERVER, WARD_CA and WARD_TOKEN: paste the export line `ward up` printed (see examples/README.md)")
	}
	s.Data = *data
	if s.Data == "" {
		s.Data = filepath.Dir(ca)
	}
	if _, err := os.Stat(filepath.Join(s.Data, "audit")); err != nil {
		return nil, fmt.Errorf("%s holds no ward audit log: give the node's data directory with -data DIR", s.Data)
	}
	s.Ward = os.Getenv("WARD_BIN")
	if s.Ward == "" {
		p, err := exec.LookPath("ward")
		if err != nil {
			return nil, errors.New("the ward command is not on PATH: run `go install ./cmd/ward` (or set WARD_BIN)")
		}
		s.Ward = p
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("WARD_CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("WARD_CA %s: no certificate", ca)
	}
	s.http = &http.Client{Timeout: callTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	// Session credentials of this run go to a directory of its own, not
	// to the user's ~/.ward.
	if s.Home, err = os.MkdirTemp("", "ward-story-"); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the MCP sessions of the agents the story started (a
// gateway keeps an MCP session, and its upstream servers, until its client
// closes it or it idles out) and removes the run's session credentials.
func (s *Story) Close() {
	s.mu.Lock()
	agents := s.agents
	s.agents = nil
	s.mu.Unlock()
	for _, a := range agents {
		a.Close()
	}
	os.RemoveAll(s.Home)
}

// Suffix returns a short suffix that makes names of this run unique, so a
// story can be run again against the same node.
func Suffix() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Title prints the story's title and what it is about.
func (s *Story) Title(title string, intro ...string) {
	fmt.Fprintf(s.Out, "\n%s\n%s\n", title, strings.Repeat("=", len([]rune(title))))
	for _, l := range intro {
		fmt.Fprintln(s.Out, l)
	}
}

// Part prints the heading of one part of the story.
func (s *Story) Part(heading string) {
	fmt.Fprintf(s.Out, "\n── %s %s\n", heading, strings.Repeat("─", max(3, 72-len([]rune(heading)))))
}

// Say prints the narrator's lines.
func (s *Story) Say(format string, args ...any) {
	fmt.Fprintf(s.Out, format+"\n", args...)
}

// Run runs `ward ARGS...` as a user would, printing the command and what it
// printed (stdout and stderr, indented), and returns its standard output.
// A command that fails returns an error holding what it printed on
// standard error.
func (s *Story) Run(args ...string) (string, error) {
	fmt.Fprintf(s.Out, "$ ward %s\n", shellQuote(args))
	out, errOut, err := s.run(args...)
	indent(s.Out, out+errOut)
	if err != nil {
		return out, fmt.Errorf("ward %s: %v: %s", args[0], err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// Do is Run for a command whose output the story does not need.
func (s *Story) Do(args ...string) error {
	_, err := s.Run(args...)
	return err
}

// Quiet runs `ward ARGS...` without printing anything.
func (s *Story) Quiet(args ...string) (string, error) {
	out, errOut, err := s.run(args...)
	if err != nil {
		return out, fmt.Errorf("ward %s: %v: %s", args[0], err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// RunAs runs `ward ARGS...` with another principal's credential as
// WARD_TOKEN (an approver's, say), printing the command with the
// credential named by who.
func (s *Story) RunAs(who, token string, args ...string) (string, error) {
	fmt.Fprintf(s.Out, "$ WARD_TOKEN=$%s ward %s\n", who, shellQuote(args))
	out, errOut, err := s.runEnv([]string{"WARD_TOKEN=" + token}, args...)
	indent(s.Out, out+errOut)
	if err != nil {
		return out, fmt.Errorf("ward %s: %v: %s", args[0], err, strings.TrimSpace(errOut))
	}
	return out, nil
}

func (s *Story) run(args ...string) (string, string, error) { return s.runEnv(nil, args...) }

func (s *Story) runEnv(env []string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Ward, args...)
	cmd.Env = append(append(os.Environ(), "WARD_HOME="+s.Home), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// Sponsor runs `ward sponsor create NAME FLAGS...` unless the sponsor
// exists already (from an earlier run of a story against the same node),
// which `ward sponsor list` tells.
func (s *Story) Sponsor(name string, flags ...string) error {
	args := append([]string{"sponsor", "create", name}, flags...)
	out, err := s.Quiet("sponsor", "list", "-o", "json")
	if err != nil {
		return err
	}
	var sponsors []struct{ Name string }
	if err := json.Unmarshal([]byte(out), &sponsors); err != nil {
		return fmt.Errorf("ward sponsor list -o json: %w", err)
	}
	for _, sp := range sponsors {
		if sp.Name == name {
			fmt.Fprintf(s.Out, "$ ward %s\n", shellQuote(args))
			indent(s.Out, "(exists already, from an earlier run)\n")
			return nil
		}
	}
	_, err = s.Run(args...)
	return err
}

// Audit prints how to find the story in the audit log and what that finds:
// `ward audit search --data DATA ARGS...`, run for real.
func (s *Story) Audit(args ...string) (string, error) {
	return s.Run(append([]string{"audit", "search", "--data", s.Data}, args...)...)
}

// API does a JSON request to the node's API as the operator (WARD_TOKEN).
func (s *Story) API(method, path string, body, out any) error {
	return doJSON(s.http, s.token, method, s.Server+path, body, out)
}

// doJSON does a JSON request with client (and a bearer token, if any) and
// decodes a 2xx answer into out.
func doJSON(c *http.Client, token, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// HTTPError is an answer of the node's API with a status of 300 or more.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	var v struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(e.Body), &v) == nil && v.Error != "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, v.Error)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// Check records an expectation of the story: what ward should have done.
// A story that sees ward do otherwise says so and exits non-zero, so that
// a broken behaviour never reads as a told story.
func (s *Story) Check(ok bool, format string, args ...any) {
	if ok {
		return
	}
	fmt.Fprintf(s.Out, "\nUNEXPECTED: "+format+"\n", args...)
	s.Close()
	os.Exit(1)
}

// Fatal ends the story on an error it cannot go on from.
func (s *Story) Fatal(err error) {
	fmt.Fprintf(os.Stderr, "\nthe story could not go on: %v\n", err)
	if msg := err.Error(); strings.Contains(msg, "unknown tool") || strings.Contains(msg, "upstream") {
		fmt.Fprintf(os.Stderr, "is the node running with this story's configuration (ward up --config examples/%s/ward.yaml),\n"+
			"from the repository's root, with its servers installed (make deps)? ward up's log says which server failed\n", s.Name)
	}
	s.Close()
	os.Exit(1)
}

// credential matches the credentials ward prints once (ward_…): a story
// shows that one was made, not the secret.
var credential = regexp.MustCompile(`ward_[A-Za-z0-9_-]{16,}`)

func indent(w io.Writer, text string) {
	text = credential.ReplaceAllString(strings.TrimRight(text, "\n"), "ward_…")
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		fmt.Fprintln(w, "  "+l)
	}
}

// shellQuote renders args the way a user would type them in a shell.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// Exit ends a story that could not start.
func Exit(err error) {
	fmt.Fprintf(os.Stderr, "%v\n", err)
	os.Exit(2)
}

// Event is an audit log event as `ward audit search -o json` prints it.
type Event struct {
	Index   uint64          `json:"index"`
	Type    string          `json:"type"`
	Session string          `json:"session"`
	Agent   string          `json:"agent"`
	Actor   string          `json:"actor"`
	Data    json.RawMessage `json:"data"`
}

// Events runs `ward audit search --data DATA ARGS... -o json` without
// printing it and returns the events found.
func (s *Story) Events(args ...string) ([]Event, error) {
	out, err := s.Quiet(append(append([]string{"audit", "search", "--data", s.Data}, args...), "-o", "json", "-n", "0")...)
	if err != nil {
		return nil, err
	}
	var events []Event
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			return nil, fmt.Errorf("ward audit search -o json: %w", err)
		}
		events = append(events, e)
	}
	return events, nil
}

// ApprovalArgs returns the arguments of `ward approvals SUB ID FLAGS...`.
// An approval request's id is random base64url and starts with "-" one
// time in 64; ward's flag parsing then takes it for a flag ("flag provided
// but not defined"), so such an id goes last, after "--", and the story
// says why.
func (s *Story) ApprovalArgs(sub, id string, flags ...string) []string {
	if strings.HasPrefix(id, "-") {
		s.Say("(request %s starts with \"-\": ward would read it as a flag, so it goes after --)", id)
		return append(append([]string{"approvals", sub}, flags...), "--", id)
	}
	return append([]string{"approvals", sub, id}, flags...)
}
