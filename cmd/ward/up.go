package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	configPath := fs.String("config", "", "YAML configuration file (default: embedded defaults)")
	data := fs.String("data", "", "data directory (default ./ward-data, or the config's data)")
	addr := fs.String("addr", "", "listen address (default 127.0.0.1:8443)")
	allowUnverified := fs.Bool("allow-unverified-audit", false, "start even if the audit log fails verification (recorded in the log)")
	reinitStore := fs.Bool("reinit-store", false, "start over with an empty store next to an existing audit log and CA, after the store was lost (recorded in the log)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
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
	cfg.AllowUnverifiedAudit = *allowUnverified
	cfg.ReinitStore = *reinitStore
	cfg.Version = version
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := server.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := node.Listen(); err != nil {
		return err
	}
	data2, _ := filepath.Abs(cfgData(cfg))
	url := node.URL()
	fmt.Fprintf(stdout, "ward %s: trust domain spiffe://%s\n", version, node.CA.TrustDomain().Name())
	fmt.Fprintf(stdout, "  data          %s  (CA keys, store ward.db, audit log, policies)\n", data2)
	fmt.Fprintf(stdout, "  JSON API      %s/v1/\n", url)
	fmt.Fprintf(stdout, "  MCP gateway   %s/mcp  (Streamable HTTP; agents authenticate with their SVID or grant + DPoP)\n", url)
	fmt.Fprintf(stdout, "  trust bundle  %s/.well-known/spiffe-bundle  (CA certificate: %s)\n", url, filepath.Join(data2, "bundle.pem"))
	fmt.Fprintf(stdout, "  upstreams     %v; policies: %d loaded from %v\n", node.Gateway.Servers(), node.Policies().Len(), cfgPolicies(cfg, data2))
	fmt.Fprintf(stdout, "  approvers     %s  (escalated calls: ward approvals list, ward approvals approve ID)\n", approversLine(node.ApproverGroups()))
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
			url, filepath.Join(data2, "bundle.pem"), node.AdminCredential)
	} else {
		fmt.Fprintf(stdout, "\nUse the admin credential shown at first start (export WARD_SERVER=%s WARD_CA=%s WARD_TOKEN=…);\nlost it? stop ward and run: ward admin credential --data %s\n",
			url, filepath.Join(data2, "bundle.pem"), data2)
	}
	fmt.Fprintln(stdout, "\nSIGHUP reloads policies. Ctrl-C stops.")
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
