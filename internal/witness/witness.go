package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/strictjson"
)

// Limits on what a witness accepts.
const (
	// MaxRequestBytes bounds an add-checkpoint request body.
	MaxRequestBytes = 16 << 10
	// MaxProofHashes bounds a consistency proof (a tree of 2^63 leaves
	// needs fewer).
	MaxProofHashes = 63
)

// Errors [Witness.Add] returns, with the HTTP status the protocol gives each.
var (
	ErrUnknownLog   = errors.New("unknown log")                                                // 404
	ErrBadSignature = errors.New("no trusted log signature on the checkpoint")                 // 403
	ErrBadRequest   = errors.New("malformed add-checkpoint request")                           // 400
	ErrInconsistent = errors.New("checkpoint is not consistent with the one already cosigned") // 422
)

// StaleError says the request's old size is not the size of the latest
// checkpoint the witness cosigned for the log (409 Conflict, with Size in
// the body).
type StaleError struct{ Size uint64 }

func (e *StaleError) Error() string {
	return fmt.Sprintf("old size does not match: the witness holds size %d", e.Size)
}

// Log is a log a witness follows.
type Log struct {
	Origin string `json:"origin" yaml:"origin"`
	Key    string `json:"key" yaml:"key"` // the log's note verifier key
	// Keys are further verifier keys of the log, of its origin's name,
	// for a rotation of its key: a checkpoint signed by any of Key and
	// Keys is accepted.
	Keys []string `json:"keys,omitempty" yaml:"keys,omitempty"`
}

// Config configures a [Witness].
type Config struct {
	// Key is the witness's Ed25519 note signer key (from note.GenerateKey);
	// VerifierKey is its verifier key. The witness cosigns in the
	// cosignature/v1 format, whose verifier key [Witness.VerifierKey] gives.
	Key, VerifierKey string
	// Logs are the logs the witness follows; checkpoints of other origins
	// are refused with ErrUnknownLog.
	Logs []Log
	// State is the file holding the latest cosigned checkpoint per log. It
	// is created if missing.
	State string
}

// Witness cosigns checkpoints of the logs it follows. Its methods are safe
// for concurrent use; updates are serialised.
type Witness struct {
	signer    note.Signer
	vkey      string
	verifiers map[string][]note.Verifier
	path      string

	mu    sync.Mutex
	state map[string]logState
}

// logState is what the witness remembers of one log.
type logState struct {
	Size       uint64 `json:"size"`
	Root       []byte `json:"root"`
	Checkpoint string `json:"checkpoint"` // as cosigned, for operators
}

// New returns a witness, reading its state file if it exists.
func New(cfg Config) (*Witness, error) {
	signer, err := fnote.NewSignerForCosignatureV1(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(cfg.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("witness verifier key: %w", err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness verifier key: %w", err)
	}
	probe := []byte("ward.invalid/key-check\n0\n" + base64.StdEncoding.EncodeToString(rfc6962.DefaultHasher.EmptyRoot()) + "\n")
	if sig, err := signer.Sign(probe); err != nil || v.KeyHash() != signer.KeyHash() || !v.Verify(probe, sig) {
		return nil, errors.New("witness key and verifier key are not a pair")
	}
	if cfg.State == "" {
		return nil, errors.New("witness: empty State path")
	}
	w := &Witness{signer: signer, vkey: vkey, verifiers: map[string][]note.Verifier{}, path: cfg.State, state: map[string]logState{}}
	for i, l := range cfg.Logs {
		if l.Origin == "" || strings.ContainsAny(l.Origin, "\n") {
			return nil, fmt.Errorf("witness log %d: invalid origin %q", i, l.Origin)
		}
		if _, dup := w.verifiers[l.Origin]; dup {
			return nil, fmt.Errorf("witness log %d: origin %q listed twice", i, l.Origin)
		}
		for _, k := range append([]string{l.Key}, l.Keys...) {
			lv, err := note.NewVerifier(k)
			if err != nil {
				return nil, fmt.Errorf("witness log %d (%q): key: %w", i, l.Origin, err)
			}
			if lv.Name() != l.Origin {
				return nil, fmt.Errorf("witness log %d (%q): key of %q", i, l.Origin, lv.Name())
			}
			w.verifiers[l.Origin] = append(w.verifiers[l.Origin], lv)
		}
	}
	b, err := os.ReadFile(cfg.State)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness state: %w", err)
	default:
		if err := strictjson.Unmarshal(b, &w.state); err != nil {
			return nil, fmt.Errorf("witness state %s: %w", cfg.State, err)
		}
	}
	return w, nil
}

// VerifierKey is the witness's cosignature/v1 verifier key, for logs'
// witness policies.
func (w *Witness) VerifierKey() string { return w.vkey }

// Add is add-checkpoint: it cosigns checkpoint if oldSize is the size the
// witness last cosigned for its log and consistency proves that the new
// tree extends that one. It returns the cosignature lines to append to the
// note. The new state is durable before Add returns.
func (w *Witness) Add(ctx context.Context, oldSize uint64, consistency [][]byte, checkpoint []byte) ([]byte, error) {
	origin, _, ok := bytes.Cut(checkpoint, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: checkpoint has no origin line", ErrBadRequest)
	}
	vs, ok := w.verifiers[string(origin)]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}
	// Any of the log's keys will do (a rotation's checkpoints carry the
	// old key's signature and the new one's).
	var (
		cp  *flog.Checkpoint
		n   *note.Note
		err error
	)
	for i, v := range vs {
		if cp, _, n, err = flog.ParseCheckpoint(checkpoint, string(origin), v, slices.Delete(slices.Clone(vs), i, i+1)...); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if oldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's %d", ErrBadRequest, oldSize, cp.Size)
	}
	if cp.Size == 0 && !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return nil, fmt.Errorf("%w: empty tree with a non-empty root", ErrInconsistent)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.state[cp.Origin]
	if oldSize != prev.Size {
		return nil, &StaleError{Size: prev.Size}
	}
	switch {
	case prev.Size == 0:
		if len(consistency) > 0 {
			return nil, fmt.Errorf("%w: a proof from size 0 must be empty", ErrInconsistent)
		}
	case cp.Size == prev.Size:
		if !bytes.Equal(cp.Hash, prev.Root) {
			return nil, fmt.Errorf("%w: size %d with a different root (a fork)", ErrInconsistent, cp.Size)
		}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, consistency, prev.Root, cp.Hash); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInconsistent, err)
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	if cp.Size == prev.Size && prev.Size > 0 {
		// Nothing new to remember: cosign without rewriting the state, so
		// replaying a checkpoint costs no disk writes.
		return signed[len(n.Text)+1:], nil
	}
	next := maps.Clone(w.state)
	if next == nil {
		next = map[string]logState{}
	}
	next[cp.Origin] = logState{Size: cp.Size, Root: cp.Hash, Checkpoint: string(checkpoint)}
	b, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	if err := atomicfile.Write(w.path, b, 0o600); err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	w.state = next
	// note.Sign wrote the text, a blank line and our one signature line.
	return signed[len(n.Text)+1:], nil
}

