// Package server assembles a ward node from its configuration: it opens (or,
// on first start, creates) the data directory with the trust domain's keys,
// the SQLite store and the audit log, loads policies, connects the gateway
// to its upstream MCP servers and serves the API over TLS.
//
// Data directory layout:
//
//	DATA/ca/           trust domain CA (ca.key, ca.pem) and JWT-SVID key (identity package): copies of the active keys
//	DATA/keys/         grant.key (ES256), receipt.key, audit.key / audit.pub (Ed25519 note key)
//	DATA/keys/ring.json  the signing keys and their rotation state, the truth the copies follow (keys.go)
//	DATA/keys/receipt.pub  the public keys that verify receipts, the active one first
//	DATA/ward.db       SQLite store (unless Config.StoreDSN names PostgreSQL)
//	DATA/audit/        the audit log (audit package)
//	DATA/audit.head    the audit log's latest durable checkpoint, kept outside DATA/audit
//	DATA/audit.head.journal  the audit log's batches not yet in its files (one sync per batch)
//	DATA/policies/     Cedar policies (default.cedar written on first start)
//	DATA/bundle.pem    the CA certificates in force (active, then retiring), for clients (public)
//	DATA/node.id       this node's id, on a store shared by several nodes (cluster.go)
//	DATA/keys/join.token  the join token of the system the node belongs to (cluster.go)
//
// Private keys are files of mode 0600 in directories of mode 0700; nothing
// here prints them.
package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/demo"
	"github.com/ward-dev/ward/internal/egress"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/keyring"
	"github.com/ward-dev/ward/internal/monitor"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/rules"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/taint"
	"github.com/ward-dev/ward/internal/telemetry"
	"github.com/ward-dev/ward/internal/webhook"
	"github.com/ward-dev/ward/internal/witness"
)

// Defaults for [Config].
const (
	DefaultTrustDomain = "ward.local"
	DefaultAddr        = "127.0.0.1:8443"
	DefaultData        = "ward-data"
	// expirySweep is how often ended-by-expiry sessions are revoked.
	expirySweep = 5 * time.Second
	// serverCertTTL is the lifetime of ward's own TLS certificate; it is
	// renewed in memory before it expires.
	serverCertTTL = 24 * time.Hour
)

//go:embed default.cedar
var defaultPolicy []byte

// Upstream configures one MCP server behind the gateway. Exactly one of
// Command, URL and Builtin is set.
type Upstream struct {
	Name    string
	Command []string          // stdio: argv
	Env     map[string]string // stdio: extra environment
	Dir     string            // stdio: working directory
	URL     string            // Streamable HTTP endpoint
	Headers map[string]string // HTTP: headers injected on every request (upstream credentials)
	Builtin string            // "demo"
	// Roots are the directories the server serves files from: its file
	// arguments are resolved as it will open them, decided and forwarded
	// in that form, and refused outside the roots (enforce.Config.Roots).
	Roots []string
	// Names is how the server's tools and prompts are shown to clients:
	// "auto" (default), "keep" or "prefix" (gateway.NameMode).
	Names string
	// Share lets the MCP sessions of one ward session share one
	// connection to the server (one process for a stdio server) instead
	// of one each (gateway.Share); the operator says the server keeps no
	// per-connection state that must stay apart between them.
	Share bool
}

