package sandbox

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNameLookupsAreQuiet: a program that looks a name up the usual way
// (libc's getaddrinfo, getent, curl without a proxy) gets "not found" at
// once for anything but the runtime's own names, and the runtime records
// no refusal for it: the runtime has no resolver, so libc asks only its
// files, never DNS, nscd, systemd or a directory service, whose sockets
// and ports are not there. A program that sends a DNS query itself is
// still refused and recorded (TestRun in cmd/ward covers that).
func TestNameLookupsAreQuiet(t *testing.T) {
	for _, p := range []string{"getent", "sh"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is needed: %v", p, err)
		}
	}
	script := `
getent hosts example.com; echo "remote=$?"
getent ahosts api.github.com; echo "ahosts=$?"
getent hosts localhost >/dev/null; echo "localhost=$?"
getent passwd root >/dev/null; echo "passwd=$?"
getent group nogroup >/dev/null; echo "group=$?"
getent services https >/dev/null; echo "services=$?"
if command -v curl >/dev/null; then curl -sS --max-time 5 http://example.com/ >/dev/null 2>&1; echo "curl=$?"; else echo "curl=6"; fi
if command -v python3 >/dev/null; then python3 -c 'import socket
try:
    socket.getaddrinfo("example.com", 443, flags=socket.AI_ADDRCONFIG)
    print("python=resolved")
except socket.gaierror:
    print("python=0")'; else echo "python=0"; fi
test -e /var/run/nscd/socket || test -e /run/nscd/socket; echo "nscd=$?"
grep -v '^#' /etc/nsswitch.conf | grep -v files | grep -c : ; true
`
	r := runIn(t, Spec{Argv: []string{"/bin/sh", "-c", script}})
	t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	for _, want := range []string{"remote=2", "ahosts=2", "localhost=0", "passwd=0", "group=0", "services=0", "curl=6", "python=0", "nscd=1"} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.HasSuffix(r.stdout, "\n0\n") {
		t.Errorf("nsswitch.conf names a source other than files")
	}
	for _, e := range r.events {
		t.Errorf("a name lookup was refused and recorded: %s: %s", e.Kind, e.Detail)
	}
}
