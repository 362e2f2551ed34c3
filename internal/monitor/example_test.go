package monitor_test

import (
	"fmt"
	"time"

	"github.com/ward-dev/ward/internal/monitor"
)

// Five optimizers of one group add the same index within a minute: the
// fifth call completes a swarm, and the playbook escalates its session.
func Example() {
	cfg := monitor.DefaultConfig()
	cfg.Playbooks = []monitor.Playbook{{Name: "swarm", Signals: []string{monitor.SignalSwarm},
		Actions: []string{monitor.ActionRequireApproval}}}
	m, err := monitor.New(cfg)
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		sigs, acts := m.Observe(monitor.Event{Time: start.Add(time.Duration(i) * 10 * time.Second),
			Agent: fmt.Sprint("optimizer-", i), Session: fmt.Sprint("s", i), Groups: []string{"db-optimizers"},
			Kind: monitor.KindCall, Name: "db.create_index", Verb: "write", Decision: monitor.DecisionAllow})
		for _, s := range sigs {
			fmt.Printf("call %d: %s %s, group %s: %s\n", i+1, s.Severity, s.Kind, s.Group, s.Detail)
		}
		for _, a := range acts {
			fmt.Printf("  %s for session %s (playbook %s)\n", a.Kind, a.Session, a.Playbook)
		}
	}
	// Output:
	// call 5: high swarm, group db-optimizers: 5 sessions of group db-optimizers called db.create_index (write) within 1m0s
	//   require_approval for session s4 (playbook swarm)
}

func ExampleOutsideObjective() {
	categories := map[string][]string{"db.*": {"database"}, "mail.send": {"email", "external"}}
	declared := []string{"database", "email"} // the session's objective
	for _, tool := range []string{"db.query", "mail.send", "shell.exec"} {
		cats := monitor.Categories(tool, categories)
		fmt.Println(tool, cats, monitor.OutsideObjective(declared, cats))
	}
	// Output:
	// db.query [database] false
	// mail.send [email external] true
	// shell.exec [] true
}
