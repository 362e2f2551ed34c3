// Package store is ward's persistent control-plane state: principals and
// their credentials, registered agents, sessions and their delegation trees,
// tool pins, and a small key/value table for server metadata.
//
// One concrete type, [Store], serves every backend. [OpenSQLite] opens the
// embedded default (a single file, pure Go); [OpenPostgres] opens a
// PostgreSQL database that several ward nodes may share (postgres.go says
// how it is laid out, migrated and kept consistent). Both run the same SQL
// for every method, and both must pass the shared contract suite in
// contract_test.go, so callers may rely on the behaviour documented here and
// nothing else.
//
// # Entities
//
//   - A [Principal] is a human or platform identity, an "admin" or a
//     "sponsor". It authenticates with credentials, which the store keeps only
//     as SHA-256 hashes: [Store.AddCredential] takes the hash,
//     [Store.LookupCredential] finds the principal by hash, and a revoked
//     credential is indistinguishable from an unknown one. The secret itself is
//     never given to, stored by, or returned from this package.
//   - An [Agent] is a registered kind of agent, owned by a sponsor principal
//     that must exist when the agent is created.
//   - A [Session] is one ephemeral run of an agent. Sessions form trees: a
//     sub-agent's session names its parent in ParentID, carries the tree's
//     RootID and its Depth below the root. [Store.EndSession] ends a session
//     and every active descendant in one transaction, so no sub-agent outlives
//     the session that spawned it, and [Store.ExpireSessions] does the same for
//     every session whose Expires has passed.
//   - A [ToolPin] records the hash of the tool definition last observed from an
//     MCP server and the hash an operator approved. When they differ the tool
//     changed under us (a "rug pull"); [Store.ApprovePin] approves only the
//     definition currently observed, so an approval can never apply to a
//     definition the operator did not see.
//
// # Errors
//
// Methods wrap [ErrNotFound] when a named record does not exist, [ErrExists]
// when a create would duplicate one, and [ErrConflict] when the current state
// forbids the change (parent session ended, agent quarantined, pin definition
// changed again). Test with [errors.Is]. Invalid input (empty names, malformed
// JSON, unknown enum values) is reported with a plain error.
//
// # Time and encoding
//
// Times are stored as UTC Unix nanoseconds and returned in UTC, so they must
// lie between the years 1678 and 2262. JSON fields are stored as text,
// byte for byte; an empty json.RawMessage is stored as absent and read back as
// nil. Text must be valid UTF-8 without NUL bytes (PostgreSQL's rule, enforced
// for every backend); names and ids additionally may not contain control
// characters and are at most [MaxNameLen] bytes.
//
// # Deadlines
//
// Every method takes a context and additionally bounds its own work by
// Config.Timeout (default [DefaultTimeout]), so a wedged database fails the
// call instead of hanging a request.
//
// # Example
//
// A sponsor starts a session, the session's agent delegates to a sub-agent,
// and the sponsor ends the root:
//
//	s.CreatePrincipal(ctx, store.Principal{Name: "alice", Kind: "sponsor"})
//	s.CreateAgent(ctx, store.Agent{Name: "reporter", Sponsor: "alice"})
//	s.CreateSession(ctx, store.Session{ID: "s1", Agent: "reporter", Expires: exp})
//	s.CreateSession(ctx, store.Session{ID: "s2", Agent: "reporter", ParentID: "s1", Expires: exp})
//	ended, _ := s.EndSession(ctx, "s1", "task done", time.Now())
//	// ended == []string{"s1", "s2"}
package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Sentinel errors. Callers branch on these with errors.Is.
var (
	// ErrNotFound reports that a named record does not exist (or, for a
	// credential, was revoked). An HTTP server should answer 404 Not Found,
	// or 401 Unauthorized for a credential lookup.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that a create would duplicate an existing record.
	// An HTTP server should answer 409 Conflict.
	ErrExists = errors.New("already exists")
	// ErrConflict reports that the current state forbids the change: the
	// parent session has ended or expired, the agent is quarantined, or a pin's
	// observed definition changed since the operator looked at it. An HTTP
	// server should answer 409 Conflict.
	ErrConflict = errors.New("conflict with current state")
)

// Principal kinds.
const (
	KindAdmin   = "admin"
	KindSponsor = "sponsor" // a sponsor of unspecified kind
	// KindHuman and KindPlatform are sponsors: a person, or a platform
	// (a service account, a pipeline) accountable for its agents.
	KindHuman    = "human"
	KindPlatform = "platform"
)

// Agent statuses.
const (
	AgentActive      = "active"
	AgentQuarantined = "quarantined"
)

// Session statuses.
const (
	SessionActive = "active"
	SessionEnded  = "ended"
)

// ReasonExpired is the EndReason [Store.ExpireSessions] records.
const ReasonExpired = "expired"

// Limits on stored values.
const (
	// MaxNameLen is the maximum length in bytes of a name or id.
	MaxNameLen = 1024
	// MaxJSONLen is the maximum length in bytes of a JSON field (ceiling,
	// scope, tool definition).
	MaxJSONLen = 1 << 20
	// MaxTextLen is the maximum length in bytes of a free-text field
	// (objective, end reason, hashes, meta values).
	MaxTextLen = 1 << 20
)

// Principal is a human or platform identity: an admin, or a sponsor
// accountable for agents.
type Principal struct {
	Name string
	// Kind is KindAdmin, or a sponsor kind: KindSponsor, KindHuman or
	// KindPlatform.
	Kind string
	// Ceiling is the scope JSON bounding everything this principal delegates;
	// nil if none is set.
	Ceiling json.RawMessage
	// Created defaults to the current time when zero.
	Created time.Time
}

