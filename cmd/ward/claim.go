package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/server"
)

// cmdReceipts fetches the signed receipts of a session's tool calls, as the
// session itself (its credentials) or as an operator.
func cmdReceipts(args []string, stdout io.Writer) error {
	fs := flags("receipts")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "the session whose receipts to fetch")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *session == "" {
		return usagef("usage: ward receipts --session ID   (prints a JSON array of DSSE envelopes)")
	}
	c, _, err := sessionClient(*session)
	if err != nil {
		if c, err = operatorClient(); err != nil {
			return err
		}
	}
	var envs []json.RawMessage
	if err := c.do("GET", "/v1/receipts?session="+url.QueryEscape(*session), nil, &envs); err != nil {
		return err
	}
	return printJSON(stdout, envs)
}

// cmdClaim checks an agent's claim against a receipt and the audit log,
// offline.
func cmdClaim(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "claim", "verify")
	if err != nil {
		return err
	}
	fs := flags("claim " + sub)
	out := outputFlag(fs)
	data := fs.String("data", server.DefaultData, "the node's data directory (log, public keys)")
	session := fs.String("session", "", "the session the claim is about")
	tool := fs.String("tool", "", "the tool the claim is about (SERVER.TOOL)")
	outcome := fs.String("outcome", receipt.OutcomeSuccess, "the claimed outcome: success, tool_error or error")
	file := fs.String("receipt", "", "the receipt (a DSSE envelope) backing the claim")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *session == "" || *tool == "" || *file == "" {
		return usagef("usage: ward claim verify --data DIR --session ID --tool SERVER.TOOL [--outcome success] --receipt FILE")
	}
	env, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	pub, err := server.ReceiptKey(*data)
	if err != nil {
		return err
	}
	v, origin, err := server.AuditVerifier(*data)
	if err != nil {
		return err
	}
	p, err := receipt.CheckClaim(receipt.Claim{Session: *session, Tool: *tool, Outcome: *outcome}, env, pub, *data+"/audit", v, origin)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, p)
	}
	fmt.Fprintf(stdout, "claim holds: %s in session %s ended %s (audit event %d, included in the signed log)\n", p.Tool, p.Session, p.Outcome, p.LogIndex)
	return nil
}
