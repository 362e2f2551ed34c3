// Package monitor watches what agents do and decides when to respond:
// behavioural baselines, anomaly and drift detection, collective (swarm)
// detection, a trust score per agent, and playbooks that turn signals into
// actions. It only decides. The caller feeds it one [Event] per tool call
// or egress request and carries out the [Action]s it returns (deny the
// call, escalate the session, quarantine the agent through the authority,
// alert, preserve a forensic bundle). There is no I/O, no goroutine and no
// language model here: given the same events and clock, a monitor returns
// the same signals, actions and scores.
//
// # Events
//
// The gateway calls [Monitor.Observe] for every call once it has decided
// it, before forwarding it, so that a "block" action can still stop it:
// agent, groups, session, tool (or host, for egress), its verb and
// category, the decision, the bytes the agent sends (BytesOut, data
// leaving) and, when known, receives (BytesIn). Drift and Risk are
// computed upstream: Drift is [OutsideObjective] of the session's declared
// categories and the tool's [Categories]; Risk is content scanning's
// score. An event without a Time happens at Config.Now(). Each agent's
// clock only moves forward: an event stamped before one already seen is
// treated as happening at the latest time seen.
//
// # Objective
//
// A session may declare the tool categories it needs ("database",
// "email"). Categories maps tool names to categories with patterns, the
// most specific winning ("db.*" → database, "mail.send" → email and
// external); OutsideObjective reports a call whose categories are not all
// declared, and treats a tool without categories as outside any
// declaration. A session that declared nothing is never outside. The
// caller sets Event.Drift; the monitor raises a drift signal for it.
//
// # Baselines
//
// Every agent has a baseline, learned from its own events: the tools and
// egress hosts it uses, the categories of those (Event.Category, else the
// Config.Categories patterns), the pairs and triples of consecutive tool
// calls within a session, and the 95th percentiles of its calls and of its
// bytes sent per calendar minute. An agent learns until it has produced
// Config.Learn events, been seen for Config.LearnFor, and been active in
// at least one full minute (its first minute, which began before it
// appeared, is not sampled: it would understate the rate). Then its
// baseline is frozen and enforced. A frozen baseline never changes, so
// behaviour that was anomalous stays anomalous (and a block keeps
// blocking) until an operator calls [Monitor.Relearn].
//
// Every group has a baseline too: the pooled baselines of its agents (what
// is normal for an agent of that group, not the group's total), learned
// from all its members' events and completed in the same way. An agent
// still learning is judged by the completed baselines of its groups (a
// tool is known if any of them knows it), so a fresh identity in a known
// group is watched from its first call. An agent that is learning in
// groups that are learning too is judged by no baseline.
//
// # Signals
//
// Against the baseline in force:
//
//	rate_spike        calls in the sliding minute > rate.factor × p95 and > rate.floor
//	new_tool          a tool the baseline does not know
//	new_host          an egress host it does not know
//	new_category      a category it does not know
//	unusual_sequence  a pair, else a triple, of known tools in an order it does not know
//	large_outbound    bytes sent in the sliding minute > outbound.factor × p95 and > outbound.floor
//
// Always, learning or not:
//
//	rate_spike        calls in the sliding minute > rate.cap (one severity higher)
//	large_outbound    bytes sent in the sliding minute > outbound.cap (one severity higher)
//	denial_burst      denials.count denied calls of the agent within denials.window
//	drift             Event.Drift
//	content_risk      Event.Risk ≥ risk.threshold (one severity higher from risk.critical)
//	swarm             see below
//	low_trust         the agent's trust fell below trust.alert_below (once per fall)
//
// The sliding minute is twelve 5-second slots, the current one included:
// the last 55 to 60 seconds. Signals are conditions of the event, not
// episodes: every call made during a spike raises rate_spike, every call
// of an unknown tool raises new_tool, so that a block or an escalation
// holds for all of them. Severities default to
//
//	info      -
//	low       new_tool, unusual_sequence
//	medium    rate_spike, new_host, new_category, drift
//	high      denial_burst, large_outbound, content_risk, swarm
//	critical  low_trust
//
// and Config.Severities overrides them per kind.
//
// # Collective detection
//
// A swarm is swarm.sessions distinct sessions of one group (an event
// without a session counts as its agent) calling the same tool or host
// with one of swarm.verbs within swarm.window: fifty indexers adding the
// same index on every shard at once, each allowed on its own. The call
// that completes a swarm raises one group-level swarm signal (Group set);
// the watch then stays quiet for a window and signals again if the swarm
// is still going. A swarm signal costs the completing agent no trust: it
// is the group's.
//
// # Trust
//
// Each agent has a trust score on 0-100, exposed to policy (principal
// trust) and to services that ask about an agent. A new agent starts at
// trust.initial (50). Then, per event and deterministically:
//
//   - inactivity decays it toward trust.floor (40): above the floor, the
//     distance to it halves every trust.half_life (7 days); below the floor
//     it stays, since idling earns nothing back;
//   - each signal costs trust.penalty points by severity (low 1, medium 3,
//     high 10, critical 25) and each denied call trust.denial (2);
//   - each run of trust.recover_every (50) consecutive clean calls (allowed
//     and signal-free) earns one point, up to trust.ceiling (90): recovery
//     is slow, and only an operator ([Monitor.SetTrust]) sets it higher;
//   - the score stays within 0-100; [Monitor.Trust] rounds it to a point.
//
// # Playbooks
//
// A [Playbook] matches signals by kind ("*" for any) and minimum severity
// and names actions: alert, block (deny this call), require_approval
// (escalate the rest of the session), quarantine (the agent) and preserve
// (a forensic bundle of the session). Observe returns, for the signals of
// one event taken most severe first, one alert per signal and at most one
// of each other action; an action names the signal that caused it and the
// playbook. In mode observe (a dry run) it returns signals and no actions;
// baselines and trust evolve the same in both modes.
//
// # Persistence
//
// [Monitor.Snapshot] returns a [State], JSON-marshalable, of everything:
// baselines, trust, sliding windows, denial and swarm watches, session
// sequences. [Monitor.Restore] loads it (checking it and the limits); a
// restored monitor given the same events continues exactly as the
// original would have.
//
// # Memory
//
// Tables are split into 64 shards by an FNV hash of the key, each with its
// own lock and a 64th of the table's limit:
//
//	limits.agents     agents (with their trust); a full shard evicts its least recently active
//	limits.sessions   session sequences (about 100 bytes each); the same; EndSession frees one
//	limits.groups     group baselines; groups beyond it have none
//	limits.swarms     (group, tool) swarm watches; a full shard drops those idle for a window, else the oldest
//	limits.names      tools, hosts and categories per baseline, each; beyond it nothing new is learned
//	limits.sequences  pairs and triples per baseline; a baseline that reaches it is saturated and judges no sequences
//
// An evicted agent starts over: learning, with trust.initial. Size
// limits.agents above the number of registered agents. An agent with a
// small learned baseline (five names, ten sequences) costs about 1.3 KiB,
// some 60 bytes more per name or sequence, and while learning up to 1 KiB
// of per-minute samples; a session about 100 bytes (TestMemory).
//
// # Concurrency
//
// All methods are safe for concurrent use. Observe takes, one after the
// other, the session's shard, the swarm watches' shards (for calls that
// change state) and the agent's shard; under the agent's shard it takes
// the locks of its groups only while they learn. Agents on different
// shards never contend, and once the groups have learned, agents of one
// group do not contend either.
//
// # Configuration
//
// A worked example, as [ParseConfig] reads it (every key is optional and
// defaults to [DefaultConfig]):
//
//	mode: enforce                 # or observe: signals only, no actions
//	learn: 500                    # events before an agent's baseline is enforced
//	learn_for: 72h                # and at least this long since its first event
//	rate: {factor: 3, floor: 30, cap: 600}            # calls per minute
//	outbound: {factor: 5, floor: 1048576, cap: 104857600}   # bytes sent per minute
//	denials: {count: 5, window: 1m}
//	risk: {threshold: 50, critical: 90}
//	swarm: {sessions: 5, window: 1m, verbs: [write, delete, admin]}
//	trust:
//	  initial: 50
//	  floor: 40
//	  half_life: 168h
//	  ceiling: 90
//	  recover_every: 50
//	  denial: 2
//	  penalty: {low: 1, medium: 3, high: 10, critical: 25}
//	  alert_below: 20
//	severities: {new_tool: medium}
//	categories:
//	  "db.*": [database]
//	  "mail.send": [email, external]
//	  "api.github.com": [external]
//	playbooks:
//	  - name: notify
//	    signals: ["*"]
//	    min_severity: low
//	    actions: [alert]
//	  - name: swarm
//	    signals: [swarm]
//	    actions: [block, require_approval]
//	  - name: exfiltration
//	    signals: [large_outbound, content_risk]
//	    min_severity: high
//	    actions: [block, preserve]
//	  - name: contain
//	    signals: ["*"]
//	    min_severity: critical
//	    actions: [quarantine, preserve]
//	limits: {agents: 100000, sessions: 100000, groups: 10000, swarms: 10000, names: 1024, sequences: 4096}
//
// With it, five sessions of group db-optimizers calling db.create_index
// (verb write) within a minute make the fifth call raise a high swarm
// signal, and Observe returns alert, block and require_approval for it; a
// result scanned at risk 95 raises a critical content_risk: alert, block,
// preserve and quarantine.
package monitor