// Agent is a registered kind of agent.
type Agent struct {
	Name string
	// Sponsor names the accountable principal; it must exist.
	Sponsor string
	Groups  []string
	// Ceiling is the scope JSON bounding the agent's sessions; nil if none.
	Ceiling    json.RawMessage
	CodeDigest string
	// Status is AgentActive or AgentQuarantined; "" means AgentActive on
	// create.
	Status string
	// Created defaults to the current time when zero.
	Created time.Time
	// Trust is the agent's trust score, 0-100; new agents start at
	// DefaultTrust (whatever this field says). Set it with SetAgentTrust.
	Trust int
}

// Session is one ephemeral run of an agent for one declared objective.
type Session struct {
	ID      string
	Agent   string
	Sponsor string // defaults to the agent's sponsor on create
	// ParentID names the delegating session; "" for a root session.
	ParentID string
	// RootID is the id of the tree's root, == ID for a root. Filled in on
	// create when empty; must match the parent's RootID when set.
	RootID string
	// Depth is 0 for a root and parent's Depth+1 for a child. Filled in on
	// create for a child when 0; must match when set.
	Depth         int
	SPIFFEID      string
	Objective     string
	ObjectiveHash string
	// Tags are the objective tags the session declared (what kinds of
	// work its objective needs, e.g. "reporting", "read-only").
	Tags  []string
	Scope json.RawMessage
	// JKT is the thumbprint of the session key.
	JKT string
	// GrantID is the jti of the session's grant.
	GrantID string
	// Status is SessionActive or SessionEnded; only SessionActive (or "")
	// may be created.
	Status    string
	EndReason string
	// Created defaults to the current time when zero. Expires is required
	// and must be after Created. Ended is zero while the session is active.
	Created, Expires, Ended time.Time
	// MaxTree, when creating a child, bounds the active sessions of its
	// delegation tree (the child included), checked in the same
	// transaction as the insert so that concurrent delegations cannot
	// together pass it; 0 means no bound. It is not stored.
	MaxTree int
}

// SessionFilter selects sessions for [Store.ListSessions]. Empty fields
// match everything.
type SessionFilter struct {
	Agent   string
	Sponsor string
	Status  string
	// Limit caps the number of sessions returned; 0 means no limit.
	Limit int
}

// ToolPin is the pinned definition of one tool of one MCP server.
type ToolPin struct {
	Server, Tool string
	// Hash is the hash of the currently observed definition.
	Hash       string
	Definition json.RawMessage
	// ApprovedHash is the hash an operator (or a first-use policy) approved;
	// "" if never approved. The tool is safe to expose only while
	// ApprovedHash == Hash.
	ApprovedHash string
	ApprovedBy   string
	// Updated defaults to the current time when zero on PutPin.
	Updated time.Time
}

// Store is ward's persistent state. It is safe for concurrent use.
type Store struct {
	// w writes. For SQLite it is a pool of exactly one connection whose
	// transactions begin IMMEDIATE, so writers queue in Go (honouring their
	// contexts) instead of racing for the file lock. For PostgreSQL it is
	// the one connection pool, shared with r.
	w *sql.DB
	// r reads. Readers never block the writer, nor it them (WAL; MVCC).
	r *sql.DB
	// pg is set for PostgreSQL: write transactions then take the row locks
	// that SQLite's single writer makes unnecessary (postgres.go).
	pg     bool
	schema string // PostgreSQL: the schema the tables live in
	node   string // Config.Node: whose audit log the audit index describes
	// pgcfg is the PostgreSQL connection's configuration, for the change
	// feed's listener (cluster.go).
	pgcfg   *pgx.ConnConfig
	where   string // Location
	timeout time.Duration
	now     func() time.Time
	// Prepared reads on the hot paths (per request), on r.
	getSession, lookupCredential *sql.Stmt
}

// Location says where the store keeps its data, for messages: the SQLite
// file, or the PostgreSQL database, server and schema (never a password).
func (s *Store) Location() string { return s.where }

// Close closes the store's connections. It is idempotent; other calls after
// Close fail.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.getSession, s.lookupCredential} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.w.Close())
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(errs...)
}

// prepare prepares the hot-path statements.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.getSession, err = s.r.PrepareContext(ctx, getSessionQuery); err != nil {
		return fmt.Errorf("prepare get session: %w", err)
	}
	if s.lookupCredential, err = s.r.PrepareContext(ctx, lookupCredentialQuery); err != nil {
		return fmt.Errorf("prepare lookup credential: %w", err)
	}
	return nil
}

// op bounds one call by the store's per-call timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// write runs fn in one write transaction. On PostgreSQL a transaction
// that fails with a serialization failure or a deadlock (which the row
// locks of postgres.go should make rare) is run again from the start, at
// most maxTxAttempts times in all; fn must therefore set every result it
// returns afresh on each run.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || !s.pg || !retryable(err) || attempt >= maxTxAttempts {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (s *Store) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// forUpdate is appended to a SELECT in a write transaction that goes on to
// change the rows it read: on PostgreSQL it locks them until the
// transaction ends (and, under READ COMMITTED, returns their newest
// committed version once the lock is granted). SQLite has no such clause
// and needs none: its one writer holds the whole database.
func (s *Store) forUpdate() string {
	if s.pg {
		return ` FOR UPDATE`
	}
	return ``
}

// forShare is like forUpdate for rows that are read but must not change
// before the transaction ends.
func (s *Store) forShare() string {
	if s.pg {
		return ` FOR SHARE`
	}
	return ``
}

// lockTree serialises, on PostgreSQL, every change to the shape or state
// of the delegation tree whose root is root (a child created, a session
// ended, the tree's size counted) by locking the root's row. Each later
// statement of the transaction then sees every change committed by the
// tree's previous lock holders, so these transactions behave as if run
// one at a time, as they are on SQLite.
func (s *Store) lockTree(ctx context.Context, tx *sql.Tx, root string) error {
	if !s.pg {
		return nil
	}
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, root).Scan(&one); err != nil {
		return fmt.Errorf("lock delegation tree %q: %w", root, notFound(err))
	}
	return nil
}

