package enforce

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/redact"
)

// DefaultRecordMaxBytes is the default Record.MaxBytes.
const DefaultRecordMaxBytes = 64 << 10

// Record says what the audit log keeps of calls beyond their SHA-256
// digests, which it always keeps. What it keeps is redacted first, so
// recording anything needs a Redactor: New refuses a Record that records
// without one.
//
// The "decision" event of a call with arguments gets "arguments" (the
// redacted JSON) and "redacted" (the redacted paths, if any) when Arguments
// is set. The "result" event gets "result" and "redacted" when the call's
// name matches one of Results. Names are matched as the client sees them:
// "SERVER.TOOL" for tools and prompts, the URI for resources, and the
// Redactor's rules are chosen by the same name; the arguments of prompts/get
// and completion/complete are recorded like a tool's, and resources/read has
// none (its URI is recorded anyway). A document larger than MaxBytes, or one
// the Redactor refuses (not JSON, too deep), is recorded by digest only,
// with "arguments_omitted" or "result_omitted" saying why.
type Record struct {
	// Arguments records every call's arguments.
	Arguments bool
	// Results are name patterns (an exact name, or a prefix and a trailing
	// '*') of the calls whose results are recorded.
	Results []string
	// Redactor redacts what is recorded.
	Redactor *redact.Redactor
	// MaxBytes bounds a recorded document, before and after redaction
	// (which may lengthen it); default DefaultRecordMaxBytes. Keep it well
	// under the audit log's event size limit: an event the log refuses
	// denies the call.
	MaxBytes int
}

// check validates r and fills in its defaults.
func (r *Record) check() error {
	if (r.Arguments || len(r.Results) > 0) && r.Redactor == nil {
		return errors.New("enforce: recording arguments or results needs a redactor")
	}
	for _, p := range r.Results {
		if (grant.Scope{Resources: []string{p}}).Validate() != nil {
			return fmt.Errorf("enforce: recorded results: pattern %q: want a name, or a prefix and a trailing '*'", p)
		}
	}
	switch {
	case r.MaxBytes < 0:
		return fmt.Errorf("enforce: negative record size limit %d", r.MaxBytes)
	case r.MaxBytes == 0:
		r.MaxBytes = DefaultRecordMaxBytes
	}
	return nil
}

// results reports whether op's result is recorded.
func (r *Record) results(op *Operation) bool {
	return len(r.Results) > 0 && grant.Scope{Tools: r.Results, Prompts: r.Results, Resources: r.Results}.Allows(scopeKind(kindOf(op.Action)), op.Name)
}

// doc adds doc, redacted by the rules for name, to an event's data as
// field, with the redacted paths; or, if it cannot be recorded, field +
// "_omitted" saying why.
func (r *Record) doc(data map[string]any, field, name string, doc []byte) {
	limit := r.MaxBytes
	if len(doc) > limit {
		data[field+"_omitted"] = fmt.Sprintf("%d bytes, more than the %d recorded", len(doc), limit)
		return
	}
	out, paths, err := r.Redactor.JSON(name, doc)
	switch {
	case err != nil:
		data[field+"_omitted"] = "not redactable: " + err.Error()
		return
	case len(out) > limit:
		data[field+"_omitted"] = fmt.Sprintf("%d bytes once redacted, more than the %d recorded", len(out), limit)
		return
	}
	data[field] = json.RawMessage(out)
	if len(paths) > 0 {
		data["redacted"] = paths
	}
}
