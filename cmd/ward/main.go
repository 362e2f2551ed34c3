// Command ward is the zero-trust control plane and enforcement gateway for AI
// agents. `ward up` runs a node; every other command is a client of one, or
// works offline on a data directory.
//
// Client commands find the node through the environment:
//
//	WARD_SERVER   base URL (default https://127.0.0.1:8443)
//	WARD_CA       CA bundle to trust (default ./ward-data/bundle.pem if present)
//	WARD_TOKEN    operator or sponsor credential (ward_…)
//	WARD_HOME     where session credentials are kept (default ~/.ward)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ward-dev/ward/internal/sandbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is bad command-line input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name  string
	usage string
	run   func(args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"up", "ward up [--config FILE] [--data DIR] [--addr HOST:PORT]   run a node with embedded defaults", cmdUp},
		{"admin", "ward admin credential --data DIR                          mint an admin credential offline (node stopped)", cmdAdmin},
		{"sponsor", "ward sponsor create|list|credential                        sponsors and their credentials", cmdSponsor},
		{"agent", "ward agent register|list|show|quarantine|release          registered agents", cmdAgent},
		{"session", "ward session start|end|show|list                           sessions (start prints where credentials went)", cmdSession},
		{"token", "ward token exchange --session ID [--allow P]...           delegate a narrower grant to a sub-agent", cmdToken},
		{"run", "ward run --agent NAME --objective TEXT [--workspace DIR] [--allow-host HOST]... [--keep|--rollback] -- CMD  run a program in ward's runtime", cmdRun},
		{"changes", "ward changes show|apply|discard SESSION                  a run's captured workspace changes", cmdChanges},
		{"mcp", "ward mcp wrap|serve|config                                 stdio proxy / session-bound local endpoint / client configuration", cmdMCP},
		{"tools", "ward tools list|approve                                    tool definition pins (rug-pull defence)", cmdTools},
		{"approvals", "ward approvals list|show|approve|deny                      escalated calls waiting for a quorum", cmdApprovals},
		{"policy", "ward policy check|explain|test|schema                      validate, show, test policies; print the schema", cmdPolicy},
		{"audit", "ward audit verify|tail|prove --data DIR                    check, read and prove the audit log offline", cmdAudit},
		{"replay", "ward replay TRACE.jsonl [--policies P]...                  decide a recorded session in shadow mode", cmdReplay},
		{"receipts", "ward receipts --session ID                                 signed receipts of a session's tool calls", cmdReceipts},
		{"claim", "ward claim verify --session ID --tool T --receipt FILE     check an agent's claim against receipts and the log", cmdClaim},
		{"version", "ward version", func([]string, io.Writer) error { fmt.Println("ward", version); return nil }},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ward COMMAND [ARGS]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintln(w, "  "+c.usage)
	}
}

func main() {
	// A re-executed ward that is part of a runtime (`ward run`) does that
	// and exits here.
	sandbox.Child()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout)
		if err == nil {
			return 0
		}
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var es exitStatus
		if errors.As(err, &es) {
			return int(es) // ward run: the program's own status
		}
		fmt.Fprintln(stderr, "ward "+c.name+": "+oneLine(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "ward: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// flags returns a FlagSet that reports errors instead of exiting.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ward "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parse parses args, allowing flags after positional arguments
// ("ward agent register NAME --allow …"), and turns flag errors into usage
// errors. Everything after "--" is positional.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// outputFlag adds -o text|json.
func outputFlag(fs *flag.FlagSet) *string {
	o := fs.String("o", "text", "output format: text or json")
	return o
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return usagef("-o %q: want text or json", o)
	}
	return nil
}

// subcommand splits "ward X SUB args".
func subcommand(args []string, name string, subs ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef("ward %s needs a subcommand: %s", name, strings.Join(subs, ", "))
	}
	for _, s := range subs {
		if args[0] == s {
			return s, args[1:], nil
		}
	}
	return "", nil, usagef("ward %s: unknown subcommand %q (want %s)", name, args[0], strings.Join(subs, ", "))
}

// parseOperator parses a client command's flags and returns a client
// authenticated with the operator credential.
func parseOperator(fs *flag.FlagSet, args []string, out *string) (*client, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := checkOutput(*out); err != nil {
		return nil, err
	}
	return operatorClient()
}
