package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Request states. A request is created pending and leaves that state once:
// to approved (quorum reached), denied (an eligible deny vote) or expired
// (its timeout passed). An approved request becomes used when a SingleUse
// approval is redeemed, or expired when it is not redeemed in time. Denied,
// expired and used are final. The gateway treats everything but approved as
// deny.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateDenied   = "denied"
	StateExpired  = "expired"
	StateUsed     = "used"
)

// Voter kinds, recorded in each Vote.
const (
	KindHuman = "human" // a person, through the CLI or API
	KindAgent = "agent" // a reviewer agent, through AskReviewers
)

// Defaults applied by New and Submit to zero values.
const (
	// DefaultTimeout is how long a request waits for its quorum, and how
	// long an approval stays redeemable, when neither the Requirement nor
	// the Config says otherwise.
	DefaultTimeout = 15 * time.Minute
	// DefaultMaxPending bounds the pending requests held at once; Submit
	// beyond it fails closed with ErrFull.
	DefaultMaxPending = 10000
	// DefaultReviewTimeout bounds each Reviewer call made by AskReviewers.
	DefaultReviewTimeout = 30 * time.Second
	// DefaultMaxResponse bounds the body a WebhookReviewer reads.
	DefaultMaxResponse = 64 << 10
)

// Errors callers branch on. Every error the package returns for these
// conditions wraps one of them; the comment says what an HTTP API should
// answer.
var (
	// ErrNotFound: no request has this ID (404).
	ErrNotFound = errors.New("approval request not found")
	// ErrClosed: the request is no longer pending: approved, denied,
	// expired or used (409).
	ErrClosed = errors.New("approval request is closed")
	// ErrNotEligible: the voter is in none of the required groups, or has
	// no name or an unknown kind (403).
	ErrNotEligible = errors.New("voter is not eligible")
	// ErrDuplicateVote: the voter has already voted on this request (409).
	ErrDuplicateVote = errors.New("voter has already voted")
	// ErrSelfApproval: the voter is the sponsor of the requesting agent (or
	// the agent itself) and tried to approve (403).
	ErrSelfApproval = errors.New("self-approval is not allowed")
	// ErrFull: MaxPending requests are already pending (503); the call is
	// denied rather than queued without bound.
	ErrFull = errors.New("approval queue is full")
	// ErrInvalid: malformed input such as arguments that are not one
	// strict JSON value, a request without a session, or a requirement
	// without groups (400).
	ErrInvalid = errors.New("invalid approval input")
)

// Requirement is what a policy demands before an escalated call may run.
type Requirement struct {
	// Quorum is the number of distinct eligible voters that must approve.
	// Zero means 1; negative is invalid.
	Quorum int `json:"quorum"`
	// Groups lists the approver groups; a voter is eligible when it is in
	// at least one of them. At least one group is required.
	Groups []string `json:"groups"`
	// Timeout is how long the request may stay pending, and how long an
	// approval stays redeemable after it is granted. Zero means
	// Config.DefaultTimeout.
	Timeout time.Duration `json:"timeout_ns"`
	// SingleUse makes an approval redeemable once (state used afterwards);
	// otherwise it is redeemable until it expires.
	SingleUse bool `json:"single_use"`
	// AllowSponsorSelfApproval lets the requesting agent's sponsor approve.
	AllowSponsorSelfApproval bool `json:"allow_sponsor_self_approval"`
}

// Request is one escalated call awaiting, or having received, a decision.
type Request struct {
	ID        string `json:"id"` // random, URL-safe, assigned by Submit
	Session   string `json:"session"`
	Agent     string `json:"agent"`
	Sponsor   string `json:"sponsor"`
	SPIFFEID  string `json:"spiffe_id"`
	Objective string `json:"objective"`
	Server    string `json:"server"`
	Method    string `json:"method"`
	Name      string `json:"name"`
	// Arguments are the call's arguments exactly as the agent sent them.
	Arguments json.RawMessage `json:"arguments"`
	// CallHash is CallHash(Method, Name, Arguments), set by Submit.
	CallHash string   `json:"call_hash"`
	Reasons  []string `json:"reasons"`  // why the call was escalated
	Policies []string `json:"policies"` // policy ids that escalated it
	// Provenance says, for each argument whose value came from text the
	// session read rather than from its objective (context.tainted_arguments),
	// where the value came from: the source, its taint labels and the
	// audit event of the result it appeared in.
	Provenance  []ArgumentProvenance `json:"provenance,omitempty"`
	Requirement Requirement          `json:"requirement"`
	// Decision is the audit index of the recorded decision that escalated
	// the call (0 if not known).
	Decision uint64    `json:"decision_event,omitempty"`
	Created  time.Time `json:"created"`
	// Expires is when a pending request expires; once approved, when the
	// approval stops being redeemable (reset to approval time + Timeout).
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	Votes   []Vote    `json:"votes"` // in the order cast
}