// Config configures a node.
type Config struct {
	TrustDomain string
	Data        string // data directory
	Addr        string // listen address
	PublicURL   string // what agents dial, for DPoP; empty: derived per request
	Policies    []string
	Upstreams   []Upstream
	SessionTTL  time.Duration
	MaxTTL      time.Duration
	MaxDepth    int
	PinMode     enforce.PinMode
	// AllowUnverifiedAudit opens an audit log that fails verification (the
	// opening is itself recorded).
	AllowUnverifiedAudit bool
	// ReinitStore lets a node whose store is empty start over with a new
	// one next to an existing CA and audit log (which it otherwise
	// refuses: a lost store must not look like a first start). It is
	// recorded.
	ReinitStore bool
	// DPoPNonce makes every DPoP proof carry a nonce this node issued in
	// the last one to two DefaultNonceLifetime periods (RFC 9449 §8; see
	// dpopnonce.go).
	DPoPNonce bool
	// LogKeyOverlap is the longest a rotation of the audit log's key
	// waits, on a node of several, for every other node to cosign a
	// checkpoint signed by both keys before the old key retires anyway
	// (logkeys.go); 0: DefaultLogKeyOverlap.
	LogKeyOverlap time.Duration
	// Retention prunes finished approvals and sessions from the store
	// (retention.go); zero keeps them.
	Retention Retention
	// ApproverGroups maps an approver group (as named in @escalate) to the
	// principals (admins, sponsors) in it.
	ApproverGroups map[string][]string
	// ProbeUpstreams connects to every upstream once when the node starts
	// serving and warns (Logger) about upstreams it cannot reach and tool
	// or prompt names that clash between upstreams. `ward up` sets it.
	ProbeUpstreams bool
	// HoldTimeout is how long an escalated call waits for approval before
	// the agent gets an "approval pending" error (gateway default 15s).
	HoldTimeout time.Duration
	// ApprovalTimeout is how long an approval request stays open, and an
	// approval redeemable (default 15m).
	ApprovalTimeout time.Duration
	// Limits are the rate limits and budgets; LimitApprovers, by limit id,
	// who approves calls beyond a limit whose OnExceed is "escalate".
	Limits         []quota.Limit
	LimitApprovers map[string]policy.Approval
	// Tools declares what tools do (context.verb, context.impact), by
	// exposed name ("db.delete_rows").
	Tools   map[string]enforce.ToolDeclaration
	Version string
	Logger  *slog.Logger
	// Reviewers are reviewer agents asked to vote on every new approval
	// request whose groups they belong to.
	Reviewers []Reviewer
	// WitnessFor makes this node a C2SP tlog-witness for these logs (other
	// ward nodes' audit logs), at POST /witness/add-checkpoint. Its
	// cosignature key is created in DATA/keys/witness.key on first use; the
	// verifier key other nodes put in their witness policy is in
	// DATA/keys/witness.vkey.
	WitnessFor []witness.Log
	// WitnessPolicy, when set, is a witness policy (Sigsum format, see
	// witness.ParsePolicy): this node's audit checkpoints are published
	// (GET /v1/audit/checkpoint, DATA/witness/published) only once cosigned
	// as it requires.
	WitnessPolicy []byte
	// WitnessRoots verify witnesses' TLS certificates; nil: system roots.
	WitnessRoots *x509.CertPool
	// WitnessInterval is how often a new checkpoint is submitted to the
	// witnesses (default witness.DefaultInterval).
	WitnessInterval time.Duration
	// Record says what the audit log holds in clear, after redaction.
	Record Record
	// Egress, when set, runs the HTTP(S) egress proxy.
	Egress *Egress
	// Taint labels results by tool (or resource URI) and by host pattern
	// (see taint.NewLabeler); whatever is not listed is untrusted.
	TaintTools, TaintHosts map[string][]string
	// TaintFields labels the fields of tools' results (see
	// taint.Labeler.WithFields).
	TaintFields map[string]map[string][]string
	// ScanResults scans what sessions receive for instructions aimed at
	// the model (see enforce.SessionsConfig.ScanResults); off by default.
	ScanResults bool
	// MCPJSONAnswers answers a single request with one JSON body rather
	// than an SSE stream when the client accepts either (ward.yaml
	// mcp_json_answers; see streamable.HandlerConfig.JSONAnswers).
	MCPJSONAnswers bool
	// Monitor configures behaviour monitoring: baselines, signals, the
	// trust score and playbooks (nil: monitor.DefaultConfig(), which
	// records signals and keeps trust scores but runs no playbook). Its
	// state is kept in DATA/monitor.json.
	Monitor *monitor.Config
	// AlertWebhook receives every alert action as JSON, if set.
	AlertWebhook string
	// StoreDSN, when set, keeps the control-plane state in PostgreSQL
	// (store.OpenPostgres) instead of SQLite in DATA/ward.db, in schema
	// StoreSchema ("": the DSN's search_path).
	StoreDSN, StoreSchema string
	// Tracing exports OpenTelemetry traces of every call by OTLP, when its
	// endpoint is set (see internal/telemetry).
	Tracing telemetry.TracingConfig
	// Webhooks receive alerts ("alert"), playbook actions ("playbook.KIND")
	// and approval changes ("approval.STATE"), signed and retried; every
	// delivery is recorded ("webhook.delivery"). See internal/webhook.
	Webhooks []webhook.Endpoint
	// JoinToken joins a node to the system whose keys are sealed in the
	// PostgreSQL store (cluster.go); "": DATA/keys/join.token, if any.
	JoinToken string
	// ConsoleOIDC, when set, lets operators log in to the console with an
	// OpenID Connect provider besides local accounts.
	ConsoleOIDC *console.OIDCConfig
}

// Record configures what the audit log records of each call besides
// digests, and how secrets are redacted from it (and from agent-posted
// records). The redaction salt is DATA/keys/redact.salt, created on first
// start: equal secrets get equal markers, checkable by whoever holds it.
type Record struct {
	Arguments  bool          // record call arguments (redacted)
	Results    []string      // record the results of these tools (SERVER.TOOL patterns, resource URIs)
	MaxBytes   int           // larger documents are recorded by digest only (default enforce.DefaultRecordMaxBytes)
	Rules      []redact.Rule // redaction rules beyond the defaults
	NoDefaults bool          // turn off the built-in secret rules
}

// Reviewer is a reviewer agent reached by HTTP webhook: ward posts the
// approval request as JSON and expects {"approve": bool, "reason": "…"}.
type Reviewer struct {
	Name   string
	URL    string
	Groups []string
}

// Node is a running ward node.
type Node struct {
	cfg       Config
	CA        *identity.CA
	Store     *store.Store
	Audit     *audit.Log
	Auth      *authority.Authority
	Gateway   *gateway.Gateway
	API       *api.Server
	Approvals *approval.Queue
	// Witness is set when the node witnesses other logs; Publisher when its
	// own checkpoints need cosignatures before they are published.
	Witness   *witness.Witness
	Publisher *witness.Publisher
	// Egress is the egress proxy, when configured.
	Egress       *egress.Proxy
	egressLn     net.Listener
	egressTokens *egressTokens
	// pipeline decides every call, egress request and program start;
	// sessions holds each session's taint labels and provenance.
	pipeline *enforce.Pipeline
	sessions *enforce.Sessions
	refusals *refusal.Recorder
	cosign   *cosigner // on a node of several: witnesses the others' logs (cosign.go)
	// logKeys are the audit log's keys in force, logKeysMu serialises
	// their rotation (logkeys.go).
	logKeys   atomic.Pointer[auditKeys]
	logKeysMu sync.Mutex
	limiter   *quota.Limiter // nil without limits
	watch     *watcher
	redactor  *redact.Redactor
	policies  atomic.Pointer[policy.Set]
	metrics   *telemetry.Metrics // see telemetry.go
	appended  console.Signal     // notified at each audit append: the console's live streams
	tracing   *telemetry.Tracing
	webhooks  *webhook.Sender // nil without webhooks

	// AdminCredential is set on first start only: the bootstrap credential,
	// for the caller to show once.
	AdminCredential string
	// Created reports whether this start created the data directory.
	Created bool

	handshakes claims

	// Several nodes on one store (cluster.go, feed.go).
	nodeID      string
	claim       *store.NodeClaim // the hold on nodeID in the shared store
	joinedFresh bool
	joinSecret  []byte // opens the sealed keys; nil alone on SQLite

	// The signing keys (keys.go): the ring in force, changed under keysMu.
	keysMu     sync.Mutex
	ring       atomic.Pointer[keyring.Ring]
	receiptKey atomic.Pointer[ecdsa.PrivateKey]
	feed       *feed
	leases     *leaseLedger

	indexMu sync.Mutex // one indexing pass at a time
	// tilesAt is the size up to which the node kept its log's tiles in
	// the store (0: not yet, in this process); tilesMu serialises it.
	tilesMu sync.Mutex
	tilesAt uint64
	mu      sync.Mutex // guards srv, cancel and closed against Serve/Close races
	closed  bool
	srv     *http.Server
	ln      net.Listener
	cancel  context.CancelFunc
	done    chan struct{}
	probed  *gateway.ProbeReport // guarded by mu; set by the start-up probe
}

