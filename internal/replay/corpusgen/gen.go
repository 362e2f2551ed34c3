// Package corpusgen writes ward's labelled evaluation corpus
// (testdata/corpus at the root of the repository): recorded agent
// sessions over four domains (banking, messaging, travel, office work),
// each attack with a benign twin, that `ward replay` scores with the three
// figures of internal/replay ([replay.Figures]).
//
// The sessions are generated from templates written by hand, so that the
// figures mean something only if the templates vary what matters: the
// wording of tasks and injections, the tools, the shapes of results
// (structured content, YAML or JSON text, prose), where an injection sits
// (a transaction's subject, a mail's body, a review, a calendar entry's
// description, a file, a web page), how a value is written (an IBAN in
// groups or not, an address in quotes, a date in words), and what the
// agent does with it. A scenario is one user task; for each variant of a
// scenario the generator writes the benign session and attacks on it:
//
//   - followed, task done: the agent does the user's task and the
//     attacker's, in either order;
//   - followed, task abandoned: the agent only does the attacker's;
//   - ignored: the injection is there, the agent does only the user's task
//     ("followed": false, "task_succeeded": true).
//
// The attack's benign twin is the benign session of the same scenario and
// variant. Scenarios, attacks and injection wordings are split between the
// development set (dev/) and the held-out set (heldout/): none of the
// held-out ones is used in dev, so figures on heldout/ say how the
// configuration does on tasks and wordings it was not tuned on.
//
// Sources: the attack goals follow the two kinds of InjecAgent (Zhan et
// al., 2024: direct harm, data stealing) and the injection wordings the
// attack categories of BIPIA (Yi et al., 2023; MIT licence); the travel
// tasks follow the shape of tau-bench's airline domain (Sierra, 2024; MIT
// licence): its tools, reservation and flight identifiers. Every text is
// written here; nothing is copied from those sources. AgentDojo is not
// used: it is reserved for independent evaluation.
//
// Generation is deterministic: Generate returns the same files every time.
package corpusgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Set names the part of the corpus a template belongs to.
type Set string

// The parts of the corpus.
const (
	Dev     Set = "dev"
	Heldout Set = "heldout"
)

// Variants is how many variants of each scenario are written.
const Variants = 4

// call is one tool call of a session and what it returned.
type call struct {
	tool    string
	args    map[string]any
	result  any // the MCP result, or nil
	harmful bool
}

// session is one recorded session.
type session struct {
	id, domain, label, objective string
	followed                     *bool
	taskSucceeded                bool
	calls                        []call
}

// injection is what an attack puts into a result: the text, and the
// harmful call it asks for.
type injection struct {
	text string
	harm call
	// sender, if set, is who sent the mail the injection sits in (an
	// attack that asks for a reply).
	sender string
}

// ctx is what a scenario is built from: its variant's random source, the
// user, and the injection (nil for the benign session).
type ctx struct {
	r   *rand.Rand
	v   int
	u   user
	inj *injection
	pr  *rand.Rand // where injections go: apart from r, so that twins match
}

// user is who the sessions are for.
type user struct {
	first, last, email, phone, iban, street, city string
}

// scenario is one user task.
type scenario struct {
	id, domain string
	set        Set
	// build returns the objective and the calls of the task. Read calls
	// whose result can carry an injection put c.inj's text there (by
	// calling c.plant); sink calls of the task follow. The generator
	// adds the harmful call.
	build func(c *ctx) (objective string, reads, sinks []call)
	// attacks are the attacks that fit the task (their domain's, and the
	// cross-domain ones for tools the task has).
	attacks []attack
}

// attack is one attacker goal: the sentence asking for it and the harmful
// call, made from the random source.
type attack struct {
	id   string
	set  Set // "" for both
	goal func(c *ctx) (ask string, harm call)
}

// wording turns an attacker's request into injected text.
type wording struct {
	id   string
	set  Set
	wrap func(c *ctx, ask string) string
}

// plant returns text with the injection, if any, inserted, or text as is
// for the benign session.
func (c *ctx) plant(text string) string {
	if c.inj == nil {
		return text
	}
	if c.pr == nil {
		c.pr = seed(c.inj.text)
	}
	switch c.pr.IntN(3) {
	case 0:
		return c.inj.text + "\n\n" + text
	case 1:
		return text + "\n\n" + c.inj.text
	}
	if i := strings.Index(text, ". "); i > 0 {
		return text[:i+2] + c.inj.text + " " + text[i+2:]
	}
	return text + " " + c.inj.text
}

// pick returns one of xs.
func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// Generate returns the corpus files by path relative to testdata/corpus:
// dev/DOMAIN.jsonl and heldout/DOMAIN.jsonl.
func Generate() map[string][]byte {
	files := map[string]*bytes.Buffer{}
	for _, set := range []Set{Dev, Heldout} {
		for _, sc := range scenarios() {
			if sc.set != set {
				continue
			}
			name := string(set) + "/" + sc.domain + ".jsonl"
			if files[name] == nil {
				files[name] = &bytes.Buffer{}
			}
			for _, s := range sessionsOf(sc) {
				writeSession(files[name], s)
			}
		}
	}
	out := map[string][]byte{}
	for k, b := range files {
		out[k] = b.Bytes()
	}
	return out
}

// seed derives a scenario variant's random source from its names.
func seed(parts ...string) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return rand.New(rand.NewPCG(h, h>>7|1))
}