// ArgumentProvenance is where the value of one argument of an escalated
// call came from (see provenance.Finding).
type ArgumentProvenance struct {
	// Argument is the argument's path ("to", "recipients.2").
	Argument string `json:"argument"`
	// Value is the value, or the part of it (a host, an address), that an
	// untrusted result held, cut to 64 bytes; Kind says what it is
	// ("e-mail address", "URL", "text").
	Value string `json:"value,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Source is the tool ("server.tool") or host ("host:example.org")
	// whose untrusted result first held the value, Labels the taint
	// labels that source gives the session, and Event the audit index of
	// that result. Results counts the untrusted results that held it.
	Source  string   `json:"source,omitempty"`
	Labels  []string `json:"labels,omitempty"`
	Event   uint64   `json:"event,omitempty"`
	Results int      `json:"results,omitempty"`
	// Partial: the value was not found, but the result Source and Event
	// name was not fully indexed and may have held it.
	Partial bool `json:"partial,omitempty"`
	// Unjustified: a justified argument whose value the objective and
	// trusted data do not justify.
	Unjustified bool `json:"unjustified,omitempty"`
}

// Vote is one recorded vote.
type Vote struct {
	Voter string `json:"voter"`
	// Groups are the required groups the voter qualified through.
	Groups  []string  `json:"groups"`
	Approve bool      `json:"approve"`
	Reason  string    `json:"reason"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // KindHuman or KindAgent
}

// Voter is an authenticated principal casting a vote. The caller (API, CLI,
// AskReviewers) is responsible for having authenticated it.
type Voter struct {
	Name   string
	Groups []string
	// Kind is KindHuman (the default when empty) or KindAgent.
	Kind string
	// Sponsors lists the sponsors this voter is (for separation of duties):
	// a voter may not approve a request whose Sponsor is among them, or is
	// its Name, unless the Requirement allows it.
	Sponsors []string
}

// Config configures a Queue. Zero values take the documented defaults.
type Config struct {
	// Store persists requests; nil means a new MemoryStore.
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DefaultTimeout applies to requirements without a Timeout; zero means
	// DefaultTimeout.
	DefaultTimeout time.Duration
	// MaxPending bounds pending requests; zero means DefaultMaxPending.
	MaxPending int
	// MaxPendingPerSession and MaxPendingPerSponsor bound the pending
	// requests of one session and of one sponsor's sessions, so that no
	// session (or sponsor) can fill the queue and have every other
	// escalation denied; zero means max(1, MaxPending/16, at most 64) and
	// max(1, MaxPending/2).
	MaxPendingPerSession int
	MaxPendingPerSponsor int
	// ReviewTimeout bounds each Reviewer call in AskReviewers; zero means
	// DefaultReviewTimeout.
	ReviewTimeout time.Duration
	// OnChange, if set, is called synchronously after every change to a
	// stored request (creation, each vote, each state change), with the
	// request as stored. It runs with the queue locked, so it observes
	// changes in the order they were made and must not call the Queue.
	OnChange func(Request)
}

// Queue holds escalated requests and decides them by quorum. It is safe for
// concurrent use; its methods are serialised by one lock.
type Queue struct {
	store         Store
	now           func() time.Time
	timeout       time.Duration
	maxPending    int
	maxSession    int
	maxSponsor    int
	reviewTimeout time.Duration
	onChange      func(Request)

	mu        sync.Mutex
	pending   int                      // stored requests in StatePending
	bySession map[string]int           // pending requests of each session
	bySponsor map[string]int           // pending requests of each sponsor
	waiters   map[string]chan struct{} // closed when the request leaves pending
}