// Open creates or opens the node's state. It does not listen yet.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	if cfg.Data == "" {
		cfg.Data = DefaultData
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	cfg.ApproverGroups = withDefaultApprovers(cfg.ApproverGroups)
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, err
	}
	cfg.Data = data
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	n := &Node{cfg: cfg, done: make(chan struct{})}
	n.metrics = n.newMetrics()
	if cfg.Tracing.Version == "" {
		cfg.Tracing.Version = cfg.Version
	}
	if n.tracing, err = telemetry.NewTracing(cfg.Tracing); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.closeState()
		}
	}()

	if cfg.StoreDSN != "" {
		if err := n.joinStore(ctx); err != nil {
			return nil, err
		}
	}
	issuer, err := n.openKeys()
	if err != nil {
		return nil, err
	}
	n.Created = n.Created || n.joinedFresh
	// The log's keys: one, or several across a rotation (logkeys.go).
	lk, err := loadLogKeys(filepath.Join(data, "keys"), n.auditName())
	if err != nil {
		return nil, err
	}
	signers, err := lk.signers()
	if err != nil {
		return nil, err
	}
	verifier, err := lk.verifier()
	if err != nil {
		return nil, err
	}
	n.logKeys.Store(&lk)
	// The head (the latest checkpoint made durable) lives outside
	// DATA/audit, and the log must also extend what the witnesses cosigned.
	n.Audit, err = audit.Open(audit.Config{Dir: filepath.Join(data, "audit"), Origin: verifier.Name(), Signer: signers[0], Signers: signers[1:], Verifier: verifier,
		Head: filepath.Join(data, "audit.head"), Anchors: []string{filepath.Join(data, "witness", "published")}, AllowUnverified: cfg.AllowUnverifiedAudit,
		OnAppend: func(d time.Duration) { n.metrics.AuditAppended(d); n.appended.Notify() }, OnCommit: n.metrics.AuditCommitted})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w (restore DATA/audit from a backup that holds everything it had; or, to start anyway and record that you did, pass --allow-unverified-audit)", err)
	}
	if msg := n.Audit.Notice(); msg != "" {
		cfg.Logger.Warn("audit log: " + msg)
	}
	if err := n.openWitness(cfg, verifier); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(data, "ward.db")
	if n.Store != nil {
		dbPath = n.Store.Location()
	} else if n.Store, err = store.OpenSQLite(ctx, store.Config{Path: dbPath}); err != nil {
		if strings.Contains(err.Error(), "malformed") || strings.Contains(err.Error(), "not a database") {
			return nil, fmt.Errorf("store %s is damaged (%w): restore it from a backup; ward does not start on a damaged store", dbPath, err)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	repairs, err := n.checkStore(ctx, dbPath, cfg.ReinitStore)
	if err != nil {
		return nil, err
	}
	behind, err := n.reconcileStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dbPath, err)
	}
	repairs = append(repairs, behind...)
	if err := n.openCosign(cfg); err != nil {
		return nil, err
	}
	if err := n.checkAuditHead(ctx); err != nil {
		return nil, err
	}

	if len(cfg.Policies) == 0 {
		dir := filepath.Join(data, "policies")
		cfg.Policies = []string{dir}
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, "default.cedar"), defaultPolicy, 0o600); err != nil {
				return nil, err
			}
		}
		n.cfg.Policies = cfg.Policies
	}
	set, err := LoadPolicies(cfg.Policies)
	if err != nil {
		return nil, err
	}
	n.policies.Store(set)
	n.warnUnanswerable(set)

	n.Approvals, err = approval.New(approval.Config{
		Store:          approvalStore{n.Store},
		DefaultTimeout: cfg.ApprovalTimeout,
		OnChange:       n.recordApproval,
	})
	if err != nil {
		return nil, err
	}
	var limiter *quota.Limiter
	if len(cfg.Limits) > 0 {
		for _, l := range cfg.Limits {
			if _, ok := cfg.LimitApprovers[l.ID]; l.OnExceed == quota.OnExceedEscalate && !ok {
				return nil, fmt.Errorf("limit %q escalates but names no approvers", l.ID)
			}
		}
		if limiter, err = quota.New(quota.Config{Limits: cfg.Limits, Ledger: n.quotaLedger()}); err != nil {
			return nil, err
		}
		n.limiter = limiter
		if err := n.openBudgets(limiter); err != nil {
			return nil, err
		}
	}
	var onSubmit func(string)
	if len(cfg.Reviewers) > 0 {
		reviewers := map[string]approval.Reviewer{}
		voters := map[string]approval.Voter{}
		for _, r := range cfg.Reviewers {
			if r.Name == "" || (!strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://")) || len(r.Groups) == 0 {
				return nil, fmt.Errorf("reviewer %q: needs a name, an http(s) url and at least one group", r.Name)
			}
			reviewers[r.Name] = &approval.WebhookReviewer{URL: r.URL}
			voters[r.Name] = approval.Voter{Name: r.Name, Groups: r.Groups, Kind: approval.KindAgent}
		}
		onSubmit = func(id string) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if _, err := n.Approvals.AskReviewers(ctx, id, reviewers, voters); err != nil {
					cfg.Logger.Warn("reviewer agents", "approval", id, "err", err)
				}
			}()
		}
	}
	labeler, err := taint.NewLabeler(cfg.TaintTools, cfg.TaintHosts)
	if err != nil {
		return nil, err
	}
	if labeler, err = labeler.WithFields(cfg.TaintFields); err != nil {
		return nil, err
	}
	if err := n.openMonitor(cfg); err != nil {
		return nil, err
	}
	if err := n.openWebhooks(cfg); err != nil {
		return nil, err
	}
	redactor, err := openRedactor(filepath.Join(data, "keys", "redact.salt"), cfg.Record)
	if err != nil {
		return nil, err
	}
	n.redactor = redactor
	roots := map[string][]string{}
	for _, u := range cfg.Upstreams {
		if len(u.Roots) > 0 {
			if roots[u.Name], err = enforce.CanonicalRoots(u.Roots); err != nil {
				return nil, fmt.Errorf("server %q: %w", u.Name, err)
			}
		}
	}
	ups, err := upstreams(cfg.Upstreams, cfg.Version)
	if err != nil {
		return nil, err
	}
	for i := range ups {
		ups[i].Roots = roots[ups[i].Name]
	}
	n.Auth, err = authority.New(authority.Config{CA: n.CA, Grants: issuer, Store: n.Store, Audit: n.Audit,
		SessionTTL: cfg.SessionTTL, MaxSessionTTL: cfg.MaxTTL, MaxDepth: cfg.MaxDepth, OnEnd: n.sessionsEnded, OnTrust: n.watch.trustSet, OnDelegate: n.delegated,
		Fresh: n.fresh})
	if err != nil {
		return nil, err
	}
	// The retiring grant keys too.
	if err := n.installRing(n.ring.Load(), time.Now()); err != nil {
		return nil, err
	}
	n.openSessions(labeler)
	// One recorder of refusals for the whole node: the API, the gateway
	// and the egress proxy count floods together.
	n.refusals, err = refusal.New(refusal.Config{Audit: n.Audit, OnError: func(err error) {
		cfg.Logger.Error("recording a summary of refusals failed", "err", err)
	}, OnRefuse: n.metrics.Refused})
	if err != nil {
		return nil, err
	}
	n.pipeline, err = enforce.New(enforce.Config{Refusals: n.refusals, Policies: n.policies.Load, Pins: n.Store, Audit: n.Audit, PinMode: cfg.PinMode,
		Approvals: n.Approvals, Quotas: limiter, Approvers: cfg.LimitApprovers, Tools: cfg.Tools, Roots: roots, OnSubmit: onSubmit,
		Record: enforce.Record{Arguments: cfg.Record.Arguments, Results: cfg.Record.Results, MaxBytes: cfg.Record.MaxBytes, Redactor: redactor},
		State:  n.sessions, Watch: enforce.WatcherFunc(n.watch.call), Inspect: n.inspect,
		Current: func(c *enforce.Caller) error { return n.Auth.Current(c.Session, c.Lineage) }})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.Name
	}
	upHealth := api.NewUpstreams(names)
	n.Gateway, err = gateway.New(gateway.Config{Upstreams: ups, Guard: meteredGuard{n.pipeline, n.metrics}, Logger: cfg.Logger, Version: cfg.Version, HoldTimeout: cfg.HoldTimeout,
		OnConnect: upHealth.Record})
	if err != nil {
		return nil, err
	}
	if err := n.openEgress(cfg); err != nil {
		return nil, err
	}
	proofs, err := newProofVerifier(cfg)
	if err != nil {
		return nil, err
	}
	acfg := (api.Config{Refusals: n.refusals, Authority: n.Auth, CA: n.CA, Store: n.Store, Gateway: n.Gateway, Guard: meteredGuard{n.pipeline, n.metrics},
		Proofs: proofs, Audit: n.Audit, PublicURL: cfg.PublicURL, Logger: cfg.Logger,
		Approvals: n.Approvals, ApproverGroups: cfg.ApproverGroups, ReceiptKey: n.receiptSigner, Keys: n, Index: n, Redactor: redactor, Metrics: n.metrics.Handler(), MCPJSONAnswers: cfg.MCPJSONAnswers})
	if n.Publisher != nil {
		acfg.Published = n.Publisher.Published
	}
	if n.cosign != nil {
		acfg.SystemSearch = n.SearchAuditSystem
	}
	if n.Witness != nil {
		acfg.Witness = n.Witness
	}
	if n.Egress != nil {
		acfg.EgressToken = n.EgressToken
		acfg.EgressCA = n.EgressCA
	}
	acfg.Labels = n
	acfg.Runtime = n
	storeCheck := api.StoreCheck(func(ctx context.Context) error {
		_, err := n.Store.Empty(ctx)
		return err
	})
	if n.feed != nil {
		// On a node of several the store's check is the change feed's
		// freshness, the very check the node refuses calls with: its
		// poll reads the store every feedPoll, so readiness needs no read
		// of its own, which would hang on a database cut off (a
		// partition) until the readiness deadline and report late.
		storeCheck = n.feedCheck()
	}
	acfg.Ready = []api.Check{api.AuditCheck(n.Audit), storeCheck, upHealth.Check()}
	n.API, err = api.New(acfg)
	if err != nil {
		return nil, err
	}
	if err := n.openConsole(cfg); err != nil {
		return nil, err
	}
	if err := n.taintSurvivors(ctx); err != nil {
		return nil, fmt.Errorf("sessions from before the restart: %w", err)
	}
	n.AdminCredential, err = n.Auth.Bootstrap(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin: %w", err)
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "server.start", Actor: "ward", Data: jsonData(map[string]any{
		"version": cfg.Version, "trust_domain": cfg.TrustDomain, "upstreams": n.Gateway.Servers(), "policies": set.Len(),
	})}); err != nil {
		return nil, err
	}
	for _, r := range repairs {
		if _, err := n.Audit.Append(ctx, r); err != nil {
			return nil, err
		}
	}
	ok = true
	return n, nil
}

