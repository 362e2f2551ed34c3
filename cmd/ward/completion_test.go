package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCompletionBash: the bash script, loaded into a real bash, completes
// commands, subcommands and a leaf's flags as the command table has them.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	code, script, errOut := wardCLI("completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: %d %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "ward.bash")
	os.WriteFile(file, []byte(script), 0o600)
	complete := func(words ...string) []string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + file + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n_ward\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	has := func(got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("completions %v lack %q", got, w)
			}
		}
	}
	has(complete("ward", ""), "up", "agent", "audit", "doctor", "completion", "help")
	if got := complete("ward", "ag"); len(got) != 1 || got[0] != "agent" {
		t.Errorf("ward ag<TAB> = %v", got)
	}
	has(complete("ward", "agent", ""), "register", "list", "quarantine")
	has(complete("ward", "up", "--"), "--config", "--data", "--log-format", "--log-level")
	has(complete("ward", "audit", "export", "--f"), "--format")
	has(complete("ward", "doctor", "--"), "--data", "--no-runtime")
}

// TestCompletionScripts: every shell's script names every command and
// subcommand, parses in its shell where that shell is installed, and an
// unknown shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, script, errOut := wardCLI("completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: %d %s", sh, code, errOut)
		}
		for _, c := range commands() {
			if !strings.Contains(script, c.name) {
				t.Errorf("%s script lacks %s", sh, c.name)
			}
			for _, s := range c.subs {
				if !strings.Contains(script, s.name) {
					t.Errorf("%s script lacks %s %s", sh, c.name, s.name)
				}
			}
		}
		if bin, err := exec.LookPath(sh); err == nil {
			file := filepath.Join(t.TempDir(), "ward."+sh)
			os.WriteFile(file, []byte(script), 0o600)
			if out, err := exec.Command(bin, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
			if sh == "fish" {
				out, err := exec.Command(bin, "--no-config", "-c", "source "+file+"; complete -C 'ward agent '; complete -C 'ward up --log'").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "register") || !strings.Contains(string(out), "--log-format") {
					t.Errorf("fish completes %q (%v)", out, err)
				}
			}
		}
	}
	if code, _, errOut := wardCLI("completion", "powershell"); code != 2 || !strings.Contains(errOut, "want bash, zsh or fish") {
		t.Fatalf("unknown shell: %d %s", code, errOut)
	}
}
