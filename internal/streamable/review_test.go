package streamable

import (
	"net/http"
	"strings"
	"testing"
)

// TestVersionHeaderCannotSwitchVersion: an MCP-Protocol-Version header
// with a supported version other than the negotiated one is served (the
// specification asks for 400 only for invalid or unsupported versions),
// under the negotiated version: it cannot turn batching back on. An
// unsupported or malformed version is 400.
func TestVersionHeaderCannotSwitchVersion(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	status, hdr, body := post(t, ts.srv.URL, "", nil, initBody("2025-06-18"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	batch := `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`
	for _, v := range []string{"1999-01-01", "2025-13-45", "2099-01-01"} {
		status, _, body = post(t, ts.srv.URL, sid, map[string]string{headerProtocolVersion: v}, `{"jsonrpc":"2.0","id":7,"method":"ping"}`)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "not supported") {
			t.Fatalf("header %s: %d %s", v, status, body)
		}
	}
	for _, v := range []string{"2025 06 18", "v2025-06-18", "2025-6-18"} {
		status, _, body = post(t, ts.srv.URL, sid, map[string]string{headerProtocolVersion: v}, `{"jsonrpc":"2.0","id":7,"method":"ping"}`)
		if status != http.StatusBadRequest {
			t.Fatalf("header %q: %d %s", v, status, body)
		}
	}
	for _, v := range []string{"2024-11-05", "2025-03-26", "2025-11-25"} {
		status, _, body = post(t, ts.srv.URL, sid, map[string]string{headerProtocolVersion: v}, `{"jsonrpc":"2.0","id":8,"method":"ping"}`)
		if status != http.StatusOK {
			t.Fatalf("supported header %s on a 2025-06-18 session: %d %s", v, status, body)
		}
		// ...but it does not switch the session to that version.
		status, _, body = post(t, ts.srv.URL, sid, map[string]string{headerProtocolVersion: v}, batch)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "batches") {
			t.Fatalf("batch with header %s on a 2025-06-18 session: %d %s", v, status, body)
		}
	}
	status, _, body = post(t, ts.srv.URL, sid, map[string]string{headerProtocolVersion: "2025-06-18"}, batch)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "batches") {
		t.Fatalf("batch on 2025-06-18 with a matching header: %d %s", status, body)
	}
}

func TestNumericIDsMustBeExact(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	_, hdr, _ := post(t, ts.srv.URL, "", nil, initBody("2025-06-18"))
	sid := hdr.Get(headerSessionID)
	for _, id := range []string{"1.5", "1e3", "9007199254740993", "-9223372036854775809"} {
		status, _, body := post(t, ts.srv.URL, sid, nil, `{"jsonrpc":"2.0","id":`+id+`,"method":"ping"}`)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "integer") {
			t.Errorf("id %s: %d %s", id, status, body)
		}
	}
}

func TestSSECommentsDoNotAccumulate(t *testing.T) {
	in := strings.Repeat(": ping\n\n", 1000) + "id: 1\ndata: {}\n\n"
	r := newSSEReader(strings.NewReader(in), 100)
	ev, err := r.Next()
	if err != nil || string(ev.Data) != "{}" {
		t.Fatalf("event after many keep-alives: %+v %v", ev, err)
	}
}

// TestDiscoverProbeAnswered: a protocol 2026-07-28 client probes with
// server/discover before initialize; the probe gets a JSON-RPC error (so
// the client falls back to initialize) and is not counted as a refusal.
func TestDiscoverProbeAnswered(t *testing.T) {
	var refused []string
	ts := newTestServer(t, HandlerConfig{OnRefuse: func(r *http.Request, status int, reason string) { refused = append(refused, reason) }}, nil)
	status, hdr, body := post(t, ts.srv.URL, "", nil, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"code":-32601`) || hdr.Get(headerSessionID) != "" {
		t.Fatalf("server/discover: %d %s", status, body)
	}
	if len(refused) != 0 {
		t.Fatalf("the probe was recorded as a refusal: %v", refused)
	}
	// Any other method without a session is still refused, and counted.
	status, _, body = post(t, ts.srv.URL, "", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if status != http.StatusBadRequest || len(refused) != 1 {
		t.Fatalf("tools/list without a session: %d %s (refused %v)", status, body, refused)
	}
	// A batch holding a probe is not a probe.
	status, _, _ = post(t, ts.srv.URL, "", nil, `[{"jsonrpc":"2.0","id":1,"method":"server/discover"}]`)
	if status != http.StatusBadRequest {
		t.Fatalf("batched server/discover: %d", status)
	}
}
