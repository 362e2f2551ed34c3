package server

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/policy"
)

// DefaultApproverGroup is the approver group the starter policy escalates
// to ("1 of group:security"). Unless the configuration names its members
// (Config.ApproverGroups, approvals.groups in the file), its one member is
// the admin created at first start (authority.AdminPrincipal): every
// escalation the default configuration can produce then has someone who
// can decide it. The admin still cannot approve a call of an agent it
// sponsors itself (the agent's own sponsor never approves its own
// escalation), so sponsor agents with a sponsor of their own
// (`ward sponsor create`), or name more approvers.
const DefaultApproverGroup = "security"

// withDefaultApprovers returns groups with DefaultApproverGroup added,
// holding the admin, when groups does not name it. groups is not changed.
func withDefaultApprovers(groups map[string][]string) map[string][]string {
	if _, ok := groups[DefaultApproverGroup]; ok {
		return groups
	}
	out := maps.Clone(groups)
	if out == nil {
		out = map[string][]string{}
	}
	out[DefaultApproverGroup] = []string{authority.AdminPrincipal}
	return out
}

// unanswerable lists, one sentence each, the escalations nobody could
// decide: an @escalate policy or a limit that escalates asks for more
// approvers than its groups hold (members of approver groups, and reviewer
// agents of those groups, counted once each). Such a call waits until its
// request expires and is then denied: safe, but no one can ever let it
// through, which is a configuration mistake worth saying at start.
func unanswerable(set *policy.Set, groups map[string][]string, reviewers []Reviewer, limits map[string]policy.Approval) []string {
	voters := func(gs []string) int {
		seen := map[string]bool{}
		for _, g := range gs {
			for _, m := range groups[g] {
				seen["principal:"+m] = true
			}
			for _, r := range reviewers {
				if slices.Contains(r.Groups, g) {
					seen["reviewer:"+r.Name] = true
				}
			}
		}
		return len(seen)
	}
	var out []string
	check := func(what string, a policy.Approval) {
		if n := voters(a.Groups); n < a.Quorum {
			gs := make([]string, len(a.Groups))
			for i, g := range a.Groups {
				gs[i] = "approvals.groups." + g
			}
			out = append(out, fmt.Sprintf("%s escalates to %s, but only %d approver(s) can vote: its calls can never be approved; add members under %s in the configuration",
				what, a, n, joinOr(gs)))
		}
	}
	for _, p := range set.Policies() {
		spec, ok := p.Annotations["escalate"]
		if !ok {
			continue
		}
		a, err := policy.ParseApproval(spec)
		if err != nil {
			continue // LoadPolicies refused it already; nothing is in force
		}
		check(fmt.Sprintf("policy %q (%s)", p.ID, p.Position), a)
	}
	ids := slices.Collect(maps.Keys(limits))
	sort.Strings(ids)
	for _, id := range ids {
		check(fmt.Sprintf("limit %q", id), limits[id])
	}
	return out
}

func joinOr(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	s := ""
	for i, x := range xs {
		switch {
		case i == 0:
		case i == len(xs)-1:
			s += " or "
		default:
			s += ", "
		}
		s += x
	}
	return s
}

// warnUnanswerable logs what unanswerable finds in the policies in force.
func (n *Node) warnUnanswerable(set *policy.Set) {
	for _, msg := range unanswerable(set, n.cfg.ApproverGroups, n.cfg.Reviewers, n.cfg.LimitApprovers) {
		n.cfg.Logger.Warn(msg)
	}
}

// ApproverGroups returns the approver groups in force, by group: the
// configuration's, with DefaultApproverGroup's default.
func (n *Node) ApproverGroups() map[string][]string {
	out := make(map[string][]string, len(n.cfg.ApproverGroups))
	for g, ms := range n.cfg.ApproverGroups {
		out[g] = slices.Clone(ms)
	}
	return out
}
