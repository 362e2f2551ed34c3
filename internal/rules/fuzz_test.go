package rules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"

	wardpolicy "github.com/ward-dev/ward/internal/policy"
)

// FuzzCompile feeds arbitrary rule files to Compile. It never panics; every
// error is an *Error naming the file with a line and column inside the
// input; accepted input compiles to Cedar that cedar-go parses into one
// policy per rule with the rule's sentence as @rule and that matches ward's
// schema, and compiling again yields identical bytes.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.rules")
	for _, in := range files {
		src, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Add(`agent x may call fs.read_text_file when argument path starts with "/a\\*\"b".`)
	f.Add("never call \"x\ty\". never call a.b")
	f.Add(`agents may call "\\" when argument "\"" matches "**\\**".`)
	f.Add("never delete more than -9223372036854775808 rows without approval from 9223372036854775807 of group:a, group:b within 2562047h.")
	f.Add("never delete more than -9223372036854775808 rows without approval from 100 of group:a, group:b within 168h.")
	f.Add("agents of sponsor \"\u2028\" may call a.b.")
	f.Add(`agents may request hosts matching "*.a" only with methods GET, HEAD when the path ends with "/x" and the session holds a and b and method GET.`)
	f.Add(`never run "/a b" when the command line matches "* -rf *" without approval from 1 of group:x.`)
	f.Add(`sub-agents never send when the session holds private and argument to ends with "@x.com" and the path contains "*".`)
	f.Fuzz(func(t *testing.T, src string) {
		rules, err := Compile("f.rules", []byte(src))
		if err != nil {
			if rules != nil {
				t.Fatalf("rules returned with an error")
			}
			lines := strings.Count(src, "\n") + 1
			for _, e := range unjoin(err) {
				var re *Error
				if !errors.As(e, &re) || re.File != "f.rules" || re.Line < 1 || re.Line > lines || re.Column < 1 || re.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		out, err := CompileToCedar("f.rules", []byte(src))
		if err != nil {
			t.Fatalf("Compile accepted what CompileToCedar rejects: %v", err)
		}
		list, err := cedar.NewPolicyListFromBytes("f.cedar", out)
		if err != nil {
			t.Fatalf("cedar-go rejects the output: %v\n%s", err, out)
		}
		if len(list) != len(rules) {
			t.Fatalf("cedar-go parsed %d policies, want %d\n%s", len(list), len(rules), out)
		}
		for i, p := range list {
			if got := string(p.Annotations()["rule"]); got != rules[i].Text {
				t.Fatalf("policy %d: @rule %q, want %q", i, got, rules[i].Text)
			}
			if !strings.Contains(src, rules[i].Text) {
				t.Fatalf("rule text %q is not in the source", rules[i].Text)
			}
		}
		set, err := wardpolicy.Parse(map[string][]byte{"f.cedar": out})
		if err != nil {
			t.Fatalf("package policy rejects the output: %v\n%s", err, out)
		}
		if err := set.Validate(); err != nil {
			t.Fatalf("the output does not match ward's schema: %v\n%s", err, out)
		}
		again, err := CompileToCedar("f.rules", []byte(src))
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("second compilation differs (err %v)", err)
		}
	})
}
