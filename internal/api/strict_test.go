package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// TestDuplicateCeilingAgent is the finding: an agent registered with two
// "ceiling" members was created with the last one (everything). Every
// spelling of the attack is refused with the member's path and creates
// nothing.
func TestDuplicateCeilingAgent(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.echo")
	for name, tc := range map[string]struct{ body, want string }{
		"the finding":     {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]}, "ceiling":{"tools":["*"]}}`, `duplicate member "/ceiling"`},
		"escaped name":    {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]},"ceil\u0069ng":{"tools":["*"]}}`, `duplicate member "/ceiling"`},
		"nested":          {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"],"tools":["*"]}}`, `duplicate member "/ceiling/tools"`},
		"case variant":    {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]},"Ceiling":{"tools":["*"]}}`, `unknown member "/Ceiling"`},
		"case only":       {`{"name":"a1","sponsor":"acme","CEILING":{"tools":["*"]}}`, `unknown member "/CEILING"`},
		"nested case":     {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"],"Tools":["*"]}}`, `unknown member "/ceiling/Tools"`},
		"name twice":      {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]},"name":"base2"}`, `duplicate member "/name"`},
		"sponsor twice":   {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]},"sponsor":"other"}`, `duplicate member "/sponsor"`},
		"invalid utf-8":   {"{\"name\":\"a1\",\"sponsor\":\"acme\",\"ceiling\":{\"tools\":[\"demo.\xff\"]}}", "UTF-8"},
		"trailing object": {`{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]}} {"ceiling":{"tools":["*"]}}`, "after"},
	} {
		rec := n.op("POST", "/v1/agents", tc.body)
		var e struct{ Error string }
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s; want 400 naming %s", name, rec.Code, rec.Body, tc.want)
		}
		if rec := n.op("GET", "/v1/agents/a1", ""); rec.Code != http.StatusNotFound {
			t.Fatalf("%s: agent a1 was created: %s", name, rec.Body)
		}
	}
	// The well-formed request still works, with exactly its ceiling.
	var v api.AgentView
	n.must("POST", "/v1/agents", `{"name":"a1","sponsor":"acme","ceiling":{"tools":["demo.echo"]}}`, &v)
	var ceiling struct{ Tools []string }
	if err := json.Unmarshal(v.Ceiling, &ceiling); err != nil || len(ceiling.Tools) != 1 || ceiling.Tools[0] != "demo.echo" {
		t.Fatalf("ceiling = %s", v.Ceiling)
	}
}

