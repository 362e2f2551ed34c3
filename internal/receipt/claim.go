package receipt

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
)

// Claim is what an agent says happened: that a call of Tool in Session had
// Outcome.
type Claim struct {
	Session string
	Tool    string
	Outcome string
	// ArgumentsSHA256, if set, is the hex SHA-256 of the arguments the call
	// is claimed to have had, exactly as ward forwarded them (what the
	// receipt and the decision event record): the claim then holds only
	// for a call with those arguments.
	ArgumentsSHA256 string
}

// decisionData is the part of an audit "decision" event a claim checks.
type decisionData struct {
	Name            string `json:"name"`
	Decision        string `json:"decision"`
	ArgumentsSHA256 string `json:"arguments_sha256"`
}

// resultData is the part of an audit "result" event a receipt attests.
type resultData struct {
	Name         string `json:"name"`
	Error        string `json:"error"`
	IsError      bool   `json:"is_error"`
	ResultSHA256 string `json:"result_sha256"`
}

// OutcomeOf classifies a recorded result.
func outcomeOf(d resultData) string {
	switch {
	case d.Error != "":
		return OutcomeError
	case d.IsError:
		return OutcomeToolError
	}
	return OutcomeSuccess
}

// CheckClaim accepts a claim only if the receipt is signed by pub, attests
// exactly this session, tool and outcome (and arguments, if claimed), and
// names audit events that are in the log in dir (the whole log verified
// against its signed checkpoint) and record that very result and the
// decision that allowed the call with those arguments. A claim with no
// receipt, a receipt from another session or for another outcome, and a
// forged or altered receipt all fail.
func CheckClaim(c Claim, envelope []byte, pub *ecdsa.PublicKey, dir string, v note.Verifier, origin string) (*Predicate, error) {
	return CheckClaimKeys(c, envelope, []*ecdsa.PublicKey{pub}, dir, v, origin)
}

// CheckClaimKeys is CheckClaim with a receipt signed by any of keys (see
// VerifyKeys).
func CheckClaimKeys(c Claim, envelope []byte, keys []*ecdsa.PublicKey, dir string, v note.Verifier, origin string) (*Predicate, error) {
	p, err := VerifyKeys(envelope, keys)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Session != c.Session:
		return nil, fmt.Errorf("claim refused: the receipt is for session %s, not %s", p.Session, c.Session)
	case p.Tool != c.Tool:
		return nil, fmt.Errorf("claim refused: the receipt is for %s, not %s", p.Tool, c.Tool)
	case p.Outcome != c.Outcome:
		return nil, fmt.Errorf("claim refused: the receipt records outcome %s, not %s", p.Outcome, c.Outcome)
	case c.ArgumentsSHA256 != "" && p.ArgumentsSHA256 != c.ArgumentsSHA256:
		return nil, fmt.Errorf("claim refused: the receipt is for a call with other arguments (sha256 %s, not %s)", p.ArgumentsSHA256, c.ArgumentsSHA256)
	case p.DecisionIndex >= p.LogIndex:
		return nil, fmt.Errorf("claim refused: the receipt names decision event %d, which does not precede its result %d", p.DecisionIndex, p.LogIndex)
	}
	// Prove verifies the whole log against its signed checkpoint and
	// returns the entry at the index exactly as logged.
	ip, err := audit.Prove(dir, v, origin, p.LogIndex)
	if err != nil {
		return nil, fmt.Errorf("claim refused: event %d: %w", p.LogIndex, err)
	}
	var e audit.Event
	if err := json.Unmarshal(ip.Entry, &e); err != nil {
		return nil, fmt.Errorf("claim refused: event %d: %w", p.LogIndex, err)
	}
	var d resultData
	if err := json.Unmarshal(e.Data, &d); err != nil || e.Type != "result" {
		return nil, fmt.Errorf("claim refused: event %d is not a call result", p.LogIndex)
	}
	if e.Session != p.Session || d.Name != p.Tool || d.ResultSHA256 != p.ResultSHA256 || outcomeOf(d) != p.Outcome {
		return nil, fmt.Errorf("claim refused: event %d does not record what the receipt says", p.LogIndex)
	}
	// The decision the call was forwarded under: this session's, this
	// tool's, allowed, with the arguments the receipt names.
	dp, err := audit.Prove(dir, v, origin, p.DecisionIndex)
	if err != nil {
		return nil, fmt.Errorf("claim refused: decision event %d: %w", p.DecisionIndex, err)
	}
	var de audit.Event
	var dd decisionData
	if json.Unmarshal(dp.Entry, &de) != nil || de.Type != "decision" || json.Unmarshal(de.Data, &dd) != nil {
		return nil, fmt.Errorf("claim refused: event %d is not a decision", p.DecisionIndex)
	}
	if de.Session != p.Session || dd.Name != p.Tool || dd.Decision != "allow" || dd.ArgumentsSHA256 != p.ArgumentsSHA256 {
		return nil, fmt.Errorf("claim refused: decision event %d does not record the call the receipt says (allowed, %s, these arguments)", p.DecisionIndex, p.Tool)
	}
	return p, nil
}

// PredicateFor builds the predicate of a receipt from a recorded result
// event (its Index is the log index) and its decision's arguments digest.
func PredicateFor(result audit.Event, spiffeID, server, argumentsSHA256 string, decisionIndex uint64) (Predicate, error) {
	var d resultData
	if err := json.Unmarshal(result.Data, &d); err != nil || result.Type != "result" {
		return Predicate{}, fmt.Errorf("event %d is not a call result", result.Index)
	}
	return Predicate{Session: result.Session, Agent: result.Agent, SPIFFEID: spiffeID, Server: server, Tool: d.Name,
		ArgumentsSHA256: argumentsSHA256, ResultSHA256: d.ResultSHA256, Outcome: outcomeOf(d),
		LogIndex: result.Index, DecisionIndex: decisionIndex, Time: result.Time}, nil
}
