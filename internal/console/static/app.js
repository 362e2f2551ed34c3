// app.js: the console's pages. Everything shown is built with DOM calls
// and textContent (never by parsing markup), so data from agents cannot become
// markup. Every request goes to /console/api/ on this origin with the
// session cookie; state-changing ones carry the CSRF token.

import { verifyProof } from "./verify.js";
import { lineChart, barChart } from "./plot.js";

let me = null;
let timer = null;
let stream = null; // the page's live stream (EventSource), if any
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(s) { return el("span", { class: "badge " + s }, s); }
function when(t) { return t ? new Date(t).toLocaleString() : ""; }
function json(v) { return JSON.stringify(v, null, 2); }

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = me ? me.csrf : "";
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/console/api" + path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (resp.status === 401 && path !== "/login") { showLogin(); throw new Error("log in again"); }
  if (!resp.ok) throw new Error((data && data.error) || resp.status + " " + resp.statusText);
  return data;
}

function can(role) {
  const rank = { viewer: 0, approver: 1, admin: 2 };
  return me && rank[me.role] >= rank[role];
}

function setError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

function showLogin() {
  me = null;
  clearInterval(timer);
  stopStream();
  $("login").hidden = false;
  $("page").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  fetch("/console/api/login-options", { credentials: "same-origin" }).then((r) => r.json()).then((o) => {
    $("sso").hidden = !o.oidc;
    if (o.oidc_provider) $("sso-link").textContent = "Log in with " + o.oidc_provider;
  }).catch(() => {});
}

