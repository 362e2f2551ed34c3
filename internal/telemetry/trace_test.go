package telemetry

import (
	"net/http"
	"strings"
	"testing"
)

func TestNewTracing(t *testing.T) {
	off, err := NewTracing(TracingConfig{})
	if err != nil || off.On() {
		t.Fatalf("no endpoint: on=%v err=%v, want off", off.On(), err)
	}
	h := &http.ServeMux{}
	if got := off.Handler(h); got != http.Handler(h) {
		t.Fatal("tracing off wraps the handler: it must cost nothing")
	}
	for _, bad := range []string{"127.0.0.1:4318", "ftp://x/", "http://user:pw@x/", "http://x/?a=b", "http:///v1/traces"} {
		if _, err := NewTracing(TracingConfig{OTLPEndpoint: bad}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("endpoint error shows the credential: %v", err)
		}
	}
	if _, err := NewTracing(TracingConfig{OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: 2}); err == nil {
		t.Error("sample ratio 2 accepted")
	}
	on, err := NewTracing(TracingConfig{OTLPEndpoint: "http://127.0.0.1:4318"})
	if err != nil || !on.On() {
		t.Fatalf("endpoint: on=%v err=%v", on.On(), err)
	}
	if _, wrapped := on.Handler(h).(*http.ServeMux); wrapped {
		t.Error("tracing on does not wrap the handler")
	}
	on.Shutdown(t.Context())
}
