package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	pathpkg "path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/provenance"
)

// ToolDeclaration says what a tool's calls do.
//
//	db.delete_rows: {verb: delete, impact: {rows: count}, dataset: table}
//	fs.write_file:  {verb: write, path: path}
//
// Impact maps an impact name to a dotted path into the call's arguments; the
// value there must be an integer (or absent). Path and Dataset are dotted
// paths to string arguments: the file the call touches (context.path; it
// must be absolute and is cleaned, and on a server with roots it is
// resolved, see [Config.Roots]) and the dataset (context.dataset, the
// entity Dataset::"<name>"). A declared argument of the wrong type denies
// the call rather than letting it escape a policy.
type ToolDeclaration struct {
	// Sink says whether data can leave, or state change, through the
	// tool (context.sink). Unset: see [Sink].
	Sink *bool `json:"sink,omitempty" yaml:"sink"`
	// Consequential are the argument paths ("to", "recipients.*") whose
	// values choose where data or money goes, checked for provenance when
	// the tool is a sink: a value that came from an untrusted result and
	// not from trusted input taints its argument. Unset:
	// DefaultConsequential.
	Consequential []string `json:"consequential,omitempty" yaml:"consequential"`
	// Justify are argument paths checked in positive mode when the tool
	// is a sink: a value taints its argument unless the objective or data
	// no third party can write (results labelled trusted or reliable,
	// fields so labelled) justifies it, wherever it came from. For
	// arguments an injection could fill with free text that nothing
	// recognises (a hotel's name, a password, a title); see
	// internal/provenance. Policies see them in
	// context.tainted_arguments with the consequential ones.
	Justify []string `json:"justify,omitempty" yaml:"justify"`
	// Intent are words one of which the session's objective must hold
	// for a call of this sink to be the user's own: the objective names
	// the action, a word starting with one of them, whatever its case
	// ("cancel" holds "cancelled" and "cancellation"; write stems:
	// "remov" for "remove" and "removing"; a phrase like "clean up" is
	// matched as words). A call whose
	// objective names none of them waits as a tainted argument does
	// (context.tainted_arguments holds "*"). For actions an injection can
	// ask for with the user's own values, which no argument check sees:
	// deleting a file, cancelling a booking. Only the objective counts:
	// no result, trusted or not, can ask for an action. On such a sink a
	// consequential value of the user's own data is also reported when
	// untrusted text chose it, by naming it or its record (a file's
	// name) where the objective did not (provenance.Paths.Choice): the
	// objective asks for deletions, a mail chooses which file.
	Intent []string `json:"intent,omitempty" yaml:"intent"`
	// Designate are words naming the sink's action, matched as Intent's
	// are ("pay", "settl", "reply", "invit", "share"). When the
	// objective holds one, a source the objective names may fill the
	// call's consequential and justified arguments: a file or page whose
	// name or address the objective holds, a record of a result (a mail,
	// a file) whose address or file name it names ("pay the bill in
	// bill-april.txt", "reply to Bob's e-mail", "the contact in the
	// vendor's proposal"). A value of such a source is trusted when it
	// is the one value of its kind (an account, an address, an amount)
	// those sources hold and the objective holds none of that kind; an
	// injection that adds another makes both wait. See
	// internal/provenance.
	Designate []string          `json:"designate,omitempty" yaml:"designate"`
	Verb      string            `json:"verb,omitempty" yaml:"verb"`
	Impact    map[string]string `json:"impact,omitempty" yaml:"impact"`
	Path      string            `json:"path,omitempty" yaml:"path"`
	Dataset   string            `json:"dataset,omitempty" yaml:"dataset"`
	// Files are the argument paths ("source", "paths.*") that hold local
	// file paths on a server with roots; unset: DefaultFileArguments and
	// Path.
	Files []string `json:"files,omitempty" yaml:"files"`
}

// IntentArgument is what context.tainted_arguments holds for a call whose
// tool's intent words the objective does not name (see
// ToolDeclaration.Intent).
const IntentArgument = "*"

// Check reports what is wrong with a declaration: a consequential or
// justified path that does not parse, an empty intent or designate word.
func (d ToolDeclaration) Check() error {
	for _, p := range d.Consequential {
		if err := provenance.ValidPath(p); err != nil {
			return fmt.Errorf("consequential path %q: %w", p, err)
		}
	}
	for _, p := range d.Justify {
		if err := provenance.ValidPath(p); err != nil {
			return fmt.Errorf("justify path %q: %w", p, err)
		}
	}
	for _, w := range d.Intent {
		if strings.TrimSpace(w) == "" {
			return errors.New("intent: an empty word")
		}
	}
	for _, w := range d.Designate {
		if strings.TrimSpace(w) == "" {
			return errors.New("designate: an empty word")
		}
	}
	return nil
}

