package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/ward-dev/ward/internal/server"
)

func cmdUp(args []string, stdout io.Writer) error {
	fs := flags("up")
	configPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults)")
	data := fs.String("data", "", "data `directory` (default ./ward-data, or the config's data)")
	addr := fs.String("addr", "", "listen address `HOST:PORT` (default 127.0.0.1:8443)")
	allowUnverified := fs.Bool("allow-unverified-audit", false, "start even if the audit log fails verification (recorded in the log)")
	reinitStore := fs.Bool("reinit-store", false, "start over with an empty store next to an existing audit log and CA, after the store was lost (recorded in the log)")
	logf := addLogFlags(fs)
	join := fs.String("join", "", "join the ward system whose keys are sealed in the configured PostgreSQL store, with the join token in `FILE` (a copy of a node's DATA/keys/join.token)")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *data != "" {
		cfg.Data = *data
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *join != "" {
		if cfg.StoreDSN == "" {
			return fmt.Errorf("--join: several nodes share a PostgreSQL store; name it in the configuration (store: {postgres: DSN})")
		}
		if strings.HasPrefix(strings.TrimSpace(*join), "ward-join-v1:") {
			// Not echoed: an error message ends up in logs.
			return usagef("--join takes a FILE holding the join token (a copy of a node's DATA/keys/join.token), not the token itself")
		}
		tok, err := os.ReadFile(*join)
		if err != nil {
			return fmt.Errorf("--join: %w", err)
		}
		if _, err := server.ParseJoinToken(string(tok)); err != nil {
			return fmt.Errorf("--join %s: %w", *join, err)
		}
		cfg.JoinToken = string(tok)
	}
	cfg.AllowUnverifiedAudit = *allowUnverified
	cfg.ReinitStore = *reinitStore
	cfg.Version = version
	cfg.ProbeUpstreams = true
	if cfg.Logger, err = logf.logger(os.Stderr); err != nil {
		return usagef("%v", err)
	}

	// Check first what can fail a start, before anything is created: a
	// first start that failed halfway would leave a node that is neither
	// usable (its one-time admin credential never shown) nor new (a later
	// start refuses a store lost next to an existing CA). The policies:
	if paths := cfgPolicies(cfg, cfgData(cfg)); len(cfg.Policies) > 0 || dirExists(paths[0]) {
		if _, err := server.LoadPolicies(paths); err != nil {
			return fmt.Errorf("%w (nothing was created or changed)", err)
		}
	}
	// and the addresses: listen first.
	apiAddr := cfg.Addr
	if apiAddr == "" {
		apiAddr = server.DefaultAddr
	}
	held, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w (nothing was created or changed)", apiAddr, err)
	}
	defer held.Close()
	if cfg.Egress != nil && cfg.Egress.Addr != "" {
		eg, err := net.Listen("tcp", cfg.Egress.Addr)
		if err != nil {
			return fmt.Errorf("egress proxy: listen %s: %w (nothing was created or changed)", cfg.Egress.Addr, err)
		}
		eg.Close() // the node binds it while it opens
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := server.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	held.Close()
	if err := node.Listen(); err != nil {
		if node.AdminCredential != "" {
			// Taken in the instant between the check and the start: the
			// node exists now, so its credential must not be lost.
			return fmt.Errorf("%w; the node was created in %s: its admin credential (shown once): %s", err, cfgData(cfg), node.AdminCredential)
		}
		return err
	}
	data2, _ := filepath.Abs(cfgData(cfg))
	url := node.URL()
	bundle := filepath.Join(data2, "bundle.pem")
	if *out == "json" {
		info := map[string]any{"version": version, "trust_domain": node.CA.TrustDomain().Name(), "data": data2,
			"api": url + "/v1/", "mcp": url + "/mcp", "bundle": url + "/.well-known/spiffe-bundle", "bundle_file": bundle,
			"upstreams": node.Gateway.Servers(), "policies": node.Policies().Len(), "policy_paths": cfgPolicies(cfg, data2),
			"approvers": node.ApproverGroups(), "metrics": url + "/metrics", "tracing": cfg.Tracing.OTLPEndpoint != "",
			"console": url + "/console/"}
		if node.Witness != nil {
			info["witness"] = map[string]any{"url": url + "/witness", "logs": len(cfg.WitnessFor), "key": node.Witness.VerifierKey()}
		}
		if addr := node.EgressAddr(); addr != "" {
			info["egress"] = "http://" + addr
		}
		if node.AdminCredential != "" {
			info["admin_credential"] = node.AdminCredential // first start only
		}
		if id := node.NodeID(); id != "" {
			info["node"] = map[string]any{"id": id, "store": node.Store.Location(), "join_token_file": filepath.Join(data2, "keys", "join.token")}
		}
		if err := printJSON(stdout, info); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "ward %s: trust domain spiffe://%s\n", version, node.CA.TrustDomain().Name())
		fmt.Fprintf(stdout, "  data          %s  (CA keys, store ward.db, audit log, policies)\n", data2)
		fmt.Fprintf(stdout, "  JSON API      %s/v1/\n", url)
		fmt.Fprintf(stdout, "  MCP gateway   %s/mcp  (Streamable HTTP; agents authenticate with their SVID or grant + DPoP)\n", url)
		fmt.Fprintf(stdout, "  console       %s/console/  (accounts: ward console user add NAME --role viewer|approver|admin --data %s)\n", url, data2)
		fmt.Fprintf(stdout, "  trust bundle  %s/.well-known/spiffe-bundle  (CA certificate: %s)\n", url, bundle)
		fmt.Fprintf(stdout, "  upstreams     %v; policies: %d loaded from %v\n", node.Gateway.Servers(), node.Policies().Len(), cfgPolicies(cfg, data2))
		fmt.Fprintf(stdout, "  approvers     %s  (escalated calls: ward approvals list, ward approvals approve ID)\n", approversLine(node.ApproverGroups()))
		if id := node.NodeID(); id != "" {
			fmt.Fprintf(stdout, "  node          %s of the system in %s (other nodes join with: ward up --join FILE, FILE a copy of %s)\n",
				id, node.Store.Location(), filepath.Join(data2, "keys", "join.token"))
		}
		fmt.Fprintf(stdout, "  metrics       %s/metrics  (Prometheus; from loopback, or with an admin credential)\n", url)
		if cfg.Tracing.OTLPEndpoint != "" {
			fmt.Fprintf(stdout, "  traces        exported by OTLP/HTTP\n")
		}
		if node.Witness != nil {
			fmt.Fprintf(stdout, "  witness       %s/witness  (C2SP tlog-witness for %d log(s); key for their witness policies: %s)\n", url, len(cfg.WitnessFor), node.Witness.VerifierKey())
		}
		if addr := node.EgressAddr(); addr != "" {
			fmt.Fprintf(stdout, "  egress proxy  http://%s  (sessions get HTTP(S)_PROXY credentials from POST /v1/egress/token)\n", addr)
		}
		if node.Publisher != nil {
			fmt.Fprintf(stdout, "  checkpoints   published only once cosigned as the witness policy requires\n")
		}
		if node.AdminCredential != "" {
			fmt.Fprintf(stdout, "\nAdmin credential (shown once; keep it safe):\n  export WARD_SERVER=%s WARD_CA=%s WARD_TOKEN=%s\n",
				url, bundle, node.AdminCredential)
		} else {
			fmt.Fprintf(stdout, "\nUse the admin credential shown at first start (export WARD_SERVER=%s WARD_CA=%s WARD_TOKEN=…);\nlost it? stop ward and run: ward admin credential --data %s\n",
				url, bundle, data2)
		}
		fmt.Fprintln(stdout, "\nSIGHUP reloads policies. Ctrl-C stops.")
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if n, err := node.ReloadPolicies(); err != nil {
				cfg.Logger.Error("policy reload failed; the previous policies stay in force", "err", err)
			} else {
				cfg.Logger.Info("policies reloaded", "policies", n)
			}
		}
	}()
	return node.Serve(ctx)
}

func cfgData(cfg server.Config) string {
	if cfg.Data == "" {
		return server.DefaultData
	}
	return cfg.Data
}

func cfgPolicies(cfg server.Config, data string) []string {
	if len(cfg.Policies) == 0 {
		return []string{filepath.Join(data, "policies")}
	}
	return cfg.Policies
}

func dirExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// approversLine lists the approver groups in force: "security: admin".
func approversLine(groups map[string][]string) string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, g := range names {
		parts[i] = "group " + g + ": " + strings.Join(groups[g], ", ")
	}
	return strings.Join(parts, "; ")
}