// delegated gives a sub-agent's session what its parent has been exposed
// to: the parent can hand it anything it read.
func (n *Node) delegated(parent, child string) {
	n.sessions.Delegated(parent, child)
	n.shareDelegated(child)
}

// taintSurvivors treats sessions that outlive a restart as having seen
// private and untrusted content: their labels and provenance were in
// memory only, and forgetting them would let a tainted session through.
func (n *Node) taintSurvivors(ctx context.Context) error {
	active, err := n.Store.ListSessions(ctx, store.SessionFilter{Status: "active"})
	if err != nil {
		return err
	}
	for _, s := range active {
		n.sessions.Seed(s.ID, taint.Private, taint.Untrusted)
	}
	return nil
}

// sessionsEnded revokes what ended sessions hold at the gateway and the
// egress proxy and forgets their taint.
func (n *Node) sessionsEnded(ids []string) {
	n.Gateway.Revoke(ids...)
	n.forgetEgress(ids)
	n.sessions.Forget(ids...)
	n.watch.forget(ids)
	// Seal each ended session's chain in the audit log, so that a bundle
	// can prove it holds all of the session's events; then have the log
	// sign a checkpoint over the seals, so that a bundle exported from
	// its files at once proves it (checkpoints otherwise follow on the
	// log's cadence).
	sealed := false
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := n.Audit.Seal(ctx, id); err != nil {
			n.cfg.Logger.Error("sealing an ended session in the audit log failed", "session", id, "err", err)
		} else {
			sealed = true
		}
		cancel()
	}
	if sealed {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := n.Audit.Sync(ctx); err != nil {
			n.cfg.Logger.Error("signing a checkpoint over ended sessions' seals failed", "err", err)
		}
		cancel()
	}
}