// New returns a Queue for cfg. It counts the pending requests already in
// cfg.Store.
func New(cfg Config) (*Queue, error) {
	q := &Queue{
		store:         cfg.Store,
		now:           cfg.Now,
		timeout:       cfg.DefaultTimeout,
		maxPending:    cfg.MaxPending,
		maxSession:    cfg.MaxPendingPerSession,
		maxSponsor:    cfg.MaxPendingPerSponsor,
		bySession:     map[string]int{},
		bySponsor:     map[string]int{},
		reviewTimeout: cfg.ReviewTimeout,
		onChange:      cfg.OnChange,
		waiters:       map[string]chan struct{}{},
	}
	if q.store == nil {
		q.store = NewMemoryStore()
	}
	if q.now == nil {
		q.now = time.Now
	}
	switch {
	case q.timeout < 0:
		return nil, fmt.Errorf("approval config: negative default timeout: %w", ErrInvalid)
	case q.maxPending < 0 || q.maxSession < 0 || q.maxSponsor < 0:
		return nil, fmt.Errorf("approval config: negative max pending: %w", ErrInvalid)
	case q.reviewTimeout < 0:
		return nil, fmt.Errorf("approval config: negative review timeout: %w", ErrInvalid)
	}
	if q.timeout == 0 {
		q.timeout = DefaultTimeout
	}
	if q.maxPending == 0 {
		q.maxPending = DefaultMaxPending
	}
	if q.maxSession == 0 {
		q.maxSession = max(1, min(64, q.maxPending/16))
	}
	if q.maxSponsor == 0 {
		q.maxSponsor = max(1, q.maxPending/2)
	}
	if q.reviewTimeout == 0 {
		q.reviewTimeout = DefaultReviewTimeout
	}
	pending, err := q.store.List(context.Background(), Filter{State: StatePending})
	if err != nil {
		return nil, fmt.Errorf("approval config: count pending requests: %w", err)
	}
	q.pending = len(pending)
	for _, r := range pending {
		q.bySession[r.Session]++
		q.bySponsor[r.Sponsor]++
	}
	return q, nil
}

// Submit queues r for approval and returns it as stored. Submit sets ID,
// CallHash, Created, Expires and State (pending) and clears Votes; a
// CallHash the caller did set must equal the computed one. If a pending
// request with the same Session, CallHash and Requirement exists, Submit
// returns it instead and changes nothing. When MaxPending requests are
// pending (after expiring the timed-out ones) it fails with ErrFull.
func (q *Queue) Submit(ctx context.Context, r Request) (Request, error) {
	hash, err := CallHash(r.Method, r.Name, r.Arguments)
	if err != nil {
		return Request{}, fmt.Errorf("submit: %w", err)
	}
	if r.CallHash != "" && r.CallHash != hash {
		return Request{}, fmt.Errorf("submit: call hash does not match method, name and arguments: %w", ErrInvalid)
	}
	if r.Session == "" {
		return Request{}, fmt.Errorf("submit: empty session: %w", ErrInvalid)
	}
	if r.Method == "" {
		return Request{}, fmt.Errorf("submit: empty method: %w", ErrInvalid)
	}
	req, err := q.normalize(r.Requirement)
	if err != nil {
		return Request{}, fmt.Errorf("submit: %w", err)
	}
	r = r.clone()
	r.CallHash, r.Requirement, r.State, r.Votes = hash, req, StatePending, nil

	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	same, err := q.store.List(ctx, Filter{Session: r.Session, State: StatePending, CallHash: hash})
	if err != nil {
		return Request{}, fmt.Errorf("submit: %w", err)
	}
	for _, e := range same {
		if e.Session != r.Session || e.CallHash != hash || !sameRequirement(e.Requirement, req) {
			continue
		}
		if e, err = q.settle(ctx, e, now); err != nil {
			return Request{}, fmt.Errorf("submit: %w", err)
		}
		if e.State == StatePending {
			return e, nil
		}
	}
	if q.pending >= q.maxPending {
		if _, err := q.expire(ctx, now); err != nil {
			return Request{}, fmt.Errorf("submit: %w", err)
		}
		if q.pending >= q.maxPending {
			return Request{}, fmt.Errorf("submit: %d requests pending: %w", q.pending, ErrFull)
		}
	}
	if q.bySession[r.Session] >= q.maxSession || q.bySponsor[r.Sponsor] >= q.maxSponsor {
		if _, err := q.expire(ctx, now); err != nil {
			return Request{}, fmt.Errorf("submit: %w", err)
		}
		if n := q.bySession[r.Session]; n >= q.maxSession {
			return Request{}, fmt.Errorf("submit: session %s already has %d requests pending (the most one session may): %w", r.Session, n, ErrFull)
		}
		if n := q.bySponsor[r.Sponsor]; n >= q.maxSponsor {
			return Request{}, fmt.Errorf("submit: sponsor %s's sessions already have %d requests pending (the most one sponsor may): %w", r.Sponsor, n, ErrFull)
		}
	}
	r.ID = newID()
	switch _, err := q.store.Get(ctx, r.ID); {
	case err == nil:
		return Request{}, fmt.Errorf("submit: request id collision")
	case !errors.Is(err, ErrNotFound):
		return Request{}, fmt.Errorf("submit: %w", err)
	}
	r.Created, r.Expires = now, now.Add(req.Timeout)
	if err := q.put(ctx, "", r); err != nil {
		return Request{}, fmt.Errorf("submit: %w", err)
	}
	return r.clone(), nil
}