// TestStrictBodiesEveryHandler sends, to every handler that reads a JSON
// body, a body with a duplicate in a nested object and one with a case
// variant of a nested member: each is refused with 400 and the path.
func TestStrictBodiesEveryHandler(t *testing.T) {
	n := newNode(t)
	n.agent("base", "w.*", "demo.*")
	s := n.start("base")
	id := s.view.Session
	const opAuth, agAuth = "op", "ag"
	type tc struct {
		auth, method, path string
		dup, dupWant       string
		caseBody, caseWant string
	}
	opn := `{"action":"call_tool","method":"tools/call","server":"w","name":"w.a","upstream":"a"`
	for _, c := range []tc{
		{opAuth, "POST", "/v1/sponsors",
			`{"name":"s2","kind":"human","ceiling":{"tools":["a"],"tools":["*"]}}`, `"/ceiling/tools"`,
			`{"name":"s2","kind":"human","ceiling":{"Tools":["*"]}}`, `"/ceiling/Tools"`},
		{opAuth, "POST", "/v1/agents",
			`{"name":"a2","sponsor":"acme","ceiling":{"tools":["a"],"tools":["*"]}}`, `"/ceiling/tools"`,
			`{"name":"a2","sponsor":"acme","ceiling":{"Tools":["*"]}}`, `"/ceiling/Tools"`},
		{opAuth, "POST", "/v1/agents/base/trust", `{"trust":1,"trust":100}`, `"/trust"`, `{"Trust":100}`, `"/Trust"`},
		{opAuth, "POST", "/v1/sessions",
			`{"agent":"base","objective":"o","csr":"x","scope":{"tools":["w.a"],"tools":["*"]}}`, `"/scope/tools"`,
			`{"agent":"base","objective":"o","csr":"x","scope":{"Tools":["*"]}}`, `"/scope/Tools"`},
		{opAuth, "POST", "/v1/sessions/" + id + "/end", `{"reason":"a","reason":"b"}`, `"/reason"`, `{"Reason":"b"}`, `"/Reason"`},
		{opAuth, "POST", "/v1/tools/approve", `{"name":"w.a","hash":"x","hash":"y"}`, `"/hash"`, `{"name":"w.a","Hash":"y"}`, `"/Hash"`},
		{opAuth, "POST", "/v1/approvals/nope/approve", `{"reason":"a","reason":"b"}`, `"/reason"`, `{"REASON":"b"}`, `"/REASON"`},
		{opAuth, "POST", "/v1/approvals/nope/deny", `{"reason":"a","reason":"b"}`, `"/reason"`, `{"Reason":"b"}`, `"/Reason"`},
		{opAuth, "POST", "/v1/sessions/" + id + "/exec",
			`{"command":"/bin/true","cwd":"/","cwd":"/tmp"}`, `"/cwd"`, `{"command":"/bin/true","Command":"/bin/sh"}`, `"/Command"`},
		{opAuth, "POST", "/v1/sessions/" + id + "/runtime",
			`{"events":[{"kind":"start","detail":"x","data":{"k":1,"k":2}}]}`, `"/events/0/data/k"`,
			`{"events":[{"kind":"start","Detail":"x"}]}`, `"/events/0/Detail"`},
		{"", "POST", "/v1/verify", `{"jwt_svid":"x","audience":"a","audience":"b"}`, `"/audience"`, `{"jwt_svid":"x","Audience":"b"}`, `"/Audience"`},
		{agAuth, "POST", "/v1/guard/filter",
			`{"kind":"tool","server":"w","items":[{"name":"w.a","upstream":"a","definition":{"x":1,"x":2}}]}`, `"/items/0/definition/x"`,
			`{"kind":"tool","server":"w","items":[{"name":"w.a","Upstream":"b"}]}`, `"/items/0/Upstream"`},
		{agAuth, "POST", "/v1/guard/check",
			`{"operation":` + opn + `,"arguments":{"p":"a","p":"b"}}}`, `"/operation/arguments/p"`,
			`{"operation":` + opn + `,"Name":"w.b"}}`, `"/operation/Name"`},
		{agAuth, "POST", "/v1/guard/observe",
			`{"operation":` + opn + `},"outcome":{"error":"a","error":"b"}}`, `"/outcome/error"`,
			`{"operation":` + opn + `},"outcome":{"Error":"a"}}`, `"/outcome/Error"`},
		{agAuth, "POST", "/v1/guard/notice", `{"server":"w","method":"a","method":"b"}`, `"/method"`, `{"server":"w","Method":"b"}`, `"/Method"`},
		{agAuth, "POST", "/v1/guard/answer", `{"server":"w","method":"a","answer":{"bytes":1,"bytes":2}}`, `"/answer/bytes"`, `{"server":"w","method":"a","answer":{"SHA256":"x"}}`, `"/answer/SHA256"`},
		{agAuth, "POST", "/v1/guard/await", `{"approvals":["x"],"wait":"1s","wait":"2s"}`, `"/wait"`, `{"approvals":["x"],"Wait":"2s"}`, `"/Wait"`},
		{agAuth, "POST", "/v1/records", `{"kind":"note","content":{"a":{"b":1,"b":2}}}`, `"/content/a/b"`, `{"kind":"note","Content":{}}`, `"/Content"`},
	} {
		for _, b := range []struct{ body, want string }{{c.dup, "duplicate member " + c.dupWant}, {c.caseBody, "unknown member " + c.caseWant}} {
			req := request(c.method, c.path, b.body)
			switch c.auth {
			case opAuth:
				req.Header.Set("Authorization", "Bearer "+n.admin)
			case agAuth:
				s.sign(t, req)
			}
			rec := n.serve(req)
			var e struct{ Error string }
			json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != http.StatusBadRequest || !strings.Contains(e.Error, b.want) {
				t.Errorf("%s %s %s: %d %s; want 400 with %s", c.method, c.path, b.body, rec.Code, rec.Body, b.want)
			}
		}
	}
}