// recordApproval audits every change of an approval request: its
// submission, each vote and its outcome. It runs under the queue's lock, in
// order.
func (n *Node) recordApproval(r approval.Request) {
	data := map[string]any{"id": r.ID, "state": r.State, "server": r.Server, "method": r.Method, "name": r.Name,
		"call_hash": r.CallHash, "requirement": r.Requirement, "policies": r.Policies, "votes": len(r.Votes)}
	if len(r.Votes) > 0 {
		data["last_vote"] = r.Votes[len(r.Votes)-1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "approval." + r.State, Actor: "ward", Session: r.Session, Agent: r.Agent, Sponsor: r.Sponsor, Data: jsonData(data)}); err != nil {
		n.cfg.Logger.Error("recording an approval change failed", "approval", r.ID, "err", err)
	}
	data["session"], data["agent"], data["sponsor"] = r.Session, r.Agent, r.Sponsor
	n.notify("approval."+r.State, data)
}

// indexChunk is how many audit events one indexing step reads.
const indexChunk = 1000

// IndexAudit brings the audit query index up to the log's size. The index
// is derived: the log is the source of truth, and an index that falls
// behind (or is lost) is caught up from it.
func (n *Node) IndexAudit(ctx context.Context) error {
	n.indexMu.Lock()
	defer n.indexMu.Unlock()
	next, err := n.Store.AuditIndexed(ctx)
	if err != nil {
		return err
	}
	size := n.Audit.Size()
	for next < size {
		to := min(next+indexChunk, size)
		events, err := n.Audit.Read(next, to)
		if err != nil {
			return err
		}
		if err := n.Store.IndexAudit(ctx, AuditRows(events)); err != nil {
			return err
		}
		next = to
	}
	return nil
}

// AuditRows are the audit query index's rows of events: what the index
// knows of each (who, which session, tool and decision). Every node and
// ward audit reindex derive them the same way.
func AuditRows(events []audit.Event) []store.AuditRow {
	rows := make([]store.AuditRow, len(events))
	for i, e := range events {
		var d struct {
			Name     string `json:"name"`
			Decision string `json:"decision"`
		}
		_ = json.Unmarshal(e.Data, &d)
		entry, _ := json.Marshal(e) // exactly the log's entry (see internal/audit's doc)
		rows[i] = store.AuditRow{Index: e.Index, Time: e.Time, Type: e.Type, Session: e.Session, Agent: e.Agent,
			Sponsor: e.Sponsor, Name: d.Name, Decision: d.Decision, Entry: string(entry)}
	}
	return rows
}

