package mcpmsg_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/mcpmsg"
)

// TestRedteamOverlongLineRefusedWithoutRecord (red team, refusals without
// an audit record; `ward mcp wrap`).
//
// Attack: `ward mcp wrap` reads its client with mcpmsg.Stdio and records
// every refused line with the node through OnRefuse (cmd/ward/mcp.go,
// conn.OnRefuse → guard.Check with Refused). A line longer than the limit
// is refused too — it ends the connection — but Stdio.Read returns the
// error from line() without telling OnRefuse (internal/mcpmsg/mcpmsg.go,
// Read: `line, err := s.line(); if err != nil { return nil, err }`), so the
// client that sent it, and why the session ended, are nowhere in the audit
// log.
//
// What ward did: ended the session with no record. What it should do:
// report the refused line to OnRefuse before ending the connection.
func TestRedteamOverlongLineRefusedWithoutRecord(t *testing.T) {
	var refused []string
	in := strings.Repeat("x", 4096) + "\n" + `{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n"
	var out bytes.Buffer
	s := mcpmsg.NewStdio(strings.NewReader(in), &out, nil, 1024)
	s.OnRefuse = func(reason string) { refused = append(refused, reason) }
	_, err := s.Read(context.Background())
	if err == nil {
		t.Fatal("an overlong line was accepted")
	}
	if len(refused) == 0 {
		t.Fatalf("the overlong line ended the connection (%v) and OnRefuse was never told: no record of the refusal", err)
	}
}
