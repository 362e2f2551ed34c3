package mcpmsg

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int64 // 0: accepted
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, 0},
		{`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}`, 0},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, 0},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`, jsonrpc.CodeParseError},
		{`{"jsonrpc":"2.0","id":1,"method":"a","Method":"b"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1,"x":2}}`, jsonrpc.CodeParseError},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", jsonrpc.CodeParseError},
		{`{"jsonrpc":"1.0","id":1,"method":"a"}`, jsonrpc.CodeInvalidRequest},
		{`{"id":1,"method":"a"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1.5,"method":"a"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1e3,"method":"a"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":9007199254740993,"method":"a"}`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"a"} {}`, jsonrpc.CodeParseError},
		{`[{"jsonrpc":"2.0","id":1,"method":"a"}]`, jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"a","extra":1}`, jsonrpc.CodeInvalidRequest},
	} {
		_, err := Decode([]byte(tc.in))
		var inv *ErrInvalid
		switch {
		case tc.code == 0 && err != nil:
			t.Errorf("Decode(%s) = %v", tc.in, err)
		case tc.code != 0 && (!errors.As(err, &inv) || inv.Code != tc.code):
			t.Errorf("Decode(%s) = %v, want code %d", tc.in, err, tc.code)
		}
	}
}

// TestStdio: refused lines are answered and the connection goes on; an
// overlong line ends it.
func TestStdio(t *testing.T) {
	in := strings.NewReader("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"method\":\"b\"}\n\n  \n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\r\n" +
		`{"jsonrpc":"2.0","id":3,"method":"` + strings.Repeat("x", 200) + `"}` + "\n")
	var out bytes.Buffer
	var refused []string
	s := NewStdio(in, &out, nil, 100)
	s.OnRefuse = func(r string) { refused = append(refused, r) }
	msg, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if req, ok := msg.(*jsonrpc.Request); !ok || req.Method != "ping" {
		t.Fatalf("read %#v, want the ping", msg)
	}
	if len(refused) != 1 || !strings.Contains(out.String(), `"code":-32700`) || !strings.Contains(out.String(), `"id":null`) {
		t.Fatalf("refused %q, wrote %s", refused, out.String())
	}
	if _, err := s.Read(context.Background()); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("overlong line: %v", err)
	}
}

// FuzzDecode: what Decode accepts, the SDK reads the same way, and it is
// strict JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, `{"jsonrpc":"2.0","id":"x","result":{"a":1}}`,
		`{"jsonrpc":"2.0","method":"m","params":[1]}`, `{"jsonrpc":"2.0","id":1,"method":"a","Method":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := Decode(data)
		if err != nil {
			var inv *ErrInvalid
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an ErrInvalid", err)
			}
			return
		}
		sdk, err := jsonrpc.DecodeMessage(data)
		if err != nil {
			t.Fatalf("accepted what the SDK refuses: %v", err)
		}
		a, _ := jsonrpc.EncodeMessage(msg)
		b, _ := jsonrpc.EncodeMessage(sdk)
		if !bytes.Equal(a, b) {
			t.Fatalf("read differently from the SDK:\n%s\n%s", a, b)
		}
	})
}

// FuzzDecodeLenient: DecodeLenient accepts what jsonrpc.DecodeMessage
// accepts and reads it the same, case-folded and duplicate names included.
func FuzzDecodeLenient(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, `{"jsonrpc":"2.0","id":"x","result":{"a":1}}`,
		`{"jsonrpc":"2.0","method":"m","params":[1]}`, `{"jsonrpc":"2.0","id":1,"method":"a","Method":"b"}`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no","data":[1]}}`, `{"JSONRPC":"2.0","ID":3.5,"Result":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := DecodeLenient(data)
		sdk, serr := jsonrpc.DecodeMessage(data)
		if (err == nil) != (serr == nil) {
			t.Fatalf("DecodeLenient: %v; the SDK: %v", err, serr)
		}
		if err != nil {
			return
		}
		a, _ := jsonrpc.EncodeMessage(msg)
		b, _ := jsonrpc.EncodeMessage(sdk)
		if !bytes.Equal(a, b) {
			t.Fatalf("read differently from the SDK:\n%s\n%s", a, b)
		}
	})
}
