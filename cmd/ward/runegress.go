package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/ward-dev/ward/internal/grant"
)

// egressHint is what to configure for a node to run an egress proxy.
const egressHint = "give the node an egress proxy (egress: {listen: 127.0.0.1:3128} in its configuration file, then restart it with ward up --config FILE)"

// grantedHosts are the host patterns a run asked its session's grant for
// (--allow-host, --allow host:…).
func grantedHosts(scope *grant.Scope) []string {
	if scope == nil {
		return nil
	}
	return scope.Hosts
}

// noEgress decides what `ward run` does when the runtime cannot have an
// egress proxy for the session (why says what the node answered). A run
// that asked for hosts is refused before the program starts: it would
// believe those hosts allowed, and guarded, while nothing could reach
// them. A run that asked for none goes ahead, and is told that its program
// reaches no host and what would change that.
func noEgress(stderr io.Writer, hosts []string, why string) error {
	if len(hosts) == 0 {
		fmt.Fprintf(stderr, "ward run: no egress proxy (%s): the program can reach no host; to let it reach some, %s and pass --allow-host HOST\n", why, egressHint)
		return nil
	}
	return fmt.Errorf("--allow-host %s: no egress proxy for the session (%s), so the program could reach none of these hosts; %s, or run without --allow-host",
		strings.Join(hosts, ", "), why, egressHint)
}
