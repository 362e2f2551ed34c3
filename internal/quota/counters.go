package quota

import "math"

// Counters returns, for every limit that matches c, how much of it c's keys
// have used in the current window: the most used of the call's session and
// the sessions it was delegated from, of its agent and its delegators, or
// of its groups, or its sponsor's use. Policies read these as
// context.counters, to escalate before a budget is exhausted. Nothing is
// reserved.
func (l *Limiter) Counters(c Call) map[string]float64 {
	out := map[string]float64{}
	for _, lim := range l.Limits() {
		if !lim.Match.Matches(c) {
			continue
		}
		var keys []string
		switch lim.Scope {
		case ScopeSession:
			keys = append([]string{c.Session}, c.Lineage...)
		case ScopeAgent:
			keys = append([]string{c.Agent}, c.Delegators...)
		case ScopeSponsor:
			keys = []string{c.Sponsor}
		case ScopeGroup:
			keys = c.Groups
		}
		used, any := 0.0, false
		for _, k := range keys {
			if k == "" || (lim.Key != "" && k != lim.Key) {
				continue
			}
			used, any = math.Max(used, l.Usage(lim.Scope, k, lim.ID)), true
		}
		if any {
			out[lim.ID] = used
		}
	}
	return out
}
