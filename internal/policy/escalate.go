package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Approval is what an @escalate policy asks for before a call may proceed:
// Quorum distinct approvers, each a member of one of Groups.
//
//	@escalate("2 of group:dba, group:sre")
//	@escalate_timeout("15m")
//
// On a forbid, the annotation means "deny unless approved"; on a permit,
// "allowed only with approval". Timeout 0 means the approval queue's default.
type Approval struct {
	PolicyID string
	Quorum   int
	Groups   []string
	Timeout  time.Duration
}

// maxQuorum bounds N in "N of …".
const maxQuorum = 100

func (a Approval) String() string {
	gs := make([]string, len(a.Groups))
	for i, g := range a.Groups {
		gs[i] = "group:" + g
	}
	return fmt.Sprintf("%d of %s", a.Quorum, strings.Join(gs, ", "))
}

// ParseApproval parses an approval requirement written as in @escalate:
// "N of group:NAME[, group:NAME…]".
func ParseApproval(spec string) (Approval, error) {
	a, err := parseEscalation(map[string]string{"escalate": spec})
	if err != nil {
		return Approval{}, err
	}
	return *a, nil
}

// parseEscalation reads the @escalate annotations of a policy, or returns
// nil if it has none.
func parseEscalation(ann map[string]string) (*Approval, error) {
	spec, ok := ann["escalate"]
	if !ok {
		if _, ok := ann["escalate_timeout"]; ok {
			return nil, errors.New("@escalate_timeout without @escalate")
		}
		return nil, nil
	}
	n, groups, ok := strings.Cut(strings.TrimSpace(spec), " of ")
	if !ok {
		return nil, fmt.Errorf(`@escalate(%q): want "N of group:NAME[, group:NAME…]"`, spec)
	}
	q, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || q < 1 || q > maxQuorum {
		return nil, fmt.Errorf("@escalate(%q): quorum must be a whole number from 1 to %d", spec, maxQuorum)
	}
	a := &Approval{Quorum: q}
	seen := map[string]bool{}
	for _, g := range strings.Split(groups, ",") {
		name, ok := strings.CutPrefix(strings.TrimSpace(g), "group:")
		if !ok || !validGroup(name) {
			return nil, fmt.Errorf(`@escalate(%q): %q is not "group:NAME"`, spec, strings.TrimSpace(g))
		}
		if !seen[name] {
			seen[name] = true
			a.Groups = append(a.Groups, name)
		}
	}
	if t, ok := ann["escalate_timeout"]; ok {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			return nil, fmt.Errorf("@escalate_timeout(%q): want a positive duration up to 168h", t)
		}
		a.Timeout = d
	}
	return a, nil
}

func validGroup(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (i > 0 && (r == '.' || r == '_' || r == '-'))
		if !ok {
			return false
		}
	}
	return true
}
