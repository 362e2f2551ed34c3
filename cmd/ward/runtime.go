package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/ward-dev/ward/internal/sandbox"
	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/internal/strictjson"
)

func init() { sandbox.RegisterService("ward", runtimeService) }

// runtimeService runs inside the runtime's init, before the program: it
// generates the session key there (it never leaves init's memory, which
// the program cannot read), has ward outside start the session with its
// certificate request, fetches the session's egress proxy credentials,
// and serves the session's MCP endpoint on the runtime's loopback,
// forwarding every request to the node by mutual TLS with the session's
// X.509-SVID. The program gets only addresses: nothing it holds works
// anywhere but through ward.
func runtimeService(ctx context.Context, rt *sandbox.Runtime) ([]string, error) {
	key, err := sessioncred.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		return nil, err
	}
	var v runtimeIssued
	if err := rt.Call("session", map[string]string{"csr": base64.RawURLEncoding.EncodeToString(csr)}, &v); err != nil {
		return nil, err
	}
	svid, err := sessioncred.ParseCertificates([]byte(v.X509SVID))
	if err != nil {
		return nil, fmt.Errorf("the session's X.509-SVID: %w", err)
	}
	bundle := x509.NewCertPool()
	if !bundle.AppendCertsFromPEM([]byte(v.Bundle)) {
		return nil, errors.New("the trust bundle holds no certificate")
	}
	creds := &sessioncred.Credentials{Key: key, SVID: svid, Bundle: bundle, Grant: v.Grant, JWTSVID: v.JWTSVID,
		Info: sessioncred.Info{Session: v.Session, SPIFFEID: v.SPIFFEID, Agent: v.Agent, Server: v.Server, Expires: v.Expires}}
	node, err := url.Parse(v.Server)
	if err != nil {
		return nil, err
	}
	// The session's requests go to the node by mutual TLS with its
	// X.509-SVID, over connections kept open (no proof to sign per call),
	// unless the node does not see the certificate (TLS terminated in
	// front of it): then with the grant and a DPoP proof per request.
	tr, _, err := creds.NodeTransport(ctx, v.Server, func(ctx context.Context, _, _ string) (net.Conn, error) { return rt.Dial(ctx, "node") })
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", v.Session, err)
	}

	env := []string{"WARD_SESSION=" + v.Session, "WARD_SPIFFE_ID=" + v.SPIFFEID,
		// localhost, not 127.0.0.1, so that NO_PROXY can keep the MCP
		// endpoint off the proxy while 127.0.0.1 (a test host) is not.
		"WARD_MCP_URL=http://localhost:" + strconv.Itoa(runtimeMCPPort) + "/mcp", "NO_PROXY=localhost", "no_proxy=localhost"}
	proxy, ca, err := egressToken(ctx, tr, node)
	switch {
	case err != nil:
		// ward outside decides: it refuses to run a program it was asked
		// to let reach hosts, and says what to configure.
		if err := rt.Call("egress", map[string]string{"unavailable": err.Error()}, nil); err != nil {
			return nil, err
		}
	default:
		if err := rt.Call("egress", map[string]string{"addr": proxy.Host}, nil); err != nil {
			return nil, err
		}
		proxy.Host = "127.0.0.1:" + strconv.Itoa(runtimeProxyPort)
		p := proxy.String()
		env = append(env, "HTTP_PROXY="+p, "HTTPS_PROXY="+p, "http_proxy="+p, "https_proxy="+p, "ALL_PROXY="+p)
		if ca != "" {
			roots, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
			if err := rt.WriteFile("ca-certificates.pem", append(append(roots, '\n'), ca...)); err != nil {
				return nil, err
			}
			if err := rt.WriteFile("egress-ca.pem", []byte(ca)); err != nil {
				return nil, err
			}
			const all = "/run/ward/ca-certificates.pem"
			env = append(env, "SSL_CERT_FILE="+all, "CURL_CA_BUNDLE="+all, "REQUESTS_CA_BUNDLE="+all, "GIT_SSL_CAINFO="+all,
				"NODE_EXTRA_CA_CERTS=/run/ward/egress-ca.pem")
		}
	}
	target, err := url.Parse(strings.TrimRight(v.Server, "/") + "/mcp")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sessioncred.Sidecar(target, tr, runtimeMCPPort), ReadHeaderTimeout: sessioncred.DefaultHeaderTimeout, IdleTimeout: sessioncred.DefaultIdleTimeout}
	for i, addr := range []string{"127.0.0.1", "[::1]"} {
		ln, err := net.Listen("tcp", addr+":"+strconv.Itoa(runtimeMCPPort))
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("the session's MCP endpoint: %w", err)
			}
			continue // no IPv6 loopback: localhost is 127.0.0.1 alone
		}
		go srv.Serve(ln)
	}
	return env, nil
}

// egressToken asks the node for the session's egress proxy URL (with its
// credentials) and the CA of brokered HTTPS, if any.
func egressToken(ctx context.Context, rt http.RoundTripper, node *url.URL) (*url.URL, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", node.JoinPath("/v1/egress/token").String(), bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, "", errors.New("the node runs no egress proxy")
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, "", fmt.Errorf("egress token: HTTP %d", resp.StatusCode)
	}
	var out struct {
		ProxyURL string `json:"proxy_url"`
		CA       string `json:"ca"`
	}
	if err := strictjson.UnmarshalOpen(b, &out); err != nil {
		return nil, "", err
	}
	u, err := url.Parse(out.ProxyURL)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("egress token: bad proxy URL")
	}
	return u, out.CA, nil
}
