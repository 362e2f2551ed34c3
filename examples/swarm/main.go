// Command swarm tells the second story of the white paper: the swarm of
// fifty agents that all added the same index.
//
// Fifty instances of an indexing agent, each allowed to add an index on its
// own shard, all decide at the same moment to add the same index. Each call
// alone is fine; together they would saturate the cluster. ward's group
// budget for schema changes holds exactly, the collective detector raises a
// swarm signal, and the calls past the budget wait for a human.
//
// Run it against a node started with this story's configuration:
//
//	ward up --config examples/swarm/ward.yaml
//	export WARD_SERVER=… WARD_CA=… WARD_TOKEN=…   # as ward up printed
//	go run ./examples/swarm
//
// See examples/README.md for what to look for.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ward-dev/ward/examples/internal/story"
)

const (
	agents = 50 // the swarm
	budget = 5  // limits[schema-changes].max in ward.yaml
	change = "CREATE INDEX CONCURRENTLY idx_users_email ON users (email)"
)

func main() {
	s, err := story.New("swarm")
	if err != nil {
		story.Exit(err)
	}
	defer s.Close()
	ctx := context.Background()
	suffix := story.Suffix()
	agentName, group := "indexer-"+suffix, "indexers-"+suffix

	s.Title("The swarm of fifty agents that all added the same index",
		"Fifty instances of an indexing agent, each allowed to change the schema of its",
		"own shard, decide at the same moment to add the same index. ward's built-in demo",
		"server stands in for the database: demo.write_note records the change a shard",
		"would run. The agents are scripted; they all call at once.")

	s.Part("Setting up: one agent, its group, fifty sessions")
	must(s, s.Sponsor("platform-db", "--kind", "platform", "--allow", "tool:demo.*"))
	s.Say("Each run registers its own group, so the group's budget (limits in ward.yaml:")
	s.Say("schema-changes, %d per hour per group) starts empty:", budget)
	must(s, s.Do("agent", "register", agentName, "--sponsor", "platform-db", "--group", group,
		"--allow", "tool:demo.write_note"))
	s.Say("The budget's escalations go to group dba (approvals.groups in ward.yaml: dba: [dana]);")
	s.Say("dana must be a principal, so the story creates her and keeps her credential:")
	must(s, s.Sponsor("dana", "--kind", "human"))
	out, err := s.Quiet("sponsor", "credential", "dana", "-o", "json")
	must(s, err)
	var dana struct{ Credential string }
	must(s, json.Unmarshal([]byte(out), &dana))

	s.Say("Fifty sessions of the agent, one per shard (started quietly after the first):")
	swarm := make([]*story.Agent, agents)
	swarm[0], err = s.Start(ctx, false, startArgs(agentName, 0)...)
	must(s, err)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for i := 1; i < agents; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := s.Start(ctx, true, startArgs(agentName, i)...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			swarm[i] = a
		}()
	}
	wg.Wait()
	must(s, errors.Join(errs...))
	for i, a := range swarm {
		a.Label = fmt.Sprintf("shard-%02d", i)
	}
	s.Say("  … and 49 more: shard-01 to shard-49.")

	s.Part("1. All at once")
	s.Say("Every shard's agent calls, at the same moment:")
	s.Tried("shard-NN", fmt.Sprintf("demo.write_note {\"name\":\"shard-NN\",\"text\":%q}", change))
	results := make([]error, agents)
	start := make(chan struct{})
	for i, a := range swarm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, results[i] = a.CallQuiet(ctx, "demo.write_note", args(i))
		}()
	}
	close(start)
	wg.Wait()
	var allowed, held []int
	for i, err := range results {
		var rpc *story.RPCError
		switch {
		case err == nil:
			allowed = append(allowed, i)
		case errors.As(err, &rpc) && rpc.Code == story.CodePending && strings.Contains(rpc.Message, "schema-changes"):
			held = append(held, i)
		default:
			s.Check(false, "shard-%02d: unexpected answer: %v", i, err)
		}
	}
	s.Reply(story.Allowed, fmt.Sprintf("%d calls: %s", len(allowed), shards(allowed)))
	s.Check(len(allowed) == budget && len(held) == agents-budget,
		"%d calls went through and %d were held; the budget is exactly %d", len(allowed), len(held), budget)
	waiting := held[0]
	s.Reply(story.Held, fmt.Sprintf("%d calls: %s\n%s was told: %s", len(held), shards(held), swarm[waiting].Label, results[waiting]))
	s.Say("")
	s.Say("Exactly %d changes ran, however the fifty calls interleaved: the budget is reserved", budget)
	s.Say("all-or-nothing for each call before it is forwarded. The rest are not lost, and do")
	s.Say("not run: each waits for dana, as its own request bound to its exact arguments.")

	s.Part("2. What the operators see")
	s.Say("The collective detector saw one group make the same change from many sessions")
	s.Say("at once, and raised a swarm signal (the playbook swarm-alert alerts on it):")
	_, err = s.Audit("--agent", agentName, "--type", "signal")
	must(s, err)
	swarmSignals, err := s.Events("--agent", agentName, "--type", "signal")
	must(s, err)
	found := false
	for _, e := range swarmSignals {
		found = found || strings.Contains(string(e.Data), `"kind":"swarm"`)
	}
	s.Check(found, "no swarm signal was recorded")
	pending, err := pendingOf(s, agentName)
	must(s, err)
	s.Say("$ ward approvals list")
	s.Say("  %d requests of %s pending, one per held shard, each needing 1 of dba (not shown)", len(pending), agentName)
	s.Check(len(pending) == len(held), "%d pending requests, want %d", len(pending), len(held))

	s.Part("3. A human decides")
	target := pending[swarm[waiting].Session]
	s.Say("dana approves one shard's change:")
	_, err = s.RunAs("DANA_TOKEN", dana.Credential, s.ApprovalArgs("approve", target, "--reason", "shard "+fmt.Sprint(waiting)+" is hot; the rest can wait for the window")...)
	must(s, err)
	s.Say("Its agent retries the exact same call, which redeems the approval once:")
	_, err = swarm[waiting].Call(ctx, "demo.write_note", args(waiting))
	s.Check(err == nil, "the approved call was refused: %v", err)
	other := held[1]
	s.Say("Another held shard retries; nobody approved its request, and the budget is spent:")
	_, err = swarm[other].Call(ctx, "demo.write_note", args(other))
	s.Check(err != nil, "a call past the budget went through without approval")

	s.Part("In the audit log")
	s.Say("The changes that reached the server (%d within the budget, 1 approved):", budget)
	_, err = s.Audit("--agent", agentName, "--tool", "demo.write_note", "--type", "result")
	must(s, err)
	s.Say("Every held call is a decision naming the limit, e.g. the last three:")
	_, err = s.Audit("--agent", agentName, "--decision", "escalate", "-n", "3")
	must(s, err)
	s.Say("dana's approval:")
	_, err = s.Audit("--session", swarm[waiting].Session, "--type", "approval.approved")
	must(s, err)
	s.Say("")
	s.Say("The other %d requests stay pending until dana (or another of group dba) answers", len(held)-1)
	s.Say("them, or they expire (approvals.timeout, 15 minutes by default).")
}

func startArgs(agent string, shard int) []string {
	return []string{"--agent", agent, "--objective", fmt.Sprintf("add the index users(email) on shard %02d", shard),
		"--allow", "tool:demo.write_note"}
}

func args(shard int) map[string]any {
	return map[string]any{"name": fmt.Sprintf("shard-%02d", shard), "text": change}
}

// shards names shards compactly: "shard-03, shard-17, …".
func shards(ids []int) string {
	var names []string
	for i, id := range ids {
		if i == 6 {
			names = append(names, fmt.Sprintf("… (%d more)", len(ids)-i))
			break
		}
		names = append(names, fmt.Sprintf("shard-%02d", id))
	}
	return strings.Join(names, ", ")
}

// pendingOf returns the agent's pending approval requests, by session.
func pendingOf(s *story.Story, agent string) (map[string]string, error) {
	out, err := s.Quiet("approvals", "list", "-o", "json")
	if err != nil {
		return nil, err
	}
	var rs []struct{ ID, Session, Agent string }
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, r := range rs {
		if r.Agent == agent {
			m[r.Session] = r.ID
		}
	}
	return m, nil
}

func must(s *story.Story, err error) {
	if err != nil {
		s.Fatal(err)
	}
}