// Vote records v's vote on request id and returns the request afterwards.
//
// The request is approved as soon as Quorum distinct eligible voters have
// approved, and denied by the first eligible deny vote: a deny is a veto.
// A voter is eligible when it shares a group with Requirement.Groups. The
// sponsor of the requesting agent (and the agent itself) may deny but not
// approve, unless AllowSponsorSelfApproval is set (which never lets the
// agent approve itself).
//
// Errors wrap ErrNotFound, ErrClosed (not pending, including just timed
// out), ErrNotEligible, ErrSelfApproval or ErrDuplicateVote, checked in
// that order. On error no vote is recorded; a request found timed out is
// still resolved to expired, as any access would.
func (q *Queue) Vote(ctx context.Context, id string, v Voter, approve bool, reason string) (Request, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if u, ok := q.store.(Updater); ok {
		return q.voteShared(ctx, u, id, v, approve, reason, now)
	}
	r, err := q.get(ctx, id, now)
	if err != nil {
		return Request{}, fmt.Errorf("vote: %w", err)
	}
	if r, err = q.cast(r, v, approve, reason, now); err != nil {
		return Request{}, err
	}
	if err := q.put(ctx, StatePending, r); err != nil {
		return Request{}, fmt.Errorf("vote on %s: %w", id, err)
	}
	return r.clone(), nil
}

// Get returns request id, resolving it to expired first if it timed out.
func (q *Queue) Get(ctx context.Context, id string) (Request, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.get(ctx, id, q.now())
}

