package quota

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzLimits are the limits FuzzReserve drives; their windows are whole
// seconds so that clock steps of 500ms land exactly on window edges.
var fuzzLimits = []Limit{
	{ID: "sess", Scope: ScopeSession, Window: 10 * time.Second, Max: 3},
	{ID: "grp", Scope: ScopeGroup, Cost: "rows", Window: 30 * time.Second, Max: 20},
	{ID: "agent-a0", Scope: ScopeAgent, Key: "a0", Match: Matcher{Tools: []string{"db.*"}}, Window: 7 * time.Second, Max: 5},
	{ID: "sponsor", Scope: ScopeSponsor, Match: Matcher{Actions: []string{"call_tool"}}, Window: 20 * time.Second, Max: 6, OnExceed: OnExceedEscalate},
}

// fuzzCall builds the call of session i (0..3).
func fuzzCall(i int, db, callTool bool, rows float64) Call {
	c := Call{
		Session: fmt.Sprintf("s%d", i),
		Agent:   fmt.Sprintf("a%d", i%2),
		Groups:  [][]string{{"g0"}, {"g0", "g1"}, {"g1"}, nil}[i],
		Tool:    "fs.read",
		Action:  "read_resource",
		Costs:   map[string]float64{"rows": rows},
	}
	if i < 2 {
		c.Sponsor = "p"
	}
	if db {
		c.Tool = "db.create_index"
	}
	if callTool {
		c.Action = "call_tool"
	}
	return c
}

// modelUses is an independent statement of which (limit, key) pairs a call
// counts in and how much.
func modelUses(c Call) map[bucketKey]float64 {
	out := map[bucketKey]float64{}
	out[bucketKey{"sess", ScopeSession, c.Session}] = 1
	for _, g := range c.Groups {
		out[bucketKey{"grp", ScopeGroup, g}] = c.Costs["rows"]
	}
	if c.Agent == "a0" && strings.HasPrefix(c.Tool, "db.") {
		out[bucketKey{"agent-a0", ScopeAgent, "a0"}] = 1
	}
	if c.Sponsor != "" && c.Action == "call_tool" {
		out[bucketKey{"sponsor", ScopeSponsor, c.Sponsor}] = 1
	}
	return out
}

type modelEvent struct {
	t        time.Time
	v        float64
	canceled *bool
}

// FuzzReserve runs random sequences of reserve, cancel and clock steps
// against a model that keeps every event. Invariants: the usage recorded in
// any window never exceeds Max; it equals the sum of the non-cancelled
// successful reservations in the window; Reserve admits exactly what the
// model admits. With a small MaxEventsPerKey (first byte odd), logs merge
// and the last two become "at least" and "never more than".
func FuzzReserve(f *testing.F) {
	f.Add([]byte{0, 0, 0x11, 0, 0x21, 0, 0x31, 0, 0x41, 2, 0, 3, 20, 0, 0x12})
	f.Add([]byte{1, 0, 0xf1, 0, 0xf5, 1, 0x51, 3, 2, 0, 0xff, 2, 1, 3, 60, 1, 0x77})
	f.Add([]byte{0, 0, 0x09, 0, 0x09, 0, 0x09, 0, 0x09, 0, 0x09, 0, 0x09, 0, 0x09, 3, 14, 0, 0x09})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 400 {
			return // long inputs add nothing but quadratic model checks
		}
		clk := newClock()
		exact := data[0]&1 == 0
		cfg := Config{Limits: fuzzLimits, Now: clk.Now}
		if !exact {
			cfg.MaxEventsPerKey = MinMaxEventsPerKey
		}
		l, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		limits := map[string]Limit{}
		for _, lim := range fuzzLimits {
			limits[lim.ID] = lim
		}
		events := map[bucketKey][]modelEvent{}
		type res struct {
			r        *Reservation
			canceled *bool
		}
		var reservations []res

		used := func(k bucketKey, at time.Time) float64 {
			sum := 0.0
			from := at.Add(-limits[k.limit].Window)
			for _, e := range events[k] {
				if !*e.canceled && e.t.After(from) && !e.t.After(at) {
					sum += e.v
				}
			}
			return sum
		}

		data = data[1:]
		for len(data) >= 2 {
			op, arg := data[0]%4, data[1]
			data = data[2:]
			now := clk.Now()
			switch op {
			case 0, 1:
				c := fuzzCall(int(arg&3), arg&4 != 0, arg&8 != 0, float64(arg>>4))
				uses := modelUses(c)
				var want []string
				for k, v := range uses {
					if used(k, now)+v > limits[k.limit].Max {
						want = append(want, k.limit+"/"+k.key)
					}
				}
				slices.Sort(want)
				r, ex, err := l.Reserve(c)
				if err != nil {
					t.Fatalf("Reserve(%+v): %v", c, err)
				}
				if r == nil {
					if len(want) == 0 && exact {
						t.Fatalf("Reserve(%+v) exceeded %+v; the model admits it", c, ex)
					}
					var got []string
					for _, e := range ex {
						k := bucketKey{e.Limit.ID, e.Limit.Scope, e.Key}
						got = append(got, e.Limit.ID+"/"+e.Key)
						if e.Requested != uses[k] || e.Max != limits[k.limit].Max || e.Used+e.Requested <= e.Max {
							t.Fatalf("bad exceeded %+v for %v", e, k)
						}
						if exact && e.Used != used(k, now) {
							t.Fatalf("exceeded %v used %v, model %v", k, e.Used, used(k, now))
						}
						if e.Limit.OnExceed == "" {
							t.Fatalf("exceeded %v has no OnExceed", k)
						}
					}
					if exact && !slices.Equal(got, want) {
						t.Fatalf("exceeded %v, model %v", got, want)
					}
					continue
				}
				if len(want) > 0 {
					t.Fatalf("Reserve(%+v) admitted; the model exceeds %v", c, want)
				}
				canceled := new(bool)
				for k, v := range uses {
					events[k] = append(events[k], modelEvent{t: now, v: v, canceled: canceled})
				}
				reservations = append(reservations, res{r, canceled})
			case 2:
				if len(reservations) == 0 {
					continue
				}
				rv := reservations[int(arg)%len(reservations)]
				rv.r.Cancel()
				*rv.canceled = true
			case 3:
				clk.Advance(time.Duration(arg%64) * 500 * time.Millisecond)
			}

			now = clk.Now()
			for k, evs := range events {
				// Events older than any window can no longer matter: every
				// window holding them was checked while it was current.
				evs = slices.DeleteFunc(evs, func(e modelEvent) bool { return now.Sub(e.t) > time.Minute })
				events[k] = evs
				max := limits[k.limit].Max
				for _, e := range evs {
					if !*e.canceled {
						if u := used(k, e.t); u > max {
							t.Fatalf("%v: window ending %v holds %v > max %v", k, e.t, u, max)
						}
					}
				}
				got, want := l.Usage(k.scope, k.key, k.limit), used(k, now)
				if exact && got != want || got < want {
					t.Fatalf("Usage(%v) = %v, model %v (exact %v)", k, got, want, exact)
				}
			}
		}
	})
}