// LoadPolicies loads policies from files and directories: Cedar (*.cedar)
// and controlled-English rules (*.rules), which are compiled to Cedar first.
// Errors name the file, line and column; every file's errors are reported.
func LoadPolicies(paths []string) (*policy.Set, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("policies: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		for _, pat := range []string{"*.cedar", "*.rules"} {
			matches, err := filepath.Glob(filepath.Join(p, pat))
			if err != nil {
				return nil, err
			}
			files = append(files, matches...)
		}
	}
	srcs := map[string][]byte{}
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch filepath.Ext(f) {
		case ".rules":
			cedarSrc, err := rules.CompileToCedar(f, b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			srcs[f+" (compiled)"] = cedarSrc
		case ".cedar":
			srcs[f] = b
		default:
			errs = append(errs, fmt.Errorf("%s: not a policy file (want .cedar or .rules)", f))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("policies: %w", errors.Join(errs...))
	}
	set, err := policy.Parse(srcs)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return set, nil
}

// ReloadPolicies loads the configured policies again; a set that fails to
// load never replaces the one in force.
func (n *Node) ReloadPolicies() (int, error) {
	set, err := LoadPolicies(n.cfg.Policies)
	if err != nil {
		return 0, err
	}
	n.policies.Store(set)
	n.warnUnanswerable(set)
	_, err = n.Audit.Append(context.Background(), audit.Event{Type: "policy.reload", Actor: "ward", Data: jsonData(map[string]any{"policies": set.Len()})})
	return set.Len(), err
}

// Policies returns the policy set in force.
func (n *Node) Policies() *policy.Set { return n.policies.Load() }

func upstreams(cfgs []Upstream, version string) ([]gateway.Upstream, error) {
	var out []gateway.Upstream
	nb := demo.NewNotebook()
	for _, u := range cfgs {
		set := 0
		if len(u.Command) > 0 {
			set++
		}
		if u.URL != "" {
			set++
		}
		if u.Builtin != "" {
			set++
		}
		if set != 1 {
			return nil, fmt.Errorf("server %q: set exactly one of command, url and builtin", u.Name)
		}
		switch {
		case len(u.Command) > 0:
			var env []string
			for k, v := range u.Env {
				env = append(env, k+"="+v)
			}
			out = append(out, gateway.Stdio(u.Name, u.Command, env, u.Dir))
		case u.URL != "":
			if !strings.HasPrefix(u.URL, "http://") && !strings.HasPrefix(u.URL, "https://") {
				return nil, fmt.Errorf("server %q: url %q must be http:// or https://", u.Name, u.URL)
			}
			h := http.Header{}
			for k, v := range u.Headers {
				h.Set(k, v)
			}
			out = append(out, gateway.HTTP(u.Name, u.URL, h, nil))
		case u.Builtin == "demo":
			out = append(out, gateway.InProcess(u.Name, func() *mcp.Server { return demo.NewServer(nb, version) }))
		default:
			return nil, fmt.Errorf("server %q: unknown builtin %q (known: demo)", u.Name, u.Builtin)
		}
		mode, err := gateway.ParseNameMode(u.Names)
		if err != nil {
			return nil, fmt.Errorf("server %q: %w", u.Name, err)
		}
		out[len(out)-1].Names = mode
		if u.Share {
			out[len(out)-1] = gateway.Share(out[len(out)-1])
		}
	}
	return out, nil
}

// noteKeys loads or creates the Ed25519 note key pair DIR/BASE.key (secret)
// and DIR/BASE.pub, named name.
func noteKeys(dir, base, name string) (skey, vkey string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	skPath, vkPath := filepath.Join(dir, base+".key"), filepath.Join(dir, base+".pub")
	sk, err := os.ReadFile(skPath)
	if errors.Is(err, os.ErrNotExist) {
		skey, vkey, err := audit.NewNoteKey(name)
		if err != nil {
			return "", "", err
		}
		// The public key first: a crash between the two leaves no secret
		// key without its public half, and the next start makes a new pair.
		if err := atomicfile.Write(vkPath, []byte(vkey+"\n"), 0o644); err != nil {
			return "", "", err
		}
		if err := atomicfile.Write(skPath, []byte(skey+"\n"), 0o600); err != nil {
			return "", "", err
		}
		return skey, vkey, nil
	} else if err != nil {
		return "", "", err
	}
	vk, err := os.ReadFile(vkPath)
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(string(sk)), strings.TrimSpace(string(vk)), nil
}

// openRedactor builds the redactor with the node's salt, creating the salt
// on first start.
func openRedactor(saltPath string, rc Record) (*redact.Redactor, error) {
	salt, err := os.ReadFile(saltPath)
	if errors.Is(err, os.ErrNotExist) {
		salt = make([]byte, 32)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(saltPath, salt, 0o600); err != nil {
			return nil, fmt.Errorf("redaction salt: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("redaction salt: %w", err)
	}
	r, err := redact.New(redact.Config{Rules: rc.Rules, NoDefaults: rc.NoDefaults, Salt: salt})
	if err != nil {
		return nil, fmt.Errorf("redaction: %w", err)
	}
	return r, nil
}

// openWitness sets up the node's witness (for other logs) and publisher
// (for its own), as configured.
func (n *Node) openWitness(cfg Config, logVerifier note.Verifier) error {
	if len(cfg.WitnessFor) == 0 && cfg.WitnessPolicy == nil {
		return nil
	}
	dir := filepath.Join(cfg.Data, "witness")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	if len(cfg.WitnessFor) > 0 {
		keys := filepath.Join(cfg.Data, "keys")
		skey, vkey, err := noteKeys(keys, "witness", cfg.TrustDomain+"/witness")
		if err != nil {
			return fmt.Errorf("witness key: %w", err)
		}
		n.Witness, err = witness.New(witness.Config{Key: skey, VerifierKey: vkey, Logs: cfg.WitnessFor, State: filepath.Join(dir, "state.json")})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(keys, "witness.vkey"), []byte(n.Witness.VerifierKey()+"\n"), 0o644); err != nil {
			return fmt.Errorf("witness key: %w", err)
		}
	}
	if cfg.WitnessPolicy != nil {
		policy, err := witness.ParsePolicy(cfg.WitnessPolicy)
		if err != nil {
			return err
		}
		client := &http.Client{Timeout: witness.DefaultTimeout, Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: cfg.WitnessRoots, MinVersion: tls.VersionTLS12},
		}}
		n.Publisher, err = witness.NewPublisher(witness.PublisherConfig{Log: n.Audit, Origin: logVerifier.Name(), LogVerifier: logVerifier,
			LogKeys: func() note.Verifier {
				v, err := n.logKeys.Load().verifier()
				if err != nil {
					return logVerifier
				}
				return v
			},
			Policy: policy, Published: filepath.Join(dir, "published"), Client: client, Interval: cfg.WitnessInterval, Logger: cfg.Logger})
		if err != nil {
			return err
		}
	}
	return nil
}