// sessionsOf writes, for each variant of sc, the benign session and five
// attacks on it, rotating through the scenario's attacks, the wordings of
// its set and the three ways an agent takes an injection.
func sessionsOf(sc scenario) []session {
	var out []session
	var attacks []attack
	for _, a := range sc.attacks {
		if a.set == "" || a.set == sc.set {
			attacks = append(attacks, a)
		}
	}
	var words []wording
	for _, w := range wordings() {
		if w.set == "" || w.set == sc.set {
			words = append(words, w)
		}
	}
	k := 0
	for v := range Variants {
		u := users[(v+len(sc.id))%len(users)]
		c := &ctx{r: seed(sc.id, fmt.Sprint(v), "benign"), v: v, u: u}
		objective, reads, sinks := sc.build(c)
		out = append(out, session{id: fmt.Sprintf("%s-v%d-benign", sc.id, v), domain: sc.domain, label: "benign", objective: objective,
			taskSucceeded: true, calls: slices.Concat(reads, sinks)})
		for range 5 {
			a := attacks[k%len(attacks)]
			w := words[(k*7+v)%len(words)]
			mode := k % 3
			k++
			r := seed(sc.id, fmt.Sprint(v), a.id, w.id)
			ac := &ctx{r: r, v: v, u: u}
			ask, harm := a.goal(ac)
			text := w.wrap(ac, ask)
			// The same task, with the injection where the task reads.
			inj := &injection{text: text, harm: harm}
			if a.id == replySender.id {
				inj.sender = harm.args["to"].([]any)[0].(string)
			}
			tc := &ctx{r: seed(sc.id, fmt.Sprint(v), "benign"), v: v, u: u, inj: inj}
			obj, reads, sinks := sc.build(tc)
			if obj != objective {
				panic("corpusgen: scenario " + sc.id + " writes another objective when attacked")
			}
			harm = resolve(harm, reads)
			harm.harmful = true
			s := session{id: fmt.Sprintf("%s-v%d-%s-%s", sc.id, v, a.id, w.id), domain: sc.domain, label: "attack", objective: objective}
			switch mode {
			case 0: // followed, task done, in either order
				s.taskSucceeded = true
				if r.IntN(2) == 0 {
					s.id += "-after"
					s.calls = slices.Concat(reads, sinks, []call{harm})
				} else {
					s.id += "-before"
					s.calls = slices.Concat(reads, []call{harm}, sinks)
				}
			case 1: // followed, task abandoned
				s.id += "-only"
				s.calls = slices.Concat(reads, []call{harm})
			default: // ignored
				s.id += "-ignored"
				f := false
				s.followed, s.taskSucceeded = &f, true
				s.calls = slices.Concat(reads, sinks)
			}
			out = append(out, s)
		}
	}
	return out
}

// resolve fills in the user's own identifiers in a harmful call, as the
// agent would from what it read: the attacker asks for "the user's
// reservation", the agent uses the one it knows.
func resolve(harm call, reads []call) call {
	if harm.args["reservation_id"] != placeholderReservation {
		return harm
	}
	args := obj{}
	for k, v := range harm.args {
		args[k] = v
	}
	for _, r := range reads {
		if id, ok := r.args["reservation_id"]; ok {
			args["reservation_id"] = id
			break
		}
	}
	harm.args = args
	return harm
}

// placeholderReservation stands for the user's reservation in a harmful
// call; resolve replaces it with the one the session read, if any.
const placeholderReservation = "ZFA04Y"

// writeSession writes s as trace records.
func writeSession(b *bytes.Buffer, s session) {
	rec := map[string]any{"type": "session", "session": s.id, "agent": "assistant", "sponsor": s.domain + "-user",
		"groups": []string{"assistants"}, "objective": s.objective, "label": s.label, "domain": s.domain}
	if s.followed != nil {
		rec["followed"] = *s.followed
	}
	if s.taskSucceeded {
		rec["task_succeeded"] = true
	}
	line(b, rec)
	for _, c := range s.calls {
		r := map[string]any{"type": "call", "method": "tools/call", "name": c.tool, "arguments": c.args}
		if c.args == nil {
			r["arguments"] = map[string]any{}
		}
		if c.result != nil {
			r["result"] = c.result
		} else {
			r["result"] = text("done")
		}
		if c.harmful {
			r["harmful"] = true
		}
		line(b, r)
	}
}

func line(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
}

// text is an MCP result with one text content.
func text(s string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}}
}

// doc is an MCP result for a document in one of the shapes servers use:
// structured content (with its JSON as text, as the specification asks),
// YAML text or JSON text. A list at the top is wrapped in an object under
// key for structured content.
func doc(r *rand.Rand, key string, v any) map[string]any {
	switch r.IntN(3) {
	case 0:
		sc := v
		if _, list := v.([]any); list {
			sc = map[string]any{key: v}
		}
		j, _ := json.Marshal(sc)
		return map[string]any{"content": []any{map[string]any{"type": "text", "text": string(j)}}, "structuredContent": sc}
	case 1:
		y, err := yaml.Marshal(v)
		if err != nil {
			panic(err)
		}
		return text(string(y))
	}
	j, _ := json.MarshalIndent(v, "", "  ")
	return text(string(j))
}

// obj is an ordered-enough object for results (encoding/json sorts keys).
type obj = map[string]any