// ---- principals and credentials ----

// CreatePrincipal adds p. It wraps ErrExists if a principal of that name
// exists.
func (s *Store) CreatePrincipal(ctx context.Context, p Principal) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if p.Created.IsZero() {
		p.Created = s.now()
	}
	if err := errors.Join(
		checkName("name", p.Name),
		checkEnum("kind", p.Kind, KindAdmin, KindSponsor, KindHuman, KindPlatform),
		checkJSON("ceiling", p.Ceiling),
		checkTime("created", p.Created),
	); err != nil {
		return fmt.Errorf("create principal %q: %w", p.Name, err)
	}
	res, err := s.w.ExecContext(ctx,
		`INSERT INTO principals (name, kind, ceiling, created) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		p.Name, p.Kind, jsonArg(p.Ceiling), p.Created.UnixNano())
	if err != nil {
		return fmt.Errorf("create principal %q: %w", p.Name, err)
	}
	if err := mustAffect(res, ErrExists); err != nil {
		return fmt.Errorf("create principal %q: %w", p.Name, err)
	}
	return nil
}

const principalCols = `name, kind, ceiling, created`

func scanPrincipal(sc interface{ Scan(...any) error }) (Principal, error) {
	var (
		p       Principal
		ceiling []byte
		created int64
	)
	if err := sc.Scan(&p.Name, &p.Kind, &ceiling, &created); err != nil {
		return Principal{}, err
	}
	p.Ceiling = rawJSON(ceiling)
	p.Created = fromNanos(created)
	return p, nil
}

// GetPrincipal returns the named principal or wraps ErrNotFound.
func (s *Store) GetPrincipal(ctx context.Context, name string) (Principal, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	p, err := scanPrincipal(s.r.QueryRowContext(ctx,
		`SELECT `+principalCols+` FROM principals WHERE name = $1`, name))
	if err != nil {
		return Principal{}, fmt.Errorf("get principal %q: %w", name, notFound(err))
	}
	return p, nil
}

// ListPrincipals returns all principals ordered by name.
func (s *Store) ListPrincipals(ctx context.Context) ([]Principal, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT `+principalCols+` FROM principals ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	out, err := collect(rows, scanPrincipal)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	return out, nil
}

// AddCredential records a credential of principal by the SHA-256 hash of its
// secret. The principal must exist (else ErrNotFound is wrapped); a duplicate
// id or hash wraps ErrExists.
func (s *Store) AddCredential(ctx context.Context, principal, id string, hash [32]byte) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := errors.Join(checkName("principal", principal), checkName("credential id", id)); err != nil {
		return fmt.Errorf("add credential %q: %w", id, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, `SELECT 1 FROM principals WHERE name = $1`, principal); err != nil {
			return fmt.Errorf("principal %q: %w", principal, err)
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO credentials (id, principal, hash, created) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			id, principal, hash[:], s.now().UnixNano())
		if err != nil {
			return err
		}
		return mustAffect(res, ErrExists)
	})
	if err != nil {
		return fmt.Errorf("add credential %q: %w", id, err)
	}
	return nil
}

const lookupCredentialQuery = `SELECT c.id, c.hash, p.name, p.kind, p.ceiling, p.created
	FROM credentials c JOIN principals p ON p.name = c.principal
	WHERE c.hash = $1 AND c.revoked IS NULL`

// LookupCredential returns the principal owning the unrevoked credential
// whose secret hashes to hash, and the credential's id. It wraps ErrNotFound
// if no such credential exists or it was revoked; the error never contains
// the hash.
func (s *Store) LookupCredential(ctx context.Context, hash [32]byte) (Principal, string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var (
		p       Principal
		id      string
		stored  []byte
		ceiling []byte
		created int64
	)
	err := s.lookupCredential.QueryRowContext(ctx, hash[:]).Scan(&id, &stored, &p.Name, &p.Kind, &ceiling, &created)
	if err != nil {
		return Principal{}, "", fmt.Errorf("lookup credential: %w", notFound(err))
	}
	// The index found the row by equality already; compare again in constant
	// time so no backend collation or encoding quirk can widen a match.
	if subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
		return Principal{}, "", fmt.Errorf("lookup credential: %w", ErrNotFound)
	}
	p.Ceiling = rawJSON(ceiling)
	p.Created = fromNanos(created)
	return p, id, nil
}

// RevokeCredential revokes the credential with the given id; later lookups
// of its hash wrap ErrNotFound. Revoking a revoked credential is a no-op; an
// unknown id wraps ErrNotFound.
func (s *Store) RevokeCredential(ctx context.Context, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, `SELECT 1 FROM credentials WHERE id = $1`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`UPDATE credentials SET revoked = $2 WHERE id = $1 AND revoked IS NULL`, id, s.now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke credential %q: %w", id, err)
	}
	return nil
}

// ---- agents ----

// CreateAgent registers a. It wraps ErrExists if an agent of that name
// exists and ErrNotFound if its sponsor does not.
func (s *Store) CreateAgent(ctx context.Context, a Agent) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if a.Status == "" {
		a.Status = AgentActive
	}
	if a.Created.IsZero() {
		a.Created = s.now()
	}
	errs := []error{
		checkName("name", a.Name),
		checkName("sponsor", a.Sponsor),
		checkEnum("status", a.Status, AgentActive, AgentQuarantined),
		checkJSON("ceiling", a.Ceiling),
		checkText("code digest", a.CodeDigest),
		checkTime("created", a.Created),
	}
	for _, g := range a.Groups {
		errs = append(errs, checkName("group", g))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("create agent %q: %w", a.Name, err)
	}
	groups, err := json.Marshal(nonNil(a.Groups))
	if err != nil {
		return fmt.Errorf("create agent %q: groups: %w", a.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, `SELECT 1 FROM principals WHERE name = $1`, a.Sponsor); err != nil {
			return fmt.Errorf("sponsor %q: %w", a.Sponsor, err)
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO agents (name, sponsor, groups_json, ceiling, code_digest, status, created)
			 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			a.Name, a.Sponsor, string(groups), jsonArg(a.Ceiling), a.CodeDigest, a.Status, a.Created.UnixNano())
		if err != nil {
			return err
		}
		return mustAffect(res, ErrExists)
	})
	if err != nil {
		return fmt.Errorf("create agent %q: %w", a.Name, err)
	}
	return nil
}

const agentCols = `name, sponsor, groups_json, ceiling, code_digest, status, created, trust`

func scanAgent(sc interface{ Scan(...any) error }) (Agent, error) {
	var (
		a               Agent
		groups, ceiling []byte
		created         int64
	)
	if err := sc.Scan(&a.Name, &a.Sponsor, &groups, &ceiling, &a.CodeDigest, &a.Status, &created, &a.Trust); err != nil {
		return Agent{}, err
	}
	if err := json.Unmarshal(groups, &a.Groups); err != nil {
		return Agent{}, fmt.Errorf("agent %q: groups: %w", a.Name, err)
	}
	if len(a.Groups) == 0 {
		a.Groups = nil
	}
	a.Ceiling = rawJSON(ceiling)
	a.Created = fromNanos(created)
	return a, nil
}

// GetAgent returns the named agent or wraps ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, name string) (Agent, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	a, err := scanAgent(s.r.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE name = $1`, name))
	if err != nil {
		return Agent{}, fmt.Errorf("get agent %q: %w", name, notFound(err))
	}
	return a, nil
}