// AuditVerifier loads the public audit keys of a data directory, for
// offline verification: DATA/keys/audit.pub and, across a rotation of
// the log's key, audit.next.pub and audit.retired (logkeys.go), as one
// audit.Keyring.
func AuditVerifier(data string) (note.Verifier, string, error) {
	dir := filepath.Join(data, "keys")
	var keys []string
	for _, f := range []string{"audit.pub", "audit.next.pub"} {
		vk, err := os.ReadFile(filepath.Join(dir, f))
		if f != "audit.pub" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("audit public key: %w", err)
		}
		keys = append(keys, strings.TrimSpace(string(vk)))
	}
	retired, err := readRetired(dir)
	if err != nil {
		return nil, "", err
	}
	var vs []note.Verifier
	for _, k := range append(keys, retired...) {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, "", fmt.Errorf("audit public key: %w", err)
		}
		if !slices.ContainsFunc(vs, func(w note.Verifier) bool { return w.KeyHash() == v.KeyHash() }) {
			vs = append(vs, v)
		}
	}
	v, err := audit.Keyring(vs...)
	if err != nil {
		return nil, "", fmt.Errorf("audit public key: %w", err)
	}
	return v, v.Name(), nil
}

// Listen binds the configured address.
func (n *Node) Listen() error {
	ln, err := net.Listen("tcp", n.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.Addr, err)
	}
	n.ln = ln
	return nil
}

// URL is the node's base URL once listening.
func (n *Node) URL() string {
	if n.cfg.PublicURL != "" {
		return strings.TrimRight(n.cfg.PublicURL, "/")
	}
	return "https://" + n.ln.Addr().String()
}

// TLSConfig is the serving configuration: ward's certificate from its own
// CA, renewed in memory, and client certificates (X.509-SVIDs) requested but
// optional — agents may authenticate with DPoP instead. A client
// certificate is not verified during the handshake (the handshake still
// proves the client holds its key) but by the API, against the trust
// domain's bundle, before anything relies on it: so a certificate from
// elsewhere is refused with an answer and a record, not a dropped
// connection that leaves no trace.
func (n *Node) TLSConfig() *tls.Config {
	type issued struct {
		cert *tls.Certificate
		seq  uint64 // of the CA's keys that issued it
	}
	var cur atomic.Pointer[issued]
	get := func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		// A certificate is renewed when it nears its end and when the
		// CA's keys change (a rotation, a root retired).
		seq := n.CA.Sequence()
		c := cur.Load()
		if c != nil && c.seq == seq && c.cert.Leaf != nil && time.Until(c.cert.Leaf.NotAfter) > serverCertTTL/4 {
			return c.cert, nil
		}
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if h, _, err := net.SplitHostPort(n.cfg.Addr); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
		if u, err := url.Parse(n.cfg.PublicURL); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
		cert, err := n.CA.ServerCertificate(hosts, serverCertTTL)
		if err != nil {
			return nil, err
		}
		cur.Store(&issued{cert: &cert, seq: seq})
		return &cert, nil
	}
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
		ClientAuth:     tls.RequestClientCert,
	}
	// Each connection's configuration remembers the certificate its client
	// presents, so that a handshake that then fails (a certificate shown
	// without its key) is recorded naming what it claimed.
	base.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		addr := hi.Conn.RemoteAddr().String()
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				if cert, err := x509.ParseCertificate(raw[0]); err == nil && len(cert.URIs) > 0 {
					n.handshakes.claim(addr, cert.URIs[0].String())
				}
			}
			return nil
		}
		return c, nil
	}
	return base
}

