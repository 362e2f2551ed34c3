package main

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/strictjson"
)

// maxClaimTries bounds the receipts of one claim checked against the log.
const maxClaimTries = 3

// maxReceiptsFile bounds a receipt file ward claim verify reads: what ward
// receipts can print (the node answers at most maxResponse bytes).
const maxReceiptsFile = maxResponse

// cmdReceipts fetches the signed receipts of a session's tool calls, as the
// session itself (its credentials) or as an operator. It prints them as a
// JSON array of DSSE envelopes whatever -o says, since that is what ward
// claim verify and other verifiers read; -o text prints a table instead.
func cmdReceipts(args []string, stdout io.Writer) error {
	fs := flags("receipts")
	out := fs.String("o", "json", "output `format`: json (the DSSE envelopes, for ward claim verify --receipt) or text (a table)")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "the `session` whose receipts to fetch (default $WARD_SESSION)")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *session == "" {
		return usagef("needs --session ID")
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
	if *out == "json" {
		if envs == nil {
			envs = []json.RawMessage{}
		}
		return printJSON(stdout, envs)
	}
	// The table shows what each receipt says; its signature is checked by
	// ward claim verify, against the key you hold.
	var rows [][]string
	for i, e := range envs {
		p, err := receiptPayload(e)
		if err != nil {
			rows = append(rows, []string{fmt.Sprint(i), "", "", "", "unreadable: " + err.Error()})
			continue
		}
		rows = append(rows, []string{fmt.Sprint(i), fmt.Sprint(p.LogIndex), p.Time.UTC().Format(time.RFC3339), p.Tool, p.Outcome})
	}
	table(stdout, "#\tLOG INDEX\tTIME\tTOOL\tOUTCOME", rows)
	return nil
}

// receiptPayload reads what a receipt says without checking its signature:
// for display only.
func receiptPayload(env json.RawMessage) (*receipt.Predicate, error) {
	var e receipt.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, err
	}
	var st struct {
		Predicate receipt.Predicate `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, err
	}
	return &st.Predicate, nil
}

// claimVerify checks an agent's claim against a receipt and the audit log,
// offline. The receipt file holds one DSSE envelope, or an array of them as
// ward receipts prints: then the receipts of the claimed session, tool and
// outcome are found among them (by signature-checked content) and the
// claim holds if one of them, the newest first (at most maxClaimTries),
// checks out against the log.
func claimVerify(args []string, stdout io.Writer) error {
	fs := flags("claim verify")
	out := outputFlag(fs)
	data := fs.String("data", server.DefaultData, "the node's data `directory` (log, public keys)")
	session := fs.String("session", "", "the `session` the claim is about")
	tool := fs.String("tool", "", "the `tool` the claim is about (SERVER.TOOL)")
	outcome := fs.String("outcome", receipt.OutcomeSuccess, "the claimed `outcome`: success, tool_error or error")
	file := fs.String("receipt", "", "the receipt (a DSSE envelope) backing the claim, or a `file` of them (ward receipts)")
	argsDigest := fs.String("arguments-sha256", "", "also claim the call's arguments: the `hex` SHA-256 of the arguments exactly as ward forwarded them (the receipt's arguments_sha256)")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if *argsDigest != "" && (len(*argsDigest) != 64 || strings.Trim(*argsDigest, "0123456789abcdef") != "") {
		return usagef("--arguments-sha256: 64 lowercase hex digits")
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *session == "" || *tool == "" || *file == "" {
		return usagef("needs --session ID, --tool SERVER.TOOL and --receipt FILE")
	}
	raw, err := readLimited(*file, maxReceiptsFile)
	if err != nil {
		return err
	}
	envs, isArray, err := splitReceipts(raw)
	if err != nil {
		return usagef("--receipt %s: %v", *file, err)
	}
	if err := holdsLog(*data); err != nil {
		return err
	}
	keys, err := server.ReceiptKeys(*data)
	if err != nil {
		return err
	}
	v, origin, err := server.AuditVerifier(*data)
	if err != nil {
		return err
	}
	claim := receipt.Claim{Session: *session, Tool: *tool, Outcome: *outcome, ArgumentsSHA256: *argsDigest}
	candidates := envs
	note := ""
	if isArray {
		if candidates, note, err = matchingReceipts(envs, claim, keys, *file); err != nil {
			return err
		}
	}
	// Each check verifies the whole log: a few are tried, the newest
	// first; if they all fail, the log or the receipts are at fault, and
	// more attempts would say the same.
	var p *receipt.Predicate
	var first error
	for i := len(candidates) - 1; i >= 0 && i >= len(candidates)-maxClaimTries; i-- {
		if p, err = receipt.CheckClaimKeys(claim, candidates[i], keys, filepath.Join(*data, "audit"), v, origin); err == nil {
			break
		}
		if first == nil {
			first = err
		}
	}
	if p == nil {
		return first
	}
	if *out == "json" {
		return printJSON(stdout, p)
	}
	fmt.Fprintf(stdout, "claim holds: %s in session %s ended %s (audit event %d, included in the signed log)\n", p.Tool, p.Session, p.Outcome, p.LogIndex)
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	return nil
}

// splitReceipts reads a receipt file: one envelope, or a JSON array of them
// (strictly: no duplicate or case-variant member names, valid UTF-8).
func splitReceipts(raw []byte) (envs [][]byte, isArray bool, err error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return [][]byte{raw}, false, nil
	}
	var arr []json.RawMessage
	if err := strictjson.UnmarshalOpen(raw, &arr); err != nil {
		return nil, true, fmt.Errorf("not a JSON array of receipts: %w", err)
	}
	if len(arr) == 0 {
		return nil, true, errors.New("holds no receipts (an empty array)")
	}
	for _, e := range arr {
		envs = append(envs, e)
	}
	return envs, true, nil
}

// matchingReceipts returns the receipts among envs whose verified content
// is of the claim's session, tool and outcome, in file order, and a note on
// the others that did not verify. None matching is an error that says
// what the file holds.
func matchingReceipts(envs [][]byte, c receipt.Claim, keys []*ecdsa.PublicKey, file string) ([][]byte, string, error) {
	var match [][]byte
	held := map[string]int{}
	bad := 0
	for _, e := range envs {
		p, err := receipt.VerifyKeys(e, keys)
		if err != nil {
			bad++
			continue
		}
		if p.Session == c.Session && p.Tool == c.Tool && p.Outcome == c.Outcome && (c.ArgumentsSHA256 == "" || p.ArgumentsSHA256 == c.ArgumentsSHA256) {
			match = append(match, e)
			continue
		}
		held[fmt.Sprintf("%s %s in session %s", p.Tool, p.Outcome, p.Session)]++
	}
	note := ""
	if bad > 0 {
		note = fmt.Sprintf("note: %d of the %d receipts in %s do not verify against the node's receipt key", bad, len(envs), file)
	}
	if len(match) > 0 {
		return match, note, nil
	}
	var kinds []string
	for k, n := range held {
		kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
	}
	if len(kinds) == 0 {
		kinds = append(kinds, "nothing that verifies")
	}
	slices.Sort(kinds)
	return nil, "", fmt.Errorf("claim refused: none of the %d receipts in %s is of %s %s in session %s (it holds %s)",
		len(envs), file, c.Tool, c.Outcome, c.Session, strings.Join(kinds, ", "))
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