// ListAgents returns the agents of sponsor ("" for all) ordered by name.
func (s *Store) ListAgents(ctx context.Context, sponsor string) ([]Agent, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	q := `SELECT ` + agentCols + ` FROM agents ORDER BY name`
	var args []any
	if sponsor != "" {
		q = `SELECT ` + agentCols + ` FROM agents WHERE sponsor = $1 ORDER BY name`
		args = append(args, sponsor)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out, err := collect(rows, scanAgent)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// SetAgentStatus sets the named agent's status to AgentActive or
// AgentQuarantined, or wraps ErrNotFound. It does not end the agent's
// sessions; callers that quarantine do that with EndSession.
func (s *Store) SetAgentStatus(ctx context.Context, name, status string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := checkEnum("status", status, AgentActive, AgentQuarantined); err != nil {
		return fmt.Errorf("set agent %q status: %w", name, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET status = $2 WHERE name = $1`, name, status)
	if err == nil {
		err = mustAffect(res, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set agent %q status: %w", name, err)
	}
	return nil
}

// DefaultTrust is the trust score of a newly registered agent.
const DefaultTrust = 50

// SetAgentTrust sets an agent's trust score (0-100).
func (s *Store) SetAgentTrust(ctx context.Context, name string, trust int) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if trust < 0 || trust > 100 {
		return fmt.Errorf("set agent %q trust: %d is not within 0-100", name, trust)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET trust = $2 WHERE name = $1`, name, trust)
	if err == nil {
		err = mustAffect(res, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set agent %q trust: %w", name, err)
	}
	return nil
}

// ---- sessions ----

// CreateSession records a new active session. The agent must exist (else
// ErrNotFound is wrapped) and be active (else ErrConflict). A child session's
// parent must exist (ErrNotFound), be active and not yet expired at the
// child's Created time (ErrConflict). RootID, Depth and Sponsor are filled in
// when empty and checked against the tree when set. A duplicate ID wraps
// ErrExists.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.createSession(ctx, &sess); err != nil {
		return fmt.Errorf("create session %q: %w", sess.ID, err)
	}
	return nil
}

func (s *Store) createSession(ctx context.Context, sess *Session) error {
	if sess.Status == "" {
		sess.Status = SessionActive
	}
	if sess.Created.IsZero() {
		sess.Created = s.now()
	}
	errs := []error{
		checkName("id", sess.ID),
		checkName("agent", sess.Agent),
		checkEnum("status", sess.Status, SessionActive),
		checkText("objective", sess.Objective),
		checkText("objective hash", sess.ObjectiveHash),
		checkText("spiffe id", sess.SPIFFEID),
		checkText("jkt", sess.JKT),
		checkText("grant id", sess.GrantID),
		checkJSON("scope", sess.Scope),
		checkTime("created", sess.Created),
	}
	if !sess.Expires.IsZero() {
		errs = append(errs, checkTime("expires", sess.Expires))
	}
	if sess.Sponsor != "" {
		errs = append(errs, checkName("sponsor", sess.Sponsor))
	}
	if sess.ParentID != "" {
		errs = append(errs, checkName("parent id", sess.ParentID))
	}
	if sess.RootID != "" {
		errs = append(errs, checkName("root id", sess.RootID))
	}
	if sess.EndReason != "" || !sess.Ended.IsZero() {
		errs = append(errs, errors.New("a new session cannot carry an end reason or end time"))
	}
	if sess.Expires.IsZero() {
		errs = append(errs, errors.New("expires is required"))
	} else if !sess.Expires.After(sess.Created) {
		errs = append(errs, errors.New("expires must be after created"))
	}
	if sess.Depth < 0 {
		errs = append(errs, errors.New("depth must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	in := *sess
	return s.write(ctx, func(tx *sql.Tx) error {
		*sess = in // a retried transaction starts from the caller's values
		// The agent's row is share-locked so that a concurrent quarantine
		// (SetAgentStatus) waits for this session to be committed, and a
		// caller that quarantines and then ends the agent's sessions sees
		// it.
		var sponsor, status string
		err := tx.QueryRowContext(ctx, `SELECT sponsor, status FROM agents WHERE name = $1`+s.forShare(), sess.Agent).
			Scan(&sponsor, &status)
		if err != nil {
			return fmt.Errorf("agent %q: %w", sess.Agent, notFound(err))
		}
		if status != AgentActive {
			return fmt.Errorf("agent %q is %s: %w", sess.Agent, status, ErrConflict)
		}
		if sess.Sponsor == "" {
			sess.Sponsor = sponsor
		}
		if sess.ParentID == "" {
			if sess.RootID == "" {
				sess.RootID = sess.ID
			}
			if sess.RootID != sess.ID {
				return fmt.Errorf("root session must have root id %q, not %q", sess.ID, sess.RootID)
			}
			if sess.Depth != 0 {
				return fmt.Errorf("root session must have depth 0, not %d", sess.Depth)
			}
		} else {
			var (
				root    string
				depth   int
				pstatus string
				expires int64
			)
			readParent := func() error {
				err := tx.QueryRowContext(ctx,
					`SELECT root_id, depth, status, expires FROM sessions WHERE id = $1`, sess.ParentID).
					Scan(&root, &depth, &pstatus, &expires)
				if err != nil {
					return fmt.Errorf("parent session %q: %w", sess.ParentID, notFound(err))
				}
				return nil
			}
			if err := readParent(); err != nil {
				return err
			}
			if s.pg {
				// Lock the tree, then read the parent again as the tree's
				// previous lock holder left it (ended, say).
				if err := s.lockTree(ctx, tx, root); err != nil {
					return err
				}
				if err := readParent(); err != nil {
					return err
				}
			}
			if pstatus != SessionActive {
				return fmt.Errorf("parent session %q has ended: %w", sess.ParentID, ErrConflict)
			}
			if !sess.Created.Before(fromNanos(expires)) {
				return fmt.Errorf("parent session %q has expired: %w", sess.ParentID, ErrConflict)
			}
			if sess.RootID == "" {
				sess.RootID = root
			}
			if sess.RootID != root {
				return fmt.Errorf("root id %q does not match parent's root %q", sess.RootID, root)
			}
			if sess.Depth == 0 {
				sess.Depth = depth + 1
			}
			if sess.Depth != depth+1 {
				return fmt.Errorf("depth %d does not match parent's depth %d + 1", sess.Depth, depth)
			}
			if sess.MaxTree > 0 {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE root_id = $1 AND status = 'active'`, root).Scan(&n); err != nil {
					return err
				}
				if n >= sess.MaxTree {
					return fmt.Errorf("the delegation tree of session %q has %d active sessions, the most one tree may have; end some first: %w", root, n, ErrConflict)
				}
			}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id, agent, sponsor, parent_id, root_id, depth, spiffe_id, objective,
			   objective_hash, scope, jkt, grant_id, status, end_reason, created, expires, ended, tags)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, '', $14, $15, NULL, $16)
			 ON CONFLICT DO NOTHING`,
			sess.ID, sess.Agent, sess.Sponsor, nullString(sess.ParentID), sess.RootID, sess.Depth,
			sess.SPIFFEID, sess.Objective, sess.ObjectiveHash, jsonArg(sess.Scope), sess.JKT, sess.GrantID,
			sess.Status, sess.Created.UnixNano(), sess.Expires.UnixNano(), tagsJSON(sess.Tags))
		if err != nil {
			return err
		}
		return mustAffect(res, ErrExists)
	})
}

const sessionCols = `id, agent, sponsor, parent_id, root_id, depth, spiffe_id, objective, objective_hash,
	scope, jkt, grant_id, status, end_reason, created, expires, ended, tags`

const getSessionQuery = `SELECT ` + sessionCols + ` FROM sessions WHERE id = $1`

func scanSession(sc interface{ Scan(...any) error }) (Session, error) {
	var (
		x                Session
		parent           sql.NullString
		scope, tags      []byte
		created, expires int64
		ended            sql.NullInt64
	)
	if err := sc.Scan(&x.ID, &x.Agent, &x.Sponsor, &parent, &x.RootID, &x.Depth, &x.SPIFFEID,
		&x.Objective, &x.ObjectiveHash, &scope, &x.JKT, &x.GrantID, &x.Status, &x.EndReason,
		&created, &expires, &ended, &tags); err != nil {
		return Session{}, err
	}
	if err := json.Unmarshal(tags, &x.Tags); err != nil {
		return Session{}, fmt.Errorf("session %q: tags: %w", x.ID, err)
	}
	if len(x.Tags) == 0 {
		x.Tags = nil
	}
	x.ParentID = parent.String
	x.Scope = rawJSON(scope)
	x.Created = fromNanos(created)
	x.Expires = fromNanos(expires)
	if ended.Valid {
		x.Ended = fromNanos(ended.Int64)
	}
	return x, nil
}

// GetSession returns the session with the given id or wraps ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	x, err := scanSession(s.getSession.QueryRowContext(ctx, id))
	if err != nil {
		return Session{}, fmt.Errorf("get session %q: %w", id, notFound(err))
	}
	return x, nil
}

// ListSessions returns the sessions matching f, newest first (ties broken by
// id, descending).
func (s *Store) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if f.Status != "" {
		if err := checkEnum("status", f.Status, SessionActive, SessionEnded); err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
	}
	if f.Limit < 0 {
		return nil, errors.New("list sessions: limit must not be negative")
	}
	var (
		where []string
		args  []any
	)
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	add("agent", f.Agent)
	add("sponsor", f.Sponsor)
	add("status", f.Status)
	q := `SELECT ` + sessionCols + ` FROM sessions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created DESC, id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := collect(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// EndSession ends the session with the given id and every active
// descendant (children, grandchildren, …) in one transaction, recording
// reason and at (the current time if zero) on each, and returns the ids it
// ended, ancestors before descendants (by depth, then creation time, then
// id). Ending an ended session is not an error: it ends whatever
// descendants are still active and returns only those. An unknown id wraps
// ErrNotFound.
func (s *Store) EndSession(ctx context.Context, id, reason string, at time.Time) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if at.IsZero() {
		at = s.now()
	}
	if err := errors.Join(checkText("reason", reason), checkTime("end time", at)); err != nil {
		return nil, fmt.Errorf("end session %q: %w", id, err)
	}
	var ended []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		var root string
		if err := tx.QueryRowContext(ctx, `SELECT root_id FROM sessions WHERE id = $1`, id).Scan(&root); err != nil {
			return notFound(err)
		}
		if err := s.lockTree(ctx, tx, root); err != nil {
			return err
		}
		var err error
		ended, err = endTree(ctx, tx, id, reason, at)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("end session %q: %w", id, err)
	}
	return ended, nil
}

// endTree ends the active sessions in the tree rooted at id and returns their
// ids, shallowest first.
func endTree(ctx context.Context, tx *sql.Tx, id, reason string, at time.Time) ([]string, error) {
	rows, err := tx.QueryContext(ctx,
		`WITH RECURSIVE tree(id, depth) AS (
		     SELECT id, 0 FROM sessions WHERE id = $1
		     UNION ALL
		     SELECT s.id, tree.depth + 1 FROM sessions s JOIN tree ON s.parent_id = tree.id
		 )
		 SELECT s.id FROM tree JOIN sessions s ON s.id = tree.id
		  WHERE s.status = 'active'
		  ORDER BY tree.depth, s.created, s.id`, id)
	if err != nil {
		return nil, err
	}
	ids, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var id string
		return id, sc.Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx,
			`UPDATE sessions SET status = 'ended', end_reason = $2, ended = $3 WHERE id = $1 AND status = 'active'`,
			id, reason, at.UnixNano()); err != nil {
			return nil, fmt.Errorf("end %q: %w", id, err)
		}
	}
	return ids, nil
}

// ExpireSessions ends, in one transaction, every active session whose
// Expires is at or before now, with reason ReasonExpired, together with all
// of its active descendants (which get the same reason), and returns the ids
// it ended, shallower sessions first.
func (s *Store) ExpireSessions(ctx context.Context, now time.Time) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := checkTime("now", now); err != nil {
		return nil, fmt.Errorf("expire sessions: %w", err)
	}
	var ended []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		ended = nil
		type dueSession struct{ id, root string }
		dueNow := func() ([]dueSession, error) {
			rows, err := tx.QueryContext(ctx,
				`SELECT id, root_id FROM sessions WHERE status = 'active' AND expires <= $1 ORDER BY depth, created, id`,
				now.UnixNano())
			if err != nil {
				return nil, err
			}
			return collect(rows, func(sc interface{ Scan(...any) error }) (dueSession, error) {
				var d dueSession
				return d, sc.Scan(&d.id, &d.root)
			})
		}
		due, err := dueNow()
		if err != nil {
			return err
		}
		if s.pg && len(due) > 0 {
			// Lock the trees in one order (by root id), so that two sweeps
			// cannot deadlock, then look again: a tree may have changed
			// while we waited. A session that fell due in a tree this sweep
			// did not lock is left to the next sweep, as if it had fallen
			// due just after this one.
			locked := map[string]bool{}
			roots := make([]string, 0, len(due))
			for _, d := range due {
				roots = append(roots, d.root)
			}
			slices.Sort(roots)
			for _, r := range slices.Compact(roots) {
				if err := s.lockTree(ctx, tx, r); err != nil {
					return err
				}
				locked[r] = true
			}
			if due, err = dueNow(); err != nil {
				return err
			}
			due = slices.DeleteFunc(due, func(d dueSession) bool { return !locked[d.root] })
		}
		for _, d := range due {
			id := d.id
			ids, err := endTree(ctx, tx, id, ReasonExpired, now)
			if err != nil {
				return err
			}
			ended = append(ended, ids...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire sessions: %w", err)
	}
	return ended, nil
}

// ---- tool pins ----

const pinCols = `server, tool, hash, definition, approved_hash, approved_by, updated`

func scanPin(sc interface{ Scan(...any) error }) (ToolPin, error) {
	var (
		p       ToolPin
		def     []byte
		updated int64
	)
	if err := sc.Scan(&p.Server, &p.Tool, &p.Hash, &def, &p.ApprovedHash, &p.ApprovedBy, &updated); err != nil {
		return ToolPin{}, err
	}
	p.Definition = rawJSON(def)
	p.Updated = fromNanos(updated)
	return p, nil
}

// GetPin returns the pin of server's tool or wraps ErrNotFound.
func (s *Store) GetPin(ctx context.Context, server, tool string) (ToolPin, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	p, err := scanPin(s.r.QueryRowContext(ctx,
		`SELECT `+pinCols+` FROM tool_pins WHERE server = $1 AND tool = $2`, server, tool))
	if err != nil {
		return ToolPin{}, fmt.Errorf("get pin %q/%q: %w", server, tool, notFound(err))
	}
	return p, nil
}

// PutPin inserts or replaces the pin of p.Server's p.Tool with p, every
// field included: a caller that observes a changed definition keeps the old
// ApprovedHash (and so the mismatch) by passing it back unchanged.
func (s *Store) PutPin(ctx context.Context, p ToolPin) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if p.Updated.IsZero() {
		p.Updated = s.now()
	}
	if err := errors.Join(
		checkName("server", p.Server),
		checkName("tool", p.Tool),
		checkName("hash", p.Hash),
		checkJSON("definition", p.Definition),
		checkText("approved hash", p.ApprovedHash),
		checkText("approved by", p.ApprovedBy),
		checkTime("updated", p.Updated),
	); err != nil {
		return fmt.Errorf("put pin %q/%q: %w", p.Server, p.Tool, err)
	}
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO tool_pins (server, tool, hash, definition, approved_hash, approved_by, updated)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (server, tool) DO UPDATE SET hash = excluded.hash, definition = excluded.definition,
		   approved_hash = excluded.approved_hash, approved_by = excluded.approved_by, updated = excluded.updated`,
		p.Server, p.Tool, p.Hash, jsonArg(p.Definition), p.ApprovedHash, p.ApprovedBy, p.Updated.UnixNano())
	if err != nil {
		return fmt.Errorf("put pin %q/%q: %w", p.Server, p.Tool, err)
	}
	return nil
}

// ListPins returns the pins of server ("" for every server) ordered by
// server and tool.
func (s *Store) ListPins(ctx context.Context, server string) ([]ToolPin, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	q := `SELECT ` + pinCols + ` FROM tool_pins ORDER BY server, tool`
	var args []any
	if server != "" {
		q = `SELECT ` + pinCols + ` FROM tool_pins WHERE server = $1 ORDER BY server, tool`
		args = append(args, server)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	out, err := collect(rows, scanPin)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

// ApprovePin records that by approved the definition of server's tool with
// the given hash. It succeeds only if hash is the currently observed Hash;
// if the definition changed again since the approver looked, it wraps
// ErrConflict and approves nothing. An unknown pin wraps ErrNotFound.
func (s *Store) ApprovePin(ctx context.Context, server, tool, hash, by string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := errors.Join(checkName("hash", hash), checkName("approver", by)); err != nil {
		return fmt.Errorf("approve pin %q/%q: %w", server, tool, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE tool_pins SET approved_hash = hash, approved_by = $4, updated = $5
			  WHERE server = $1 AND tool = $2 AND hash = $3`,
			server, tool, hash, by, s.now().UnixNano())
		if err != nil {
			return err
		}
		if mustAffect(res, ErrNotFound) == nil {
			return nil
		}
		if err := exists(ctx, tx, `SELECT 1 FROM tool_pins WHERE server = $1 AND tool = $2`, server, tool); err != nil {
			return err
		}
		return fmt.Errorf("the tool definition changed again since it was reviewed; review the current definition: %w", ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("approve pin %q/%q: %w", server, tool, err)
	}
	return nil
}

// ObservePin records, in one transaction, that server/tool is currently
// defined as def (whose hash is hash) and returns the pin as stored. A tool
// seen for the first time is pinned, and approved at once by
// approveFirstBy unless that is empty; for a known tool only the observed
// hash and definition change. ObservePin never touches an existing
// approval, so it cannot undo a concurrent ApprovePin. created reports a new
// pin, changed a hash that differs from the one observed before.
func (s *Store) ObservePin(ctx context.Context, server, tool, hash string, def json.RawMessage, approveFirstBy string) (p ToolPin, created, changed bool, err error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := s.now()
	if err := errors.Join(checkName("server", server), checkName("tool", tool), checkName("hash", hash),
		checkJSON("definition", def), checkText("approved by", approveFirstBy)); err != nil {
		return p, false, false, fmt.Errorf("observe pin %q/%q: %w", server, tool, err)
	}
	// The common case, a definition seen before, is a read: no write
	// transaction (and no fsync) on the hot path.
	if cur, err := scanPin(s.r.QueryRowContext(ctx, `SELECT `+pinCols+` FROM tool_pins WHERE server = $1 AND tool = $2`, server, tool)); err == nil && cur.Hash == hash {
		return cur, false, false, nil
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		// Insert first: of several first observations (from several nodes,
		// say) exactly one inserts; the others wait for it and then find
		// its row, as if they had come after it.
		p, created, changed = ToolPin{Server: server, Tool: tool, Hash: hash, Definition: def, Updated: now}, false, false
		if approveFirstBy != "" {
			p.ApprovedHash, p.ApprovedBy = hash, approveFirstBy
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tool_pins (server, tool, hash, definition, approved_hash, approved_by, updated)
			 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			server, tool, hash, jsonArg(def), p.ApprovedHash, p.ApprovedBy, now.UnixNano())
		if err != nil {
			return err
		}
		if mustAffect(res, ErrExists) == nil {
			created = true
			return nil
		}
		cur, err := scanPin(tx.QueryRowContext(ctx, `SELECT `+pinCols+` FROM tool_pins WHERE server = $1 AND tool = $2`+s.forUpdate(), server, tool))
		if err != nil {
			return err
		}
		if cur.Hash == hash {
			p = cur
			return nil
		}
		p, changed = cur, true
		p.Hash, p.Definition, p.Updated = hash, def, now
		_, err = tx.ExecContext(ctx, `UPDATE tool_pins SET hash = $3, definition = $4, updated = $5 WHERE server = $1 AND tool = $2`,
			server, tool, hash, jsonArg(def), now.UnixNano())
		return err
	})
	if err != nil {
		return p, false, false, fmt.Errorf("observe pin %q/%q: %w", server, tool, err)
	}
	return p, created, changed, nil
}

// ToolSet is what a store keeps of the tools one server offers: the names
// of the first set it ever listed, which trust on first use covers, and of
// the last set seen.
type ToolSet struct {
	Server  string
	First   []string
	Last    []string
	Created time.Time
	Updated time.Time
}

// ObserveToolSet records that server currently lists the tools named (in
// any order; duplicates are ignored). It returns the server's set as it
// is now (First and Last), the names it listed last time (previous) and
// whether this listing created the set. The first set recorded for a
// server never changes: when several nodes or sessions list a new server
// at once, exactly one listing becomes its first set. A server that has
// pins but no set (it was pinned before sets were kept) gets the names of
// its pins as its first set.
func (s *Store) ObserveToolSet(ctx context.Context, server string, names []string) (set ToolSet, previous []string, created bool, err error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := checkName("server", server); err != nil {
		return set, nil, false, fmt.Errorf("observe tool set %q: %w", server, err)
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	for _, n := range names {
		if err := checkName("tool", n); err != nil {
			return set, nil, false, fmt.Errorf("observe tool set %q: %w", server, err)
		}
	}
	if names == nil {
		names = []string{}
	}
	doc, err := json.Marshal(names)
	if err != nil {
		return set, nil, false, err
	}
	const q = `SELECT first, last, created, updated FROM tool_sets WHERE server = $1`
	// The common case, the same set as last time, is a read.
	if cur, err := scanToolSet(s.r.QueryRowContext(ctx, q, server), server); err == nil && slices.Equal(cur.Last, names) {
		return cur, cur.Last, false, nil
	}
	now := s.now()
	err = s.write(ctx, func(tx *sql.Tx) error {
		set, previous, created = ToolSet{}, nil, false
		rows, err := tx.QueryContext(ctx, `SELECT tool FROM tool_pins WHERE server = $1 ORDER BY tool`, server)
		if err != nil {
			return err
		}
		pinned, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
			var t string
			return t, sc.Scan(&t)
		})
		if err != nil {
			return err
		}
		first, prev, isNew := names, []string(nil), true
		if len(pinned) > 0 {
			first, prev, isNew = pinned, pinned, false
		}
		firstDoc, err := json.Marshal(first)
		if err != nil {
			return err
		}
		// Insert first: of several first listings (from several nodes,
		// say) exactly one inserts and becomes the first set; the others
		// wait for it and then update its last set.
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tool_sets (server, first, last, created, updated) VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING`,
			server, string(firstDoc), string(doc), now.UnixNano())
		if err != nil {
			return err
		}
		if mustAffect(res, ErrExists) == nil {
			set = ToolSet{Server: server, First: first, Last: names, Created: now, Updated: now}
			previous, created = prev, isNew
			return nil
		}
		cur, err := scanToolSet(tx.QueryRowContext(ctx, q+s.forUpdate(), server), server)
		if err != nil {
			return err
		}
		set, previous = cur, cur.Last
		set.Last, set.Updated = names, now
		_, err = tx.ExecContext(ctx, `UPDATE tool_sets SET last = $2, updated = $3 WHERE server = $1`, server, string(doc), now.UnixNano())
		return err
	})
	if err != nil {
		return ToolSet{}, nil, false, fmt.Errorf("observe tool set %q: %w", server, err)
	}
	return set, previous, created, nil
}

// GetToolSet returns what is kept of server's tools, or wraps ErrNotFound.
func (s *Store) GetToolSet(ctx context.Context, server string) (ToolSet, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	t, err := scanToolSet(s.r.QueryRowContext(ctx, `SELECT first, last, created, updated FROM tool_sets WHERE server = $1`, server), server)
	if err != nil {
		return ToolSet{}, fmt.Errorf("get tool set %q: %w", server, notFound(err))
	}
	return t, nil
}

func scanToolSet(row *sql.Row, server string) (ToolSet, error) {
	var first, last string
	var c, u int64
	if err := row.Scan(&first, &last, &c, &u); err != nil {
		return ToolSet{}, err
	}
	t := ToolSet{Server: server, Created: fromNanos(c), Updated: fromNanos(u)}
	if err := errors.Join(json.Unmarshal([]byte(first), &t.First), json.Unmarshal([]byte(last), &t.Last)); err != nil {
		return ToolSet{}, fmt.Errorf("stored tool set of %q is corrupt: %w", server, err)
	}
	return t, nil
}

// ---- meta ----

// GetMeta returns the value stored under key or wraps ErrNotFound.
func (s *Store) GetMeta(ctx context.Context, key string) (string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var v string
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v); err != nil {
		return "", fmt.Errorf("get meta %q: %w", key, notFound(err))
	}
	return v, nil
}

// SetMeta stores value under key, replacing any previous value.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := errors.Join(checkName("key", key), checkText("value", value)); err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	if _, err := s.w.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		key, value); err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}

// ---- helpers ----

// exists wraps ErrNotFound unless query returns a row.
func exists(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	var one int
	return notFound(tx.QueryRowContext(ctx, query, args...).Scan(&one))
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// mustAffect returns none unless res changed at least one row.
func mustAffect(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// jsonArg binds raw as text, or NULL when empty.
func jsonArg(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func checkName(what, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is empty", what)
	case len(v) > MaxNameLen:
		return fmt.Errorf("%s is longer than %d bytes", what, MaxNameLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s contains a control character", what)
		}
	}
	return nil
}

func checkText(what, v string) error {
	switch {
	case len(v) > MaxTextLen:
		return fmt.Errorf("%s is longer than %d bytes", what, MaxTextLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

func checkJSON(what string, raw json.RawMessage) error {
	switch {
	case len(raw) == 0:
		return nil
	case len(raw) > MaxJSONLen:
		return fmt.Errorf("%s is longer than %d bytes", what, MaxJSONLen)
	case !utf8.Valid(raw) || !json.Valid(raw):
		return fmt.Errorf("%s is not valid JSON", what)
	}
	return nil
}

func checkEnum(what, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q is not one of %s", what, v, strings.Join(allowed, ", "))
}

// checkTime rejects times that Unix nanoseconds cannot represent.
func checkTime(what string, t time.Time) error {
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return fmt.Errorf("%s %s is outside the representable range (years 1678 to 2262)", what, t.UTC().Format(time.RFC3339))
	}
	return nil
}

func tagsJSON(tags []string) string {
	if len(tags) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

// CountToolSets returns how many servers whose key ends in suffix have a
// tool set; an empty suffix counts every server.
func (s *Store) CountToolSets(ctx context.Context, suffix string) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int
	// substr with a negative start means different things to SQLite and
	// PostgreSQL; a positive start means the same (in characters).
	if err := s.r.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM tool_sets
		  WHERE length(server) >= length(CAST($1 AS TEXT)) AND substr(server, length(server) - length(CAST($1 AS TEXT)) + 1) = $1`,
		suffix).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tool sets: %w", err)
	}
	return n, nil
}