// exchangeForm sends a token exchange as s for a fresh sub-agent key:
// form is sent as the body exactly (raw), with the parent's grant and
// proof added unless the raw form already names them.
func (n *node) exchange(t *testing.T, s *session, raw string, mutate func(*http.Request)) (int, map[string]any) {
	t.Helper()
	req := request("POST", "/v1/token", raw)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mutate != nil {
		mutate(req)
	}
	proofFor := *req
	proofFor.URL = &url.URL{Path: req.URL.Path}
	s.sign(t, &proofFor)
	req.Header.Set("DPoP", proofFor.Header.Get("DPoP"))
	req.Header.Del("Authorization")
	rec := n.serve(req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// baseForm is a valid exchange for parent s: the fields every test sends.
func baseForm(t *testing.T, s *session) url.Values {
	key, _ := sessioncred.NewKey()
	csr, err := sessioncred.CSR(key)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"grant_type": {api.GrantTypeTokenExchange}, "subject_token": {s.view.Grant},
		"subject_token_type": {api.TokenTypeGrant}, "csr": {base64.RawURLEncoding.EncodeToString(csr)}}
}

// TestTokenFormStrict: the token endpoint reads its form as strictly as
// the API reads JSON. Before, a repeated "scope" was read as its first
// value and a "Scope" ignored, so the child got a scope the client did
// not mean.
func TestTokenFormStrict(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.echo", "demo.write_note")
	s := n.start("base")
	enc := func(f url.Values, extra string) string { return f.Encode() + extra }

	ok := baseForm(t, s)
	ok.Set("scope", "tool:demo.echo")
	ok["audience"] = []string{"svc-a", "svc-b"} // RFC 8693 lets audience repeat
	if status, out := n.exchange(t, s, enc(ok, ""), nil); status != http.StatusOK || out["scope"] != "tool:demo.echo" {
		t.Fatalf("valid exchange: %d %v", status, out)
	}
	for name, tc := range map[string]struct {
		body   string
		mutate func(*http.Request)
		want   string
	}{
		"scope twice":         {enc(baseForm(t, s), "&scope=tool:demo.echo&scope=tool:demo.*"), nil, `parameter "scope" is repeated`},
		"grant_type twice":    {enc(baseForm(t, s), "&grant_type=x"), nil, `parameter "grant_type" is repeated`},
		"csr twice":           {enc(baseForm(t, s), "&csr=AAAA"), nil, `parameter "csr" is repeated`},
		"subject_token twice": {enc(baseForm(t, s), "&subject_token=x"), nil, `"subject_token" is repeated`},
		"case variant":        {enc(baseForm(t, s), "&Scope=tool:demo.echo"), nil, `unknown parameter "Scope"`},
		"unknown":             {enc(baseForm(t, s), "&scopes=tool:demo.echo"), nil, `unknown parameter "scopes"`},
		"actor token":         {enc(baseForm(t, s), "&actor_token=x"), nil, `"actor_token" is not supported`},
		"resource":            {enc(baseForm(t, s), "&resource=https://x"), nil, `"resource" is not supported`},
		"in the query":        {enc(baseForm(t, s), ""), func(r *http.Request) { r.URL.RawQuery = "scope=tool:demo.echo" }, "not in the URL"},
		"invalid utf-8":       {enc(baseForm(t, s), "&agent=%ff"), nil, "UTF-8"},
		"invalid utf-8 raw":   {enc(baseForm(t, s), "&agent=\xff"), nil, "UTF-8"},
		"semicolon":           {enc(baseForm(t, s), ";scope=x"), nil, "malformed form"},
		"json body":           {`{"grant_type":"x"}`, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, "x-www-form-urlencoded"},
		"other charset": {enc(baseForm(t, s), ""), func(r *http.Request) {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=latin1")
		}, "UTF-8"},
		"multipart":            {enc(baseForm(t, s), ""), func(r *http.Request) { r.Header.Set("Content-Type", "multipart/form-data; boundary=x") }, "x-www-form-urlencoded"},
		"empty parameter name": {enc(baseForm(t, s), "&=x"), nil, `unknown parameter ""`},
		"percent-encoded name": {enc(baseForm(t, s), "&sc%6Fpe=tool:demo.echo&scope=tool:demo.write_note"), nil, `parameter "scope" is repeated`},
		"name with a space":    {enc(baseForm(t, s), "&scope+=tool:demo.echo"), nil, "unknown parameter"},
		"token as a name":      {enc(baseForm(t, s), "&"+s.view.Grant+"=1"), nil, "not shown"},
		// Found by FuzzTokenExchange: a negative ttl was answered 500.
		"negative ttl":     {enc(baseForm(t, s), "&ttl=-5"), nil, `ttl "-5"`},
		"negative ttl 2":   {enc(baseForm(t, s), "&ttl=-5m"), nil, `ttl "-5m"`},
		"ttl beyond range": {enc(baseForm(t, s), "&ttl=9223372036854775807"), nil, "ttl"},
	} {
		status, out := n.exchange(t, s, tc.body, tc.mutate)
		desc, _ := out["error_description"].(string)
		if strings.Contains(desc, s.view.Grant) {
			t.Errorf("%s: the grant came back", name)
		}
		if status != http.StatusBadRequest || out["error"] != "invalid_request" || !strings.Contains(desc, tc.want) {
			t.Errorf("%s: %d %v; want 400 invalid_request with %q", name, status, out, tc.want)
		}
	}
}

// TestJSONMediaType: a JSON body must be sent as application/json (UTF-8),
// exactly that media type.
func TestJSONMediaType(t *testing.T) {
	n := newNode(t)
	for _, tc := range []struct {
		ct     string
		status int
	}{
		{"application/json", http.StatusCreated}, {"application/json; charset=utf-8", http.StatusConflict}, {"", http.StatusConflict},
		{"application/jsonx", http.StatusUnsupportedMediaType}, {"application/json; charset=latin1", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType}, {"application/x-json", http.StatusUnsupportedMediaType},
	} {
		req := request("POST", "/v1/sponsors", `{"name":"s1","kind":"human","ceiling":{"tools":["a.*"]}}`)
		req.Header.Set("Content-Type", tc.ct)
		req.Header.Set("Authorization", "Bearer "+n.admin)
		if rec := n.serve(req); rec.Code != tc.status {
			t.Errorf("Content-Type %q: %d %s, want %d", tc.ct, rec.Code, rec.Body, tc.status)
		}
	}
}

// TestSingleHeaders: a header ward reads one value of, given twice, is
// refused: a proxy in front of ward might read the other one.
func TestSingleHeaders(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.*")
	s := n.start("base")
	for _, name := range []string{"Authorization", "DPoP", "Content-Type", "Origin", "Mcp-Session-Id"} {
		req := s.sign(t, request("POST", "/v1/guard/notice", `{"server":"w","method":"x"}`))
		if name == "Origin" || name == "Mcp-Session-Id" {
			req = s.sign(t, mcpRequest(initBody))
			req.Header.Set(name, "x")
		}
		req.Header.Add(name, "Bearer "+n.admin)
		rec := n.serve(req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "given 2 times") {
			t.Errorf("%s twice: %d %s", name, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), n.admin) {
			t.Errorf("%s twice: the credential came back", name)
		}
	}
}

// TestStrictQuery: a query string naming a parameter twice, malformed or
// not UTF-8 is refused rather than read one way here and another by a
// proxy.
func TestStrictQuery(t *testing.T) {
	n := newNode(t)
	for q, want := range map[string]string{
		"sponsor=a&sponsor=b": "is given 2 times",
		"sponsor=a;x=b":       "malformed query",
		"sponsor=%zz":         "malformed query",
		"sponsor=%ff":         "UTF-8",
		"%ff=a":               "UTF-8",
	} {
		rec := n.op("GET", "/v1/agents?"+q, "")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("?%s: %d %s", q, rec.Code, rec.Body)
		}
	}
	if rec := n.op("GET", "/v1/agents?sponsor=acme&x=1", ""); rec.Code != http.StatusOK {
		t.Fatalf("a plain query: %d %s", rec.Code, rec.Body)
	}
}