async function start() {
  try {
    me = await api("GET", "/me");
  } catch {
    showLogin();
    return;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.user} (${me.role})`;
  route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  setError(null);
  try {
    me = await api("POST", "/login", { user: $("login-user").value, password: $("login-password").value });
    $("login-password").value = "";
    await start();
  } catch (e) { setError(e); }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/logout"); } catch {}
  showLogin();
});

window.addEventListener("hashchange", route);

const pages = { approvals, agents, sessions, session: sessionPage, audit, policies, activity };

function stopStream() {
  if (stream) stream.close();
  stream = null;
}

function route() {
  if (!me) return;
  clearInterval(timer);
  stopStream();
  setError(null);
  const [name, arg] = (location.hash.slice(1) || "approvals").split("/");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.id === "nav-" + (name === "session" ? "sessions" : name));
  const page = $("page");
  page.hidden = false;
  page.replaceChildren();
  page.dataset.page = name;
  (pages[name] || approvals)(page, arg ? decodeURIComponent(arg) : "").catch(setError);
}

// poll runs f now and then every ms while the page is shown.
function poll(f, ms) {
  const run = () => f().catch(setError);
  run();
  timer = setInterval(run, ms);
}

// ---- Approvals ----

async function approvals(page) {
  page.append(el("h1", {}, "Approvals"));
  const pending = el("div", { id: "pending" });
  const decided = el("div", { id: "decided" });
  page.append(pending, el("h2", {}, "Recently decided"), decided);
  poll(async () => {
    const all = await api("GET", "/v1/approvals");
    const open = all.filter((r) => r.state === "pending");
    if (!pending.contains(document.activeElement)) {
      pending.replaceChildren(...(open.length ? open.map(approvalCard) : [el("p", { class: "muted", id: "no-pending" }, "No call is waiting for approval.")]));
    }
    decided.replaceChildren(table(["request", "agent", "call", "state", "votes", "created"],
      all.filter((r) => r.state !== "pending").slice(-20).reverse().map((r) => [
        r.id, r.agent, `${r.name}`, badge(r.state), (r.votes || []).map((v) => `${v.voter}: ${v.approve ? "approve" : "deny"}${v.reason ? " (" + v.reason + ")" : ""}`).join("; "), when(r.created)])));
  }, 2000);
}

const drafts = new Map();

function approvalCard(r) {
  const req = r.requirement || {};
  const quorum = req.quorum || 1;
  const yes = (r.votes || []).filter((v) => v.approve).length;
  // A comment being written survives the page's refresh.
  const comment = el("textarea", { placeholder: "comment (recorded with your vote)", "data-comment": r.id,
    oninput: () => drafts.set(r.id, comment.value) });
  comment.value = drafts.get(r.id) || "";
  const vote = (approve) => async () => {
    setError(null);
    try {
      await api("POST", `/v1/approvals/${encodeURIComponent(r.id)}/${approve ? "approve" : "deny"}`, { reason: comment.value });
      drafts.delete(r.id);
      route();
    } catch (e) { setError(e); }
  };
  return el("div", { class: "card approval", "data-approval": r.id },
    el("h2", {}, `${r.method} ${r.name} `, badge(r.state)),
    el("dl", { class: "grid" },
      el("dt", {}, "request"), el("dd", {}, r.id),
      el("dt", {}, "agent"), el("dd", {}, `${r.agent} (sponsor ${r.sponsor})`),
      el("dt", {}, "identity"), el("dd", {}, r.spiffe_id),
      el("dt", {}, "session"), el("dd", {}, el("a", { href: "#session/" + encodeURIComponent(r.session) }, r.session)),
      el("dt", {}, "objective"), el("dd", {}, r.objective),
      el("dt", {}, "why held"), el("dd", {}, (r.reasons || []).join("; ")),
      el("dt", {}, "policies"), el("dd", {}, (r.policies || []).join(", ")),
      el("dt", {}, "decision event"), el("dd", {}, r.decision_event ? [el("a", { href: "#audit/" + r.decision_event }, "#" + r.decision_event), " ", decisionCheck(r.decision_event)] : "—"),
      el("dt", {}, "quorum"), el("dd", {},
        el("progress", { max: quorum, value: yes }), ` ${yes} of ${quorum} from group ${(req.groups || []).join(", ")}`),
      el("dt", {}, "votes"), el("dd", {}, (r.votes || []).length ? (r.votes || []).map((v) => `${v.voter}: ${v.approve ? "approve" : "deny"} ${v.reason}`).join("; ") : "none yet"),
      el("dt", {}, "expires"), el("dd", {}, when(r.expires))),
    el("h2", {}, "Arguments"), el("pre", { class: "arguments" }, json(r.arguments)),
    provenanceTable(r.provenance),
    can("approver") ? el("div", {}, comment,
      el("div", { class: "row" },
        el("button", { class: "primary", "data-action": "approve", onclick: vote(true) }, "Approve"),
        el("button", { class: "danger", "data-action": "deny", onclick: vote(false) }, "Deny"))) :
      el("p", { class: "muted" }, "Your role may not vote."));
}

// provenanceTable shows where each tainted argument of a held call came
// from: the value, the source whose untrusted result held it, that
// source's taint labels, and the result's audit event.
function provenanceTable(ps) {
  if (!ps || !ps.length) return null;
  return el("div", { class: "provenance" }, el("h2", {}, "Provenance of the arguments"),
    table(["argument", "value", "came from", "labels", "result event", "finding"], ps.map((p) => [
      p.argument, p.kind && p.kind !== "text" ? `${p.kind} ${p.value || ""}` : (p.value || ""),
      p.source || "—", (p.labels || []).join(", ") || "—",
      p.event ? el("a", { href: "#audit/" + p.event }, "#" + p.event) : "—",
      p.partial ? "not cleared: the result was not fully indexed" :
        p.unjustified ? "not justified by the objective or trusted data" :
          `from an untrusted result${p.results > 1 ? ` (in ${p.results} results)` : ""}, not from the objective`])));
}

// decisionCheck shows whether the decision that escalated a call is in
// the log, checked in this browser (cached: the log does not change).
const checked = new Map();
function decisionCheck(index) {
  const span = el("span", { class: "muted", "data-decision-check": index }, "checking…");
  if (!checked.has(index)) {
    checked.set(index, api("GET", "/proof/" + index).then((p) => verifyProof(p, p.log_key)));
  }
  checked.get(index).then((v) => {
    span.className = "ok";
    span.textContent = `✓ in the log (checked here): ${v.event.data.decision}, ${v.event.data.reason}`;
  }, (e) => {
    span.className = "error";
    span.textContent = "✗ not proven: " + (e.message || e);
  });
  return span;
}

function table(headers, rows, onRow) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((cells, i) => el("tr", onRow ? { class: "clickable", onclick: () => onRow(i) } : {}, cells.map((c) => el("td", {}, c))))));
}

// ---- Agents ----

async function agents(page, name) {
  page.append(el("h1", {}, "Agents"));
  const list = el("div");
  const detail = el("div", { id: "agent-detail" });
  page.append(list, detail);
  const as = await api("GET", "/v1/agents");
  list.replaceChildren(table(["agent", "sponsor", "groups", "trust", "status", "identity"],
    as.map((a) => [a.name, a.sponsor, a.groups.join(", "), String(a.trust), badge(a.status), a.spiffe_id]),
    (i) => { location.hash = "#agents/" + encodeURIComponent(as[i].name); }));
  if (name) await agentDetail(detail, name);
}

async function agentDetail(box, name) {
  const a = await api("GET", "/v1/agents/" + encodeURIComponent(name));
  const act = (what) => async () => {
    setError(null);
    try {
      await api("POST", `/v1/agents/${encodeURIComponent(name)}/${what}`);
      route();
    } catch (e) { setError(e); }
  };
  const trustEvents = await api("GET", "/v1/audit/events?type=agent.trust&agent=" + encodeURIComponent(name) + "&limit=500");
  const points = trustEvents.map((e) => [Date.parse(e.time), e.data.trust]);
  points.push([Date.now(), a.trust]);
  const sessionsOf = await api("GET", "/v1/sessions?agent=" + encodeURIComponent(name));
  box.replaceChildren(el("div", { class: "card", "data-agent": a.name },
    el("h2", {}, a.name, " ", badge(a.status)),
    el("dl", { class: "grid" },
      el("dt", {}, "identity"), el("dd", {}, a.spiffe_id),
      el("dt", {}, "sponsor"), el("dd", {}, a.sponsor),
      el("dt", {}, "groups"), el("dd", {}, a.groups.join(", ") || "none"),
      el("dt", {}, "trust"), el("dd", {}, String(a.trust)),
      el("dt", {}, "code digest"), el("dd", {}, a.code_digest || "—"),
      el("dt", {}, "ceiling"), el("dd", {}, el("pre", {}, json(a.ceiling))),
      el("dt", {}, "registered"), el("dd", {}, when(a.created))),
    el("h2", {}, "Trust over time"), lineChart({ trust: points }, { yLabel: "trust" }),
    el("h2", {}, "Sessions"),
    table(["session", "objective", "status", "started"], sessionsOf.map((s) => [s.id, s.objective, badge(s.status), when(s.created)]),
      (i) => { location.hash = "#session/" + encodeURIComponent(sessionsOf[i].id); }),
    can("admin") ? el("div", { class: "row" },
      a.status === "quarantined" ?
        el("button", { class: "primary", id: "release", onclick: act("release") }, "Release") :
        el("button", { class: "danger", id: "quarantine", onclick: act("quarantine") }, "Quarantine (ends its sessions)")) : null));
}

// ---- Sessions ----

async function sessions(page) {
  page.append(el("h1", {}, "Sessions"));
  const ss = await api("GET", "/v1/sessions");
  ss.reverse();
  page.append(table(["session", "agent", "objective", "depth", "status", "started"],
    ss.map((s) => [s.id, s.agent, s.objective, String(s.depth), badge(s.status), when(s.created)]),
    (i) => { location.hash = "#session/" + encodeURIComponent(ss[i].id); }));
}

function tree(all, id) {
  const kids = all.filter((s) => s.parent === id);
  if (!kids.length) return null;
  return el("ul", { class: "tree" }, kids.map((k) => el("li", {},
    el("a", { href: "#session/" + encodeURIComponent(k.id) }, `${k.agent} ${k.id}`), " ", badge(k.status), tree(all, k.id))));
}

async function sessionPage(page, id) {
  const s = await api("GET", "/v1/sessions/" + encodeURIComponent(id));
  const all = await api("GET", "/v1/sessions");
  let labels = null;
  try { labels = await api("GET", `/v1/sessions/${encodeURIComponent(id)}/labels`); } catch { labels = null; }
  const end = async () => {
    setError(null);
    try { await api("POST", `/v1/sessions/${encodeURIComponent(id)}/end`, { reason: "ended from the console by " + me.user }); route(); } catch (e) { setError(e); }
  };
  const root = all.find((x) => x.id === s.root);
  page.append(el("h1", {}, "Session ", s.id, " ", badge(s.status)),
    el("div", { class: "card" }, el("dl", { class: "grid" },
      el("dt", {}, "agent"), el("dd", {}, el("a", { href: "#agents/" + encodeURIComponent(s.agent) }, s.agent)),
      el("dt", {}, "identity"), el("dd", {}, s.spiffe_id),
      el("dt", {}, "sponsor"), el("dd", {}, s.sponsor),
      el("dt", {}, "objective"), el("dd", {}, s.objective),
      el("dt", {}, "objective sha256"), el("dd", {}, s.objective_sha256),
      el("dt", {}, "tags"), el("dd", {}, (s.objective_tags || []).join(", ") || "none"),
      el("dt", {}, "grant scope"), el("dd", {}, el("pre", {}, json(s.scope))),
      el("dt", {}, "taint labels"), el("dd", { id: "labels" }, labels ? el("pre", {}, json(labels)) : "none"),
      el("dt", {}, "started"), el("dd", {}, when(s.created)),
      el("dt", {}, "expires"), el("dd", {}, when(s.expires)),
      s.ended ? [el("dt", {}, "ended"), el("dd", {}, when(s.ended) + " — " + s.end_reason)] : null),
    el("h2", {}, "Delegation"),
    el("div", {}, root ? el("a", { href: "#session/" + encodeURIComponent(root.id) }, `${root.agent} ${root.id}`) : s.root, tree(all, s.root)),
    el("div", { class: "row" },
      el("a", { href: "/console/api/export/" + encodeURIComponent(s.id), download: `ward-session-${s.id}.json`, id: "export" }, "Export the session's audit bundle"),
      can("admin") && s.status === "active" ? el("button", { class: "danger", id: "end-session", onclick: end }, "End session") : null)),
    );
  const calls = el("div", { id: "calls" });
  const taint = el("div", { id: "taint" });
  const runtime = el("div", { id: "runtime" });
  const status = el("span", { id: "live", class: "muted" }, "connecting…");
  page.append(el("h2", {}, "Taint labels and where each came from"), taint, runtime, el("h2", {}, "Calls ", status), calls);
  // The session's events by index: loaded once, then kept up to date by
  // the live stream (or, if the browser cannot hold one, by polling).
  const seen = new Map();
  const load = async () => {
    // On a node of several the search answers for every node: this
    // page follows this node's log (its live stream is of this node).
    const own = me.node ? "&node=" + encodeURIComponent(me.node) : "";
    for (const e of await api("GET", "/v1/audit/events?session=" + encodeURIComponent(id) + "&limit=500" + own)) seen.set(e.index, e);
    render();
  };
  const render = () => {
    const evs = [...seen.values()].sort((a, b) => a.index - b.index);
    const labelled = evs.filter((e) => e.type === "taint" || e.type === "taint.clear");
    taint.replaceChildren(labelled.length ? table(["#", "time", "label", "from"], labelled.map((e) => [
      el("a", { href: "#audit/" + e.index }, String(e.index)), when(e.time),
      e.type === "taint.clear" ? `${e.data.label} (cleared by ${e.actor})` : e.data.label, e.data.from || ""])) :
      el("p", { class: "muted" }, "No label yet."));
    // A `ward run` session: what its runtime reported, the paths its
    // program changed, and their diff as the node recorded it (redacted
    // and bounded; the whole change set stays with the runtime's host:
    // ward changes show SESSION there).
    const rt = evs.filter((e) => e.type === "runtime");
    const diffs = rt.filter((e) => e.data && e.data.data && e.data.data.diff && ["object", "string"].includes(typeof e.data.data.diff));
    runtime.replaceChildren(...(rt.length ? [el("h2", {}, "Runtime (ward run)"),
      table(["#", "time", "kind", "detail", "changed paths"], rt.map((e) => {
        const d = (e.data && e.data.data) || {};
        return [el("a", { href: "#audit/" + e.index }, String(e.index)), when(e.time), e.data.kind, e.data.detail,
          Array.isArray(d.changes) ? el("pre", {}, (d.rolled_back ? "(rolled back)\n" : d.applied ? "(applied)\n" : "(kept for review)\n") + d.changes.join("\n")) : ""];
      })),
      ...(diffs.length ? [el("h2", {}, "Changes (diff)"), el("div", { id: "diff" }, diffs.map((e) => diffView(e.index, e.data.data.diff)))] : [])] : []));
    calls.replaceChildren(table(["#", "time", "event", "call", "decision", "reason"],
      evs.map((e) => [el("a", { href: "#audit/" + e.index }, String(e.index)), when(e.time), e.type,
        e.data && e.data.name ? `${e.data.method || ""} ${e.data.name}` : "",
        e.data && e.data.decision ? badge(e.data.decision) : "",
        e.data ? (e.data.reason || e.data.outcome || "") : ""])));
  };
  await load();
  live("/stream/sessions/" + encodeURIComponent(id), (e) => {
    seen.set(e.index, e);
    // A page left open on a busy session keeps its latest events only.
    for (const k of seen.keys()) {
      if (seen.size <= 1000) break;
      seen.delete(k);
    }
    render();
  }, load, status);
}

// diffLineClass is the CSS class of a line of a unified diff.
function diffLineClass(line) {
  if (line.startsWith("+++ ") || line.startsWith("--- ") || line.startsWith("\\")) return "meta";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  return "ctx";
}

// diffView shows the diff a `ward run` recorded (audit event index):
// each file's unified diff a line to an element, coloured by its class,
// or why it has none. The diff is the agent's workspace, so every line
// goes in as text (el makes text nodes), never as markup.
function diffView(index, patch) {
  // The node records a note instead of a diff it could not keep.
  if (typeof patch === "string") return el("p", { class: "muted", "data-diff": index }, `Event ${index}: the diff was `, patch);
  const files = Array.isArray(patch.files) ? patch.files : [];
  return el("div", { class: "card", "data-diff": index },
    el("p", { class: "muted" }, "Recorded in ", el("a", { href: "#audit/" + index }, "event " + index),
      `: ${files.length} file(s)`, patch.unlisted ? `, and ${patch.unlisted} more past the bound, not listed` : ""),
    files.flatMap((f) => [
      el("h3", { class: "diff-file" }, String(f.path), " ", el("span", { class: "muted" }, String(f.kind || "")),
        f.omitted ? el("span", { class: "muted", "data-omitted": true }, ` — not shown: ${f.omitted}`) : null),
      typeof f.diff === "string" && f.diff ? el("pre", { class: "diff" },
        f.diff.replace(/\n$/, "").split("\n").map((line) => el("span", { class: "dl " + diffLineClass(line) }, line))) : null,
    ]));
}

// live follows a console stream (Server-Sent Events) at path, handing
// each event to onEvent; whenever the stream (re)opens it calls reload,
// so that nothing appended while it was down is missed. If the browser
// cannot hold a stream (none left for this user, logged out), it polls
// reload every 2 s instead.
function live(path, onEvent, reload, status) {
  const fallback = () => {
    status.dataset.live = "poll";
    status.textContent = "(polling every 2 s)";
    poll(reload, 2000);
  };
  if (!window.EventSource) { fallback(); return; }
  const es = new EventSource("/console/api" + path);
  stream = es;
  es.addEventListener("open", () => {
    status.dataset.live = "stream";
    status.textContent = "(live)";
    reload().catch(setError);
  });
  es.addEventListener("audit", (m) => {
    try { onEvent(JSON.parse(m.data)); } catch (e) { setError(e); }
  });
  es.addEventListener("error", () => {
    if (es.readyState !== EventSource.CLOSED || stream !== es) return; // reconnecting by itself
    stream = null;
    fallback();
  });
}

// ---- Audit ----

async function audit(page, index) {
  page.append(el("h1", {}, "Audit"));
  const f = {};
  const field = (name, label) => (f[name] = el("input", { name, id: "audit-" + name, placeholder: label }));
  const results = el("div", { id: "audit-results" });
  const proofBox = el("div", { id: "proof" });
  const search = async () => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v.value) q.set(k, v.value);
    if (!q.has("limit")) q.set("limit", "200");
    const evs = await api("GET", "/v1/audit/events?" + q.toString());
    evs.reverse();
    // On a node of several events come from every node's log; this
    // node proves its own (another node's event, of the same number,
    // is another event).
    const nodes = evs.some((e) => e.node);
    results.replaceChildren(table([...(nodes ? ["node"] : []), "#", "time", "type", "agent", "session", "summary", ""],
      evs.map((e) => [...(nodes ? [e.node] : []), String(e.index), when(e.time), e.type, e.agent || "", e.session || "",
        e.data && e.data.name ? `${e.data.name} ${e.data.decision || ""}` : "",
        !e.node || e.node === me.node ?
          el("button", { "data-verify": e.index, onclick: () => prove(proofBox, e.index) }, "Verify proof") :
          el("span", { class: "muted", "data-node": e.node }, "read from node " + e.node + "'s log, proven by this node against its head")])));
  };
  page.append(el("form", { id: "audit-form", onsubmit: (ev) => { ev.preventDefault(); search().catch(setError); } },
    el("div", { class: "row" },
      el("label", {}, "session", field("session", "session id")),
      el("label", {}, "agent", field("agent", "agent")),
      el("label", {}, "type", field("type", "decision, approval.approved, …")),
      el("label", {}, "tool", field("tool", "server.tool")),
      el("label", {}, "decision", field("decision", "allow, deny, escalate")),
      me.node ? el("label", {}, "node", field("node", "every node")) : null,
      el("label", {}, "limit", field("limit", "200")),
      el("button", { class: "primary", type: "submit" }, "Search"))),
    proofBox, results);
  await search();
  if (index) await prove(proofBox, index);
}

async function prove(box, index) {
  box.replaceChildren(el("p", { class: "muted" }, `Checking event ${index}…`));
  try {
    const p = await api("GET", "/proof/" + index);
    const r = await verifyProof(p, p.log_key);
    box.replaceChildren(el("div", { class: "card", id: "proof-result", "data-verified": "true" },
      el("h2", { class: "ok" }, `✓ Event ${r.index} is in the log`),
      el("p", {}, `Checked here, in your browser: the checkpoint of ${r.size} events is signed by the log key (Ed25519), and the event's RFC 6962 audit path of ${p.hashes.length} hashes leads to its root ${r.root}.`),
      el("dl", { class: "grid" }, el("dt", {}, "log key"), el("dd", {}, p.log_key)),
      el("pre", {}, json(r.event))));
  } catch (e) {
    box.replaceChildren(el("div", { class: "card", id: "proof-result", "data-verified": "false" },
      el("h2", { class: "error" }, `✗ Event ${index} could not be verified`), el("p", { class: "error" }, String(e.message || e))));
  }
}