// Serve serves until ctx ends or Close is called.
func (n *Node) Serve(ctx context.Context) error {
	if n.ln == nil {
		if err := n.Listen(); err != nil {
			return err
		}
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	ctx, n.cancel = context.WithCancel(ctx)
	n.srv = &http.Server{
		Handler:           n.tracing.Handler(n.API.Handler()),
		TLSConfig:         n.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		// Request bodies have their own deadline (api.Server); no
		// ReadTimeout, which would also end long-lived SSE responses.
		IdleTimeout: 2 * time.Minute,
		// Well above api.MaxHeaderBytes, which the API enforces and
		// records: net/http's own refusal would leave no record.
		MaxHeaderBytes: 16 * api.MaxHeaderBytes,
		ErrorLog:       log.New(&handshakeLog{n: n, next: slog.NewLogLogger(n.cfg.Logger.Handler(), slog.LevelDebug).Writer()}, "", 0),
		ConnState:      n.handshakes.forget,
	}
	srv := n.srv
	n.mu.Unlock()
	go n.sweep(ctx)
	go n.retain(ctx)
	if n.feed != nil {
		go n.feed.run(ctx)
	}
	if n.cosign != nil {
		go n.cosign.run(ctx)
	}
	go n.watchLogKeys(ctx)
	if n.cfg.ProbeUpstreams && len(n.cfg.Upstreams) > 0 {
		go n.probe(ctx)
	}
	go n.verifyAudit(ctx)
	if n.Publisher != nil {
		go n.Publisher.Run(ctx)
	}
	if n.Egress != nil {
		go n.Egress.Serve(n.egressLn)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(n.ln, "", "") }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

// verifyAudit runs the audit log's verification pass once after start:
// Open checked only what the head does not vouch for. If the pass finds
// damage, the log fails closed (every call is refused, /healthz answers
// 503) and the next start verifies the whole log and refuses it.
func (n *Node) verifyAudit(ctx context.Context) {
	rep, err := n.Audit.Verify(ctx)
	switch {
	case err == nil:
		n.cfg.Logger.Info("audit log verified", "events", rep.Size)
	case ctx.Err() != nil || errors.Is(err, audit.ErrClosed):
	case errors.Is(err, audit.ErrTampered), errors.Is(err, audit.ErrCorrupt):
		n.cfg.Logger.Error("audit log failed its verification after start: ward refuses every call; run ward audit verify to see where, and restore DATA/audit from a backup (until then a restart refuses the log)", "err", err)
	default:
		n.cfg.Logger.Warn("audit log: the verification pass could not run", "err", err)
	}
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (n *Node) sweep(ctx context.Context) {
	every(ctx, expirySweep, func() {
		if _, err := n.Auth.ExpireSessions(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Error("expiring sessions", "err", err)
		}
		n.sweepKeysNow(ctx)
		if err := n.IndexAudit(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("indexing the audit log", "err", err)
		}
		if err := n.watch.save(); err != nil {
			n.cfg.Logger.Warn("saving the monitor's state", "err", err)
		}
		if err := n.saveBudgets(); err != nil {
			n.cfg.Logger.Warn("saving the budgets", "err", err)
		}
	})
}

// Close stops serving and closes the node's state.
// drainTimeout bounds how long a node shutting down waits for the MCP
// calls in flight to be answered.
const drainTimeout = 10 * time.Second

func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	cancel, srv := n.cancel, n.srv
	n.mu.Unlock()
	// Answer the MCP calls in flight (up to drainTimeout) while the node
	// still follows revocations, then stop its loops, end MCP sessions so
	// that their open streams do not hold Shutdown, stop serving, and only
	// then close the state handlers use.
	if n.Gateway != nil {
		n.Gateway.EndHolds() // held calls are answered as pending
	}
	if n.API != nil {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		n.API.Drain(ctx)
		cancel()
	}
	if cancel != nil {
		cancel()
	}
	if n.API != nil {
		n.API.Close()
	}
	if n.Gateway != nil {
		n.Gateway.Close()
	}
	if n.Egress != nil {
		n.Egress.Close()
		n.egressLn.Close()
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		cancel()
	} else if n.ln != nil {
		n.ln.Close()
	}
	return n.closeState()
}

func (n *Node) closeState() error {
	var errs []error
	if n.watch != nil {
		errs = append(errs, n.watch.save())
	}
	if n.Audit != nil {
		errs = append(errs, n.saveBudgets())
	}
	errs = append(errs, n.closeShared())
	if n.claim != nil {
		errs = append(errs, n.claim.Close())
	}
	if n.Store != nil {
		errs = append(errs, n.Store.Close())
	}
	n.closeWebhooks() // their outcomes are recorded in the log
	if n.Audit != nil {
		errs = append(errs, n.Audit.Close())
	}
	// Spans still buffered are exported; a collector that is gone costs
	// them, not the close.
	ctx, cancel := context.WithTimeout(context.Background(), telemetry.ExportTimeout)
	if err := n.tracing.Shutdown(ctx); err != nil {
		n.cfg.Logger.Warn("exporting the last spans failed", "err", err)
	}
	cancel()
	return errors.Join(errs...)
}

// ReceiptKey loads the public key that signs a data directory's new
// receipts (the first of ReceiptKeys).
func ReceiptKey(data string) (*ecdsa.PublicKey, error) {
	keys, err := ReceiptKeys(data)
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// maxReceiptKeys bounds the keys DATA/keys/receipt.pub may list.
const maxReceiptKeys = 64

// ReceiptKeys loads the public keys that verify a data directory's
// receipts, DATA/keys/receipt.pub: the active receipt key first, then
// those retiring after a rotation, as PEM "PUBLIC KEY" blocks (ECDSA
// P-256) and nothing else.
func ReceiptKeys(data string) ([]*ecdsa.PublicKey, error) {
	b, err := readSmall(filepath.Join(data, "keys", "receipt.pub"), 64<<10)
	if err != nil {
		return nil, fmt.Errorf("receipt public key: %w", err)
	}
	var keys []*ecdsa.PublicKey
	rest := b
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type != "PUBLIC KEY" || len(blk.Headers) != 0 {
			return nil, errors.New("receipt public key: DATA/keys/receipt.pub must hold PEM PUBLIC KEY blocks and nothing else")
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("receipt public key: %w", err)
		}
		pub, ok := k.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("receipt public key: not an ECDSA P-256 key")
		}
		if keys = append(keys, pub); len(keys) > maxReceiptKeys {
			return nil, fmt.Errorf("receipt public key: more than %d keys", maxReceiptKeys)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("receipt public key: no PEM block")
	}
	return keys, nil
}
