package streamable

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestWriteUnanswered: Write says whether a request it could not get an
// answer for reached the server. A POST written whole and then cut, or
// cancelled while the server works on it, or accepted with 202, may have
// been acted on (ErrUnanswered); one that never reached a server, or that
// the server refused with an error status, was not. ward's gateway used
// to refund the budget of every call whose POST failed, so a call cut
// while the upstream ran it (a node shutting down, say) ran beyond the
// budget.
func TestWriteUnanswered(t *testing.T) {
	id, err := jsonrpc.MakeID(float64(7))
	if err != nil {
		t.Fatal(err)
	}
	call := &jsonrpc.Request{ID: id, Method: "tools/call", Params: []byte(`{"name":"spend"}`)}
	working := make(chan struct{}, 1) // the slow server has the request
	handlers := map[string]http.HandlerFunc{
		// Reads the request whole, then drops the connection unanswered.
		"cut": func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		},
		// Reads the request whole and works on it until the client gives up.
		"slow": func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			working <- struct{}{}
			<-r.Context().Done()
		},
		"accepted": func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			w.WriteHeader(http.StatusAccepted)
		},
		"refused": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusInternalServerError)
		},
	}
	for _, tc := range []struct {
		name       string
		unanswered bool
	}{
		{"cut", true}, {"slow", true}, {"accepted", true}, {"refused", false}, {"unreachable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := "http://127.0.0.1:1/mcp" // nobody listens on port 1
			if h := handlers[tc.name]; h != nil {
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			cc, err := Dial(context.Background(), ClientConfig{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.name == "slow" {
				go func() {
					<-working
					cancel()
				}()
			}
			done := make(chan error, 1)
			go func() { done <- cc.Write(ctx, call) }()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Write did not return")
			}
			switch {
			case err == nil:
				t.Fatal("Write of an unanswered request succeeded")
			case errors.Is(err, ErrUnanswered) != tc.unanswered:
				t.Fatalf("Write: %v; want ErrUnanswered: %v", err, tc.unanswered)
			}
		})
	}
}
