package taint

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestLabeler(t *testing.T) {
	l, err := NewLabeler(map[string][]string{
		"mail.*":        {Private, Untrusted},
		"mail.send":     {Trusted},
		"crm.*":         {Private},
		"crm.public_*":  {Trusted},
		"file:///srv/*": {Private},
	}, map[string][]string{
		"*":                 {Untrusted},
		"*.corp.example":    {Private},
		"wiki.corp.example": {Private, Untrusted},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool bool
		name string
		want []string
	}{
		{true, "mail.read_inbox", []string{Private, Untrusted}},
		{true, "mail.send", []string{Trusted}},
		{true, "crm.lookup", []string{Private}},
		{true, "crm.public_rates", []string{Trusted}},
		{true, "file:///srv/data.csv", []string{Private}},
		{true, "web.fetch", []string{Untrusted}},
		{false, "api.corp.example", []string{Private}},
		{false, "wiki.corp.example", []string{Private, Untrusted}},
		{false, "corp.example", []string{Untrusted}},
		{false, "evil.example", []string{Untrusted}},
	} {
		got := l.Host(c.name)
		if c.tool {
			got = l.Tool(c.name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	var none *Labeler
	if !slices.Equal(none.Tool("x.y"), []string{Untrusted}) || !slices.Equal(none.Host("h"), []string{Untrusted}) {
		t.Error("a nil labeler must label everything untrusted")
	}
}

func TestLabelerRejects(t *testing.T) {
	for name, c := range map[string]struct{ tools, hosts map[string][]string }{
		"star in the middle": {tools: map[string][]string{"mail.*.x": {Private}}},
		"empty tool":         {tools: map[string][]string{"": {Private}}},
		"no labels":          {tools: map[string][]string{"mail.*": nil}},
		"unknown label":      {tools: map[string][]string{"mail.*": {"secret"}}},
		"host with port":     {hosts: map[string][]string{"api.example:443": {Private}}},
		"uppercase host":     {hosts: map[string][]string{"API.example": {Private}}},
		"bad wildcard":       {hosts: map[string][]string{"api.*": {Private}}},
	} {
		if _, err := NewLabeler(c.tools, c.hosts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := NewTracker()
	if got := tr.Add("s1", Trusted); got != nil || tr.Labels("s1") != nil {
		t.Fatalf("trusted added %v", got)
	}
	if got := tr.Add("s1", Untrusted, Private, Untrusted); !slices.Equal(got, []string{Untrusted, Private}) {
		t.Fatalf("added %v", got)
	}
	if got := tr.Add("s1", Private); got != nil {
		t.Fatalf("re-added %v", got)
	}
	if got := tr.Labels("s1"); !slices.Equal(got, []string{Private, Untrusted}) {
		t.Fatalf("labels %v", got)
	}
	if tr.Labels("s2") != nil {
		t.Fatal("labels leak between sessions")
	}
	before := tr.Labels("s1")
	if !tr.Remove("s1", Private) || tr.Remove("s1", Private) || !slices.Equal(tr.Labels("s1"), []string{Untrusted}) || !slices.Equal(before, []string{Private, Untrusted}) {
		t.Fatalf("remove: %v (a slice handed out before must not change: %v)", tr.Labels("s1"), before)
	}
	tr.Forget("s1")
	if tr.Labels("s1") != nil {
		t.Fatal("forgotten session keeps labels")
	}
}

// TestTrackerConcurrent: each label is reported added exactly once however
// many goroutines add it, and readers never see a torn slice.
func TestTrackerConcurrent(t *testing.T) {
	tr := NewTracker()
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				for _, l := range tr.Add("s", fmt.Sprintf("l%d", (i+j)%10)) {
					mu.Lock()
					count[l]++
					mu.Unlock()
				}
				_ = slices.IsSorted(tr.Labels("s"))
			}
		})
	}
	wg.Wait()
	if len(count) != 10 {
		t.Fatalf("%d labels", len(count))
	}
	for l, n := range count {
		if n != 1 {
			t.Fatalf("%s reported added %d times", l, n)
		}
	}
}
