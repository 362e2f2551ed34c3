package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ward-dev/ward/internal/grant"
)

func TestScopeFlag(t *testing.T) {
	got, err := scopeFlag(multi{"tool:demo.*", "host:API.Example.com", "host:*.CDN.example.com", "host:[::1]", "host:10.0.0.7", "host:*", "prompt:demo.x"})
	if err != nil {
		t.Fatal(err)
	}
	want := &grant.Scope{Tools: []string{"demo.*"}, Prompts: []string{"demo.x"},
		Hosts: []string{"api.example.com", "*.cdn.example.com", "::1", "10.0.0.7", "*"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scopeFlag (-want +got):\n%s", diff)
	}
	if s, err := scopeFlag(nil); s != nil || err != nil {
		t.Errorf("no --allow: %v, %v; want nil, nil", s, err)
	}
	if s, err := scopeFlag(multi{"host:api.example.com"}); err != nil || len(s.Tools) != 0 || len(s.Hosts) != 1 {
		t.Errorf("hosts alone: %v, %v", s, err)
	}
	for _, bad := range []string{"host:", "host:api.example.com:443", "host:exa mple.com", "host:*.", "host:a*.b", "host:*.10.0.0.1", "host:fe80::1%eth0", "host:127.1", "host:*x.example.com"} {
		_, err := scopeFlag(multi{bad})
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "--allow") {
			t.Errorf("scopeFlag(%q) = %v, want a usage error about --allow", bad, err)
		}
	}
}
