// Package quota enforces ward's collective limits: rate limits and budgets
// that hold exactly for a session, an agent, a group of agents or everything
// a sponsor is accountable for, however many sessions call at once.
//
// # Limits
//
// A [Limit] counts the calls its [Matcher] selects (or sums a numeric cost
// the caller supplies, such as "rows") over a sliding window, separately for
// each key of its [Scope]:
//
//	session   the call's session id
//	agent     the call's agent name
//	group     each of the agent's groups (a call counts once in every group)
//	sponsor   the accountable sponsor
//
// A limit with a Key applies only to that one session, agent, group or
// sponsor. A call without a sponsor is not under any sponsor limit, and an
// agent in no group is not under any group limit; a call that a session or
// agent limit matches must name its session or agent, or it is refused with
// an error.
//
// # Reserving
//
// [Limiter.Reserve] is the only way usage is recorded. It checks every limit
// the call matches, for every key the call falls under, and records the call
// in all of them only if none would go over its Max: all or nothing. When
// some would, nothing is recorded and each [Exceeded] says which limit and
// key, how much is in use, and how long until enough usage has left the
// window. The limit's OnExceed ("deny" or "escalate") is carried through for
// the caller to act on; quota itself never waits.
//
// A worked example: the limit
//
//	Limit{ID: "schema-changes", Scope: ScopeGroup,
//	      Match: Matcher{Tools: []string{"db.create_index", "db.alter_*"}},
//	      Window: time.Hour, Max: 3, OnExceed: OnExceedEscalate}
//
// lets the agents of each group together make three schema changes in any
// hour. If fifty agents of group "shards" call db.create_index at the same
// instant, exactly three reservations succeed; the other 47 get an Exceeded
// with Key "shards", Used 3, Requested 1, Max 3 and RetryAfter one hour.
// If the first of the three is cancelled (the upstream failed before it
// acted), one more call fits.
//
// # Sliding windows
//
// Usage is kept as a log of event times per (limit, key). A call at time t
// fits if the usage of the window (t-Window, t] plus its own cost is at most
// Max; usage recorded at t leaves the window exactly at t+Window. Because
// every (limit, key) keeps its own monotonic clock (a call stamped earlier
// than one already seen is treated as happening at the latest time seen),
// the recorded usage of any window of length Window never exceeds Max, also
// when callers' clocks disagree.
//
// Memory per key is bounded by [Config.MaxEventsPerKey]. Events at the same
// instant share one entry. Only when a key's log is full are entries that fall
// into the same 1/(MaxEventsPerKey/2) of the window merged into the latest of
// them: merged usage leaves the window at most Window/(MaxEventsPerKey/2)
// late. This errs only towards refusing: a limit is never exceeded, but a call
// the exact log would admit may be refused (and RetryAfter overstated) by that
// much. A count limit with Max at most MaxEventsPerKey never fills its log and
// is always exact.
//
// Costs are float64. Sums of integer costs are exact up to 2^53; with
// fractional costs the sums are float64 arithmetic, recomputed from the log
// whenever usage leaves it so that rounding does not accumulate.
//
// # Concurrency
//
// There is no global lock. Each (limit, key) has its own mutex; Reserve locks
// the ones a call touches in a canonical order (by limit id, scope and key),
// so concurrent reservations never deadlock and are serialised exactly where
// they share a key: 1,000 sessions of one group contend only on the group's
// lock, while unrelated sessions never contend at all. The per-key maps are
// sharded with read-mostly locks, and the limits themselves are an immutable
// set swapped atomically by [Limiter.Update].
//
// The number of tracked keys is bounded by [Config.MaxKeys]. Keys whose usage
// has left the window are swept as new keys are created; when the bound is
// still reached, Reserve fails closed with [ErrTooManyKeys].
//
// # State
//
// [Limiter.Snapshot] exports the window contents as plain structs and
// [Limiter.Restore] loads them, for a store-backed limiter or a restart.
package quota
