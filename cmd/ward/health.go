package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthTimeout bounds `ward health`: a health check that hangs is
// a failed one.
const defaultHealthTimeout = 5 * time.Second

// errUnready makes `ward health` exit 1 when the node answered but is not
// ready, after its answer was printed.
var errUnready = errors.New("the node is not ready")

// cmdHealth asks the node WARD_SERVER names, verified with WARD_CA,
// whether it is ready: GET /healthz, which needs no credential. It prints
// the node's status (and, unready, why) and exits 0 when the node is
// ready or degraded, 1 when it is unready or does not answer in time. The
// container image's HEALTHCHECK runs it.
func cmdHealth(args []string, stdout io.Writer) error {
	fs := flags("health")
	out := outputFlag(fs)
	timeout := fs.Duration("timeout", defaultHealthTimeout, "give up after `D`")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout %v: give a positive duration", *timeout)
	}
	pool, err := trustPool()
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: *timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get(serverURL() + "/healthz")
	if err != nil {
		return fmt.Errorf("ask %s/healthz: %w", serverURL(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read %s/healthz: %w", serverURL(), err)
	}
	var h struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Checks []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Status == "" {
		return fmt.Errorf("%s/healthz answered HTTP %d, not a readiness report", serverURL(), resp.StatusCode)
	}
	if *out == "json" {
		if err := printJSON(stdout, json.RawMessage(b)); err != nil {
			return err
		}
	} else {
		var failed []string
		for _, c := range h.Checks {
			if !c.OK {
				failed = append(failed, c.Name+": "+c.Reason)
			}
		}
		line := h.Status
		if len(failed) > 0 {
			line += " (" + strings.Join(failed, "; ") + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	if resp.StatusCode != http.StatusOK {
		return errUnready
	}
	return nil
}
