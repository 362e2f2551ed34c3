package quota

import (
	"fmt"
	"math"
	"time"
)

// Charge is one part of a reservation: an amount counted against one
// (limit, key) at one instant. A Reservation's charges are what a caller
// records durably (ward records them with each decision) so that usage can
// be rebuilt after a restart: ApplyCharges counts recorded charges again,
// RefundCharges takes back those of a reservation that was recorded as
// refunded.
type Charge struct {
	Limit  string    `json:"limit"`
	Scope  Scope     `json:"scope"`
	Key    string    `json:"key"`
	Time   time.Time `json:"time"`
	Amount float64   `json:"amount"`
}

// Charges returns what r counted, in canonical key order; nil for a nil or
// empty reservation.
func (r *Reservation) Charges() []Charge {
	if r == nil || len(r.items) == 0 {
		return nil
	}
	out := make([]Charge, len(r.items))
	for i, it := range r.items {
		out[i] = Charge{Limit: it.b.key.limit, Scope: it.b.key.scope, Key: it.b.key.key, Time: fromNanos(it.t), Amount: it.amount}
	}
	return out
}

// ApplyCharges counts charges recorded earlier, without checking any limit:
// they were admitted when they were made. A charge of a limit not
// configured now is skipped; one stamped before its key's clock counts at
// the clock, as Reserve counts a late call (usage then leaves the window a
// little later, never earlier). It returns a Reservation that refunds
// them.
func (l *Limiter) ApplyCharges(cs []Charge) (*Reservation, error) {
	set := l.limits.Load()
	r := &Reservation{}
	for i, c := range cs {
		if err := checkCharge(c); err != nil {
			return nil, fmt.Errorf("quota: charge %d: %w", i, err)
		}
		k := bucketKey{c.Limit, c.Scope, c.Key}
		lim := set.byID[c.Limit]
		if lim == nil || !set.owns(k) || c.Amount == 0 {
			continue
		}
		t, err := toNanos(c.Time)
		if err != nil {
			return nil, fmt.Errorf("quota: charge %d: %w", i, err)
		}
		for {
			b, err := l.bucket(k)
			if err != nil {
				return nil, err
			}
			b.mu.Lock()
			if b.dead {
				b.mu.Unlock()
				continue
			}
			b.advance(t, lim.window)
			b.add(c.Amount, lim.window, l.maxEventsPerKey)
			r.items = append(r.items, item{b: b, t: b.clock, amount: c.Amount})
			b.mu.Unlock()
			break
		}
	}
	return r, nil
}

// RefundCharges takes back charges recorded earlier and counted (by the
// reservation that made them or by ApplyCharges): usage still in the
// window at or after each charge's time is reduced by its amount.
func (l *Limiter) RefundCharges(cs []Charge) error {
	for i, c := range cs {
		if err := checkCharge(c); err != nil {
			return fmt.Errorf("quota: charge %d: %w", i, err)
		}
		b := l.lookup(bucketKey{c.Limit, c.Scope, c.Key})
		if b == nil {
			continue
		}
		t, err := toNanos(c.Time)
		if err != nil {
			return fmt.Errorf("quota: charge %d: %w", i, err)
		}
		b.mu.Lock()
		if !b.dead {
			b.refund(t, c.Amount)
		}
		b.mu.Unlock()
	}
	return nil
}

func checkCharge(c Charge) error {
	switch {
	case c.Key == "" || c.Limit == "":
		return fmt.Errorf("charge without a limit or key")
	case !(c.Amount >= 0) || math.IsInf(c.Amount, 0):
		return fmt.Errorf("amount %v is not a finite number >= 0", c.Amount)
	case c.Time.IsZero():
		return fmt.Errorf("charge without a time")
	}
	return nil
}