// ---- Policies ----

async function policies(page) {
  page.append(el("h1", {}, "Policies"));
  const ps = await api("GET", "/policies");
  const agent = el("input", { id: "dry-agent", placeholder: "agent" });
  const name = el("input", { id: "dry-name", placeholder: "server.tool" });
  const args = el("textarea", { id: "dry-args", placeholder: '{"name": "welcome"}' });
  const out = el("div", { id: "dry-result" });
  const run = async (ev) => {
    ev.preventDefault();
    setError(null);
    try {
      const body = { agent: agent.value, action: "call_tool", name: name.value };
      if (args.value.trim()) body.arguments = JSON.parse(args.value);
      const d = await api("POST", "/dryrun", body);
      out.replaceChildren(el("div", { class: "card" }, el("h2", {}, "Decision: ", badge(d.outcome)),
        el("p", {}, d.explain),
        el("p", { class: "muted" }, (d.reasons || []).join("; ") || "no policy applied (default deny)"),
        d.approvals && d.approvals.length ? el("pre", {}, json(d.approvals)) : null,
        d.errors && d.errors.length ? el("p", { class: "error" }, d.errors.join("\n")) : null));
    } catch (e) { setError(e); }
  };
  page.append(el("div", { class: "card" }, el("h2", {}, "Dry run"),
    el("p", { class: "muted" }, "Decides a tool call against the policies in force, with the agent's registered sponsor, groups and trust; nothing is recorded and no session state (quota, taint, provenance) is consulted."),
    el("form", { onsubmit: run }, el("div", { class: "row" }, el("label", {}, "agent", agent), el("label", {}, "tool", name)),
      el("label", {}, "arguments (JSON)", args), el("div", {}, el("button", { class: "primary", type: "submit" }, "Decide"))), out));
  const trace = el("textarea", { id: "replay-trace", placeholder: '{"type":"session","session":"s1","agent":"reporter",…}' });
  const file = el("input", { type: "file", accept: ".jsonl,.json,.txt", onchange: async () => { if (file.files[0]) trace.value = await file.files[0].text(); } });
  const replayOut = el("div", { id: "replay-result" });
  const replay = async (ev) => {
    ev.preventDefault();
    setError(null);
    try {
      const resp = await fetch("/console/api/replay", { method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": me.csrf, "Content-Type": "application/x-ndjson" }, body: trace.value });
      const r = await resp.json();
      if (!resp.ok) throw new Error(r.error || resp.statusText);
      replayOut.replaceChildren(el("div", { class: "card" },
        el("p", {}, `${r.calls.length} calls in ${r.sessions.length} sessions: ` +
          ["allow", "deny", "escalate"].map((o) => `${r.calls.filter((c) => c.outcome === o).length} ${o}`).join(", ")),
        table(["line", "session", "call", "decision", "reason"], r.calls.map((c) => [String(c.line), c.session, c.name || c.method, badge(c.outcome), c.reason]))));
    } catch (e) { setError(e); }
  };
  page.append(el("div", { class: "card" }, el("h2", {}, "Replay a recorded trace"),
    el("p", { class: "muted" }, "Decides every call of a trace (JSON lines, as ward replay reads) against the policies in force, in shadow mode, with this node's taint labels and tool declarations. Nothing is recorded."),
    el("form", { id: "replay-form", onsubmit: replay }, file, trace, el("div", {}, el("button", { class: "primary", type: "submit" }, "Replay"))), replayOut));
  page.append(el("h2", {}, `${ps.length} policies, in evaluation order (English rules shown compiled to Cedar)`));
  for (const p of ps) {
    page.append(el("div", { class: "card policy" }, el("h2", {}, p.ID, " ", badge(p.Effect === "permit" ? "allow" : "deny"), " ", el("span", { class: "muted" }, p.Position)),
      el("pre", {}, p.Text)));
  }
}

// ---- Activity (plots) ----

// minutes returns every minute from one before the first of ts to one
// after the last, so that quiet minutes plot as zero.
function minutes(ts) {
  if (!ts.length) return [];
  const lo = Math.min(...ts) - 60000, hi = Math.max(...ts) + 60000;
  const out = [];
  for (let t = lo; t <= hi && out.length < 1440; t += 60000) out.push(t);
  return out;
}

async function activity(page) {
  page.append(el("h1", {}, "Activity"));
  const calls = el("div", { id: "plot-calls" });
  const budget = el("div", { id: "plot-budget" });
  const byAgent = el("div", { id: "plot-agents" });
  page.append(el("h2", {}, "Decisions per minute"),
    el("p", { class: "legend" }, el("span", { class: "sw-allow" }, "— allow"), el("span", { class: "sw-deny" }, "— deny"), el("span", { class: "sw-escalate" }, "— escalate")),
    calls, el("h2", {}, "Calls by agent"), byAgent, el("h2", {}, "Budget use (charged in each limit's current window)"), budget);
  poll(async () => {
    const evs = await api("GET", "/v1/audit/events?type=decision&limit=5000");
    const buckets = {};
    const agentsCount = {};
    for (const e of evs) {
      const m = Math.floor(Date.parse(e.time) / 60000) * 60000;
      const d = (e.data && e.data.decision) || "deny";
      buckets[m] = buckets[m] || { allow: 0, deny: 0, escalate: 0 };
      buckets[m][d] = (buckets[m][d] || 0) + 1;
      agentsCount[e.agent] = agentsCount[e.agent] || { allow: 0, deny: 0, escalate: 0 };
      agentsCount[e.agent][d] = (agentsCount[e.agent][d] || 0) + 1;
    }
    const times = minutes(Object.keys(buckets).map(Number));
    const series = {};
    for (const d of ["allow", "deny", "escalate"]) series[d] = times.map((t) => [t, (buckets[t] || {})[d] || 0]);
    calls.replaceChildren(lineChart(series, { yLabel: "calls" }));
    const groupsOf = {};
    for (const a of await api("GET", "/v1/agents")) groupsOf[a.name] = a.groups;
    const perAgent = {}, perGroup = {};
    for (const e of evs) {
      const m = Math.floor(Date.parse(e.time) / 60000) * 60000;
      const inc = (tbl, k) => { tbl[k] = tbl[k] || {}; tbl[k][m] = (tbl[k][m] || 0) + 1; };
      inc(perAgent, e.agent || "?");
      for (const g of groupsOf[e.agent] || []) inc(perGroup, g);
    }
    const toSeries = (tbl) => Object.fromEntries(Object.entries(tbl).map(([k, b]) => [k, times.map((t) => [t, b[t] || 0])]));
    byAgent.replaceChildren(
      barChart(Object.entries(agentsCount).map(([a, c]) => ({ label: `${a} (${c.deny} denied)`, value: c.allow + c.deny + c.escalate }))),
      el("h2", {}, "Calls per minute by agent"), lineChart(toSeries(perAgent), { yLabel: "calls" }),
      el("h2", {}, "Calls per minute by group"), lineChart(toSeries(perGroup), { yLabel: "calls" }));
    const limits = await api("GET", "/limits");
    const now = Date.now();
    const used = {};
    for (const e of evs) {
      for (const c of (e.data && e.data.charged) || []) {
        const l = limits.find((x) => x.id === c.limit);
        if (!l || now - Date.parse(c.time) > l.window_ms) continue;
        const k = c.limit + (c.key ? " " + c.key : "");
        used[k] = used[k] || { value: 0, max: l.max };
        used[k].value += c.amount;
      }
    }
    budget.replaceChildren(barChart(Object.entries(used).map(([k, u]) => ({ label: k, value: u.value, max: u.max }))));
  }, 5000);
}

start();