// Cosigned returns the latest checkpoint cosigned for origin (as the log
// signed it, without the cosignature), or nil.
func (w *Witness) Cosigned(origin string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.state[origin]; ok && s.Checkpoint != "" {
		return []byte(s.Checkpoint)
	}
	return nil
}

// Latest returns the size of the latest checkpoint cosigned for origin.
func (w *Witness) Latest(origin string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state[origin].Size
}

// ServeHTTP serves add-checkpoint: mount it at "<prefix>/add-checkpoint".
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestBytes))
	if err != nil {
		http.Error(rw, fmt.Sprintf("request body: %v", err), http.StatusBadRequest)
		return
	}
	oldSize, consistency, cp, err := ParseRequest(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	sigs, err := w.Add(r.Context(), oldSize, consistency, cp)
	var stale *StaleError
	switch {
	case err == nil:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
	case errors.As(err, &stale):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", stale.Size)
	case errors.Is(err, ErrUnknownLog):
		http.Error(rw, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrBadSignature):
		http.Error(rw, err.Error(), http.StatusForbidden)
	case errors.Is(err, ErrBadRequest):
		http.Error(rw, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrInconsistent):
		http.Error(rw, err.Error(), http.StatusUnprocessableEntity)
	default:
		http.Error(rw, "witness unavailable", http.StatusInternalServerError)
	}
}

// ParseRequest reads an add-checkpoint body strictly: "old N" with N in
// canonical decimal, at most [MaxProofHashes] base64 SHA-256 hashes, an
// empty line, then a non-empty checkpoint.
func ParseRequest(body []byte) (oldSize uint64, consistency [][]byte, checkpoint []byte, err error) {
	if len(body) > MaxRequestBytes {
		return 0, nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrBadRequest, MaxRequestBytes)
	}
	rest := body
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	first, ok := line()
	num, isOld := strings.CutPrefix(first, "old ")
	if !ok || !isOld || num == "" || (len(num) > 1 && num[0] == '0') {
		return 0, nil, nil, fmt.Errorf("%w: the first line must be \"old <size>\"", ErrBadRequest)
	}
	oldSize, err = strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: old size: %v", ErrBadRequest, err)
	}
	for {
		l, ok := line()
		if !ok {
			return 0, nil, nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrBadRequest)
		}
		if l == "" {
			break
		}
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != 32 {
			return 0, nil, nil, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrBadRequest, len(consistency))
		}
		if len(consistency) == MaxProofHashes {
			return 0, nil, nil, fmt.Errorf("%w: more than %d proof hashes", ErrBadRequest, MaxProofHashes)
		}
		consistency = append(consistency, h)
	}
	if len(rest) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: no checkpoint", ErrBadRequest)
	}
	return oldSize, consistency, rest, nil
}

// FormatRequest writes an add-checkpoint body.
func FormatRequest(oldSize uint64, consistency [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range consistency {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(checkpoint)
	return b.Bytes()
}