// List returns the requests matching f, ordered by Created and then ID,
// after resolving every timed-out request (as Expire does).
func (q *Queue) List(ctx context.Context, f Filter) ([]Request, error) {
	switch f.State {
	case "", StatePending, StateApproved, StateDenied, StateExpired, StateUsed:
	default:
		return nil, fmt.Errorf("list: unknown state %q: %w", f.State, ErrInvalid)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.expire(ctx, q.now()); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	rs, err := q.store.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return rs, nil
}

// Redeem is called by the gateway when an agent retries an escalated call.
// It reports whether an approved, unexpired request of this session exists
// for exactly this call (same CallHash: the same arguments up to key order
// and whitespace; an approval of different arguments never matches). If
// several do, it takes the one expiring first. A SingleUse approval is
// marked used and will not match again.
func (q *Queue) Redeem(ctx context.Context, session, method, name string, args json.RawMessage) (Request, bool, error) {
	if session == "" {
		return Request{}, false, fmt.Errorf("redeem: empty session: %w", ErrInvalid)
	}
	hash, err := CallHash(method, name, args)
	if err != nil {
		return Request{}, false, fmt.Errorf("redeem: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	rs, err := q.store.List(ctx, Filter{Session: session, State: StateApproved, CallHash: hash})
	if err != nil {
		return Request{}, false, fmt.Errorf("redeem: %w", err)
	}
	var best *Request
	for _, r := range rs {
		if r.Session != session || r.CallHash != hash || r.State != StateApproved {
			continue // a Store that filters wrongly never widens an approval
		}
		if r, err = q.settle(ctx, r, now); err != nil {
			return Request{}, false, fmt.Errorf("redeem: %w", err)
		}
		if r.State == StateApproved && (best == nil || r.Expires.Before(best.Expires)) {
			best = &r
		}
	}
	if best == nil {
		return Request{}, false, nil
	}
	if u, ok := q.store.(Updater); ok && best.Requirement.SingleUse {
		r, used, err := q.useShared(ctx, u, best.ID, now)
		if err != nil {
			return Request{}, false, fmt.Errorf("redeem %s: %w", best.ID, err)
		}
		return r.clone(), used, nil
	}
	if best.Requirement.SingleUse {
		best.State = StateUsed
		if err := q.put(ctx, StateApproved, *best); err != nil {
			return Request{}, false, fmt.Errorf("redeem %s: %w", best.ID, err)
		}
	}
	return best.clone(), true, nil
}

// Wait blocks until request id leaves pending, and returns it. It resolves
// the request to expired itself when its timeout passes by Config.Now
// (with a fake clock, advance it and call Expire). If ctx ends first, Wait
// returns the request as last seen, still pending, with ctx's error.
func (q *Queue) Wait(ctx context.Context, id string) (Request, error) {
	for {
		q.mu.Lock()
		now := q.now()
		r, err := q.get(ctx, id, now)
		if err != nil || r.State != StatePending {
			q.mu.Unlock()
			return r, err
		}
		ch := q.waiters[id]
		if ch == nil {
			ch = make(chan struct{})
			q.waiters[id] = ch
		}
		q.mu.Unlock()

		t := time.NewTimer(r.Expires.Sub(now))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, fmt.Errorf("wait for %s: %w", id, ctx.Err())
		}
		t.Stop()
	}
}

// Expire resolves every request whose time has passed: pending requests
// and unredeemed approvals become expired. It returns them. The gateway
// should call it periodically; every other method also resolves the
// requests it touches.
func (q *Queue) Expire(ctx context.Context) ([]Request, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out, err := q.expire(ctx, q.now())
	if err != nil {
		return out, fmt.Errorf("expire: %w", err)
	}
	return out, nil
}

// expire resolves every timed-out request. q.mu must be held.
func (q *Queue) expire(ctx context.Context, now time.Time) ([]Request, error) {
	var out []Request
	for _, state := range []string{StatePending, StateApproved} {
		rs, err := q.store.List(ctx, Filter{State: state})
		if err != nil {
			return out, err
		}
		for _, r := range rs {
			if r.State != state || now.Before(r.Expires) {
				continue
			}
			if r, err = q.settle(ctx, r, now); err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// get loads id and settles it. q.mu must be held.
func (q *Queue) get(ctx context.Context, id string, now time.Time) (Request, error) {
	r, err := q.store.Get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	return q.settle(ctx, r, now)
}

// settle resolves r to expired if it is pending or approved and its time
// has passed. q.mu must be held.
func (q *Queue) settle(ctx context.Context, r Request, now time.Time) (Request, error) {
	if (r.State != StatePending && r.State != StateApproved) || now.Before(r.Expires) {
		return r, nil
	}
	if u, ok := q.store.(Updater); ok {
		return q.settleShared(ctx, u, r.ID, now)
	}
	old := r.State
	r.State = StateExpired
	if err := q.put(ctx, old, r); err != nil {
		return Request{}, fmt.Errorf("expire %s: %w", r.ID, err)
	}
	return r, nil
}

// count takes one pending request of key off m.
func (q *Queue) count(m map[string]int, key string) {
	if m[key] <= 1 {
		delete(m, key)
		return
	}
	m[key]--
}

// put stores r, whose stored state was old ("" if new), and then updates
// the pending count, wakes waiters and calls OnChange. q.mu must be held.
func (q *Queue) put(ctx context.Context, old string, r Request) error {
	if err := q.store.Put(ctx, r); err != nil {
		return err
	}
	q.effects(old, r)
	return nil
}

// effects follows a stored change of r from state old: it updates the
// pending count, wakes waiters and calls OnChange. q.mu must be held.
func (q *Queue) effects(old string, r Request) {
	if old != StatePending && r.State == StatePending {
		q.pending++
		q.bySession[r.Session]++
		q.bySponsor[r.Sponsor]++
	}
	if old == StatePending && r.State != StatePending {
		// With a shared store the request may have been counted by
		// another node's queue only (Changed recounts).
		q.pending = max(0, q.pending-1)
		q.count(q.bySession, r.Session)
		q.count(q.bySponsor, r.Sponsor)
		if ch := q.waiters[r.ID]; ch != nil {
			close(ch)
			delete(q.waiters, r.ID)
		}
	}
	if q.onChange != nil {
		q.onChange(r.clone())
	}
}

func (q *Queue) normalize(req Requirement) (Requirement, error) {
	switch {
	case req.Quorum < 0:
		return req, fmt.Errorf("negative quorum: %w", ErrInvalid)
	case req.Timeout < 0:
		return req, fmt.Errorf("negative timeout: %w", ErrInvalid)
	case len(req.Groups) == 0:
		return req, fmt.Errorf("requirement names no approver group: %w", ErrInvalid)
	case slices.Contains(req.Groups, ""):
		return req, fmt.Errorf("requirement names an empty group: %w", ErrInvalid)
	}
	if req.Quorum == 0 {
		req.Quorum = 1
	}
	if req.Timeout == 0 {
		req.Timeout = q.timeout
	}
	req.Groups = slices.Clone(req.Groups)
	return req, nil
}

func sameRequirement(a, b Requirement) bool {
	return a.Quorum == b.Quorum && a.Timeout == b.Timeout && a.SingleUse == b.SingleUse &&
		a.AllowSponsorSelfApproval == b.AllowSponsorSelfApproval && slices.Equal(a.Groups, b.Groups)
}

// eligible returns the vote kind and the required groups v belongs to.
func eligible(r *Request, v Voter) (kind string, groups []string, err error) {
	if v.Name == "" {
		return "", nil, fmt.Errorf("voter without a name: %w", ErrNotEligible)
	}
	switch kind = v.Kind; kind {
	case "":
		kind = KindHuman
	case KindHuman, KindAgent:
	default:
		return "", nil, fmt.Errorf("voter %q has unknown kind %q: %w", v.Name, v.Kind, ErrNotEligible)
	}
	for _, g := range r.Requirement.Groups {
		if slices.Contains(v.Groups, g) && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return "", nil, fmt.Errorf("voter %q is in none of the groups %q: %w", v.Name, r.Requirement.Groups, ErrNotEligible)
	}
	return kind, groups, nil
}

// selfApproval reports whether v approving r would be the requesting agent
// approving itself, or its sponsor approving without permission.
func selfApproval(r *Request, v Voter) bool {
	if v.Name == r.Agent || v.Name == r.SPIFFEID || v.Name == r.Session {
		return true
	}
	if r.Requirement.AllowSponsorSelfApproval || r.Sponsor == "" {
		return false
	}
	return v.Name == r.Sponsor || slices.Contains(v.Sponsors, r.Sponsor)
}

func approvals(r *Request) int {
	n := 0
	for _, v := range r.Votes {
		if v.Approve {
			n++ // voters are distinct: Vote refuses a second vote
		}
	}
	return n
}

// ids encode approval ids: lower-case base32, so an id is one word that
// never begins with "-" (a base64url id did one time in 64, and
// `ward approvals approve ID` took it for a flag) and survives being read
// aloud or typed.
var ids = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 128 random bits as 26 characters of ids.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails; crashes the program if the OS cannot supply randomness
	return ids.EncodeToString(b[:])
}

func (r Request) clone() Request {
	r.Arguments = bytesClone(r.Arguments)
	r.Reasons = slices.Clone(r.Reasons)
	r.Policies = slices.Clone(r.Policies)
	if r.Provenance != nil {
		ps := make([]ArgumentProvenance, len(r.Provenance))
		for i, p := range r.Provenance {
			p.Labels = slices.Clone(p.Labels)
			ps[i] = p
		}
		r.Provenance = ps
	}
	r.Requirement.Groups = slices.Clone(r.Requirement.Groups)
	if r.Votes != nil {
		vs := make([]Vote, len(r.Votes))
		for i, v := range r.Votes {
			v.Groups = slices.Clone(v.Groups)
			vs[i] = v
		}
		r.Votes = vs
	}
	return r
}

func bytesClone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