// intended reports whether objective names one of the intent words: at
// the start of a word, whatever the case.
func intended(objective string, intent []string) bool {
	o := strings.ToLower(strings.Join(strings.Fields(objective), " "))
	for _, w := range intent {
		w = strings.ToLower(strings.Join(strings.Fields(w), " "))
		for off := 0; off < len(o); {
			i := strings.Index(o[off:], w)
			if i < 0 {
				break
			}
			i += off
			if r, _ := utf8.DecodeLastRuneInString(o[:i]); i == 0 || !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// DefaultConsequential are the arguments checked for provenance on a sink
// whose declaration names none: where messages, requests, money and files
// go.
var DefaultConsequential = []string{"to", "to.*", "cc", "cc.*", "bcc", "bcc.*", "recipient", "recipients", "recipients.*",
	"email", "address", "url", "uri", "host", "endpoint", "webhook", "destination", "account", "iban", "amount",
	"path", "command"}

// DefaultFileArguments are the arguments that hold file paths for a tool
// of a server with roots whose declaration names none: the names the MCP
// reference filesystem server uses.
var DefaultFileArguments = []string{"path", "paths.*", "source", "destination"}

// apply fills req's verb, impact, path and dataset from the declaration
// and the call's arguments.
func (d ToolDeclaration) apply(req *policy.Request) error {
	req.Verb = d.Verb
	if len(d.Impact) == 0 && d.Path == "" && d.Dataset == "" {
		return nil
	}
	var root any
	if len(req.Arguments) > 0 {
		dec := json.NewDecoder(bytes.NewReader(req.Arguments))
		dec.UseNumber()
		if err := dec.Decode(&root); err != nil {
			return fmt.Errorf("arguments: %v", err)
		}
	}
	for name, path := range d.Impact {
		v := lookup(root, path)
		if v == nil {
			continue
		}
		num, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("impact %q: argument %s must be an integer", name, path)
		}
		n, err := num.Int64()
		if err != nil {
			return fmt.Errorf("impact %q: argument %s must be an integer, not %s", name, path, num)
		}
		if req.Impact == nil {
			req.Impact = map[string]int64{}
		}
		req.Impact[name] = n
	}
	if d.Path != "" {
		switch v := lookup(root, d.Path).(type) {
		case nil:
		case string:
			if !strings.HasPrefix(v, "/") {
				return fmt.Errorf("path: argument %s must be an absolute path", d.Path)
			}
			req.Path = pathpkg.Clean(v)
		default:
			return fmt.Errorf("path: argument %s must be a string", d.Path)
		}
	}
	if d.Dataset != "" {
		switch v := lookup(root, d.Dataset).(type) {
		case nil:
		case string:
			req.Dataset = v
		default:
			return fmt.Errorf("dataset: argument %s must be a string", d.Dataset)
		}
	}
	return nil
}

// Sink says whether a call of a tool is a sink (context.sink): as its
// declaration says when it says so; otherwise yes, unless the tool's
// definition annotates it both readOnlyHint true and openWorldHint false.
//
// A read-only tool is not enough: a "fetch" that only reads still carries
// data out in the URL it is given, which is why openWorldHint must be
// false too (the MCP default is true). The annotations are part of the
// definition ward pins, so a server that later changes them has the tool
// withheld until an operator approves it again; a server that lies about
// its own tools receives their arguments either way, while the check
// protects sinks that are not its own.
func Sink(decl ToolDeclaration, declared bool, definition json.RawMessage) bool {
	sink, _ := SinkWhy(decl, declared, definition)
	return sink
}

// Why a tool is, or is not, a sink, as [SinkWhy] says.
const (
	// SinkDeclared: its declaration says sink: true or false.
	SinkDeclared = "declared"
	// SinkAnnotated: not declared, and its definition annotates it
	// readOnlyHint true and openWorldHint false: not a sink.
	SinkAnnotated = "annotations"
	// SinkDefault: neither, so a sink.
	SinkDefault = "default"
)

// SinkWhy is [Sink] with its reason: SinkDeclared, SinkAnnotated or
// SinkDefault. It is what `ward tools list` shows, from the same rule the
// gateway decides by.
func SinkWhy(decl ToolDeclaration, declared bool, definition json.RawMessage) (bool, string) {
	if declared && decl.Sink != nil {
		return *decl.Sink, SinkDeclared
	}
	if closedReadOnly(definition) {
		return false, SinkAnnotated
	}
	return true, SinkDefault
}

// closedReadOnly reports whether a tool definition annotates the tool
// readOnlyHint true and openWorldHint false, as booleans.
func closedReadOnly(def json.RawMessage) bool {
	if len(def) == 0 {
		return false
	}
	var d struct {
		Annotations *struct {
			ReadOnly  *bool `json:"readOnlyHint"`
			OpenWorld *bool `json:"openWorldHint"`
		} `json:"annotations"`
	}
	if err := strictOpen(def, &d); err != nil || d.Annotations == nil {
		return false
	}
	a := d.Annotations
	return a.ReadOnly != nil && *a.ReadOnly && a.OpenWorld != nil && !*a.OpenWorld
}

// lookup follows a dotted path through decoded JSON objects; nil if absent.
func lookup(v any, path string) any {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}
