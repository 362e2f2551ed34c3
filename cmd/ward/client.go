package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/internal/strictjson"
)

const (
	defaultServer = "https://127.0.0.1:8443"
	// maxResponse bounds what the CLI reads from the node.
	maxResponse = 8 << 20
	callTimeout = 60 * time.Second
)

// client talks to a ward node's JSON API.
type client struct {
	base  string
	http  *http.Client
	token string // operator credential, if any
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func serverURL() string { return strings.TrimRight(env("WARD_SERVER", defaultServer), "/") }

// trustPool returns the CA pool to verify the node with.
func trustPool() (*x509.CertPool, error) {
	path := os.Getenv("WARD_CA")
	if path == "" {
		cand := filepath.Join("ward-data", "bundle.pem")
		if _, err := os.Stat(cand); err != nil {
			return nil, errors.New("set WARD_CA to the node's CA bundle (DATA/bundle.pem)")
		}
		path = cand
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("WARD_CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("WARD_CA %s: no certificate found", path)
	}
	return pool, nil
}

// operatorClient authenticates with WARD_TOKEN.
func operatorClient() (*client, error) {
	tok := os.Getenv("WARD_TOKEN")
	if tok == "" {
		return nil, errors.New("set WARD_TOKEN to an operator or sponsor credential (ward up prints the admin credential on first start)")
	}
	pool, err := trustPool()
	if err != nil {
		return nil, err
	}
	return &client{base: serverURL(), token: tok, http: &http.Client{Timeout: callTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}, nil
}

// apiError is an error the node answered with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.msg, e.status) }

func (c *client) do(method, path string, body, out any) error {
	return c.doCtx(context.Background(), method, path, body, out)
}

// doCtx is do bounded by ctx as well as by callTimeout.
func (c *client) doCtx(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ct = bytes.NewReader(buf), "application/json"
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach ward at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read ward's answer: %w", err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("ward's answer to %s %s is larger than %d bytes; narrow the request", method, path, maxResponse)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		msg := strings.TrimSpace(string(data))
		if strictjson.UnmarshalOpen(data, &e) == nil && e.Error != "" {
			msg = e.Error
			if e.Description != "" {
				msg += ": " + e.Description
			}
		}
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return &apiError{resp.StatusCode, msg}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		if err := strictjson.Valid(data); err != nil {
			return fmt.Errorf("ward's answer to %s %s: %w", method, path, err)
		}
		*raw = data
		return nil
	}
	// Answers are read as strictly as the node reads requests, except that
	// members this client does not know are ignored: a newer node may add
	// some.
	if err := strictjson.UnmarshalOpen(data, out); err != nil {
		return fmt.Errorf("ward's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// wardHome is where session credentials live.
func wardHome() string {
	if h := os.Getenv("WARD_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".ward"
	}
	return filepath.Join(home, ".ward")
}

func sessionDir(id string) string { return filepath.Join(wardHome(), "sessions", id) }

// sessionClient authenticates as a session with grant + DPoP.
func sessionClient(id string) (*client, *sessioncred.Credentials, error) {
	creds, err := sessioncred.Load(sessionDir(id))
	if err != nil {
		return nil, nil, fmt.Errorf("session %s: %w (credentials are kept in %s)", id, err, sessionDir(id))
	}
	base := creds.Server
	if base == "" {
		base = serverURL()
	}
	hc := creds.HTTPClient(false)
	hc.Timeout = callTimeout
	return &client{base: strings.TrimRight(base, "/"), http: hc}, creds, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// call does one API call into v and, for -o json, prints v; it reports
// whether it printed, so text output follows only when it did not.
func (c *client) call(method, path string, body, v any, out string, stdout io.Writer) (bool, error) {
	if err := c.do(method, path, body, v); err != nil {
		return false, err
	}
	if out == "json" {
		return true, printJSON(stdout, v)
	}
	return false, nil
}
