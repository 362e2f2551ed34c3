package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
)

// Defaults for a [Publisher].
const (
	// DefaultInterval is how often the publisher looks for a new checkpoint.
	DefaultInterval = time.Second
	// DefaultTimeout bounds one add-checkpoint exchange with one witness.
	DefaultTimeout = 10 * time.Second
	// maxResponseBytes bounds a witness's answer.
	maxResponseBytes = 16 << 10
)

// Source is the log being witnessed.
type Source interface {
	// Checkpoint returns the latest signed checkpoint.
	Checkpoint() []byte
	// ConsistencyProof proves that the tree of size1 entries is a prefix of
	// the tree of size2 entries.
	ConsistencyProof(size1, size2 uint64) ([][]byte, error)
}

// PublisherConfig configures a [Publisher].
type PublisherConfig struct {
	Log         Source
	Origin      string
	LogVerifier note.Verifier
	// LogKeys, when set, returns the log's keys in force (an
	// audit.Keyring across a rotation of its key) in place of
	// LogVerifier, so that a rotation needs no restart.
	LogKeys func() note.Verifier
	// Policy says which witnesses to ask and whose cosignatures a
	// checkpoint needs before it is published (see ParsePolicy).
	Policy fwitness.Group
	// Published is the file that keeps the latest published checkpoint
	// across restarts.
	Published string
	// Client sends the add-checkpoint requests; nil means a client with
	// DefaultTimeout.
	Client   *http.Client
	Interval time.Duration // default DefaultInterval
	Logger   *slog.Logger  // default: discard
}

// ParsePolicy reads a witness policy in the Sigsum format, whose witness
// keys are cosignature/v1 verifier keys:
//
//	witness w1 ward-b.example/witness+1234abcd+BA... https://ward-b.example:8443/witness
//	witness w2 ...
//	group g 1 w1 w2
//	quorum g
//
// It is stricter than the format's parser (github.com/transparency-dev/
// formats/witness), so that a quorum always means that many independent
// witnesses: the text must be UTF-8; "quorum" appears exactly once; no
// two witnesses share a key or a URL; a group lists a member once, needs a
// threshold of at least 1 ("any", "all" or canonical decimal), and every
// witness or group is a member of at most one group. Keywords and names
// are case-sensitive.
func ParsePolicy(text []byte) (fwitness.Group, error) {
	if err := checkPolicy(text); err != nil {
		return fwitness.Group{}, fmt.Errorf("witness policy: %w", err)
	}
	g, err := fwitness.ParsePolicy(text)
	if err != nil {
		return fwitness.Group{}, fmt.Errorf("witness policy: %w", err)
	}
	return g, nil
}

// checkPolicy refuses what fwitness.ParsePolicy accepts but would let a
// quorum count one witness twice, or that says one thing twice.
func checkPolicy(text []byte) error {
	if !utf8.Valid(text) {
		return errors.New("not valid UTF-8")
	}
	keys, urls := map[string]string{}, map[string]string{}
	member := map[string]string{} // component → the group it is in
	quorums := 0
	for i, line := range strings.Split(string(text), "\n") {
		n := i + 1
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "witness":
			if len(f) != 4 {
				continue // the format's parser says what is wrong
			}
			v, err := fnote.NewVerifierForCosignatureV1(f[2])
			if err != nil {
				continue
			}
			id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
			if prev, dup := keys[id]; dup {
				return fmt.Errorf("line %d: witness %s has the key of witness %s: one witness would count twice", n, f[1], prev)
			}
			keys[id] = f[1]
			if prev, dup := urls[f[3]]; dup {
				return fmt.Errorf("line %d: witness %s has the URL of witness %s", n, f[1], prev)
			}
			urls[f[3]] = f[1]
		case "group":
			if len(f) < 3 {
				continue
			}
			if t := f[2]; t != "any" && t != "all" && (t == "0" || t[0] < '1' || t[0] > '9') {
				return fmt.Errorf("line %d: group %s: threshold %q: want any, all or a number from 1", n, f[1], t)
			}
			for _, c := range f[3:] {
				if prev, dup := member[c]; dup {
					if prev == f[1] {
						return fmt.Errorf("line %d: group %s lists %s twice", n, f[1], c)
					}
					return fmt.Errorf("line %d: %s is a member of groups %s and %s: it would count twice toward the quorum", n, c, prev, f[1])
				}
				member[c] = f[1]
			}
		case "quorum":
			if quorums++; quorums > 1 {
				return fmt.Errorf("line %d: a second quorum: give exactly one", n)
			}
		}
	}
	return nil
}

// Publisher collects cosignatures for the local log's checkpoints and
// publishes each one that satisfies the witness policy.
type Publisher struct {
	cfg PublisherConfig

	mu        sync.Mutex // serialises Sync
	sizes     map[string]uint64
	submitted []byte // the log checkpoint of the last Sync that published

	pubMu     sync.RWMutex
	published []byte
}

// NewPublisher returns a publisher. A published checkpoint kept from an
// earlier run is loaded if it still verifies against the log key and the
// policy; otherwise nothing is published until the next quorum.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Log == nil || cfg.LogVerifier == nil || cfg.Origin == "" || cfg.Published == "" {
		return nil, errors.New("witness publisher: Log, LogVerifier, Origin and Published are required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: DefaultTimeout}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{cfg: cfg, sizes: map[string]uint64{}}
	if b, err := os.ReadFile(cfg.Published); err == nil {
		if _, perr := p.parse(b); perr == nil && cfg.Policy.Satisfied(b) {
			p.published = b
		} else {
			cfg.Logger.Warn("witness: ignoring the published checkpoint on disk", "file", cfg.Published, "error", perr)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("witness publisher: %w", err)
	}
	return p, nil
}

// Published returns the latest published checkpoint, with its
// cosignatures, or nil if none has been published yet.
func (p *Publisher) Published() []byte {
	p.pubMu.RLock()
	defer p.pubMu.RUnlock()
	return bytes.Clone(p.published)
}

// Run calls Sync every Interval until ctx is done, logging failures.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("witness: checkpoint not published", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync submits the log's latest checkpoint to every witness of the policy
// and publishes it if the cosignatures it got satisfy the policy. It
// returns an error naming each witness that failed, even when the quorum
// was met without it; and an error when the quorum was not met.
func (p *Publisher) Sync(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp := p.cfg.Log.Checkpoint()
	if bytes.Equal(cp, p.submitted) {
		return nil
	}
	parsed, err := p.parse(cp)
	if err != nil {
		return fmt.Errorf("log checkpoint: %w", err)
	}
	endpoints := p.cfg.Policy.Endpoints()
	urls := slices.Sorted(func(yield func(string) bool) {
		for u := range endpoints {
			if !yield(u) {
				return
			}
		}
	})
	sigs := make([][]byte, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		old := p.sizes[u]
		wg.Go(func() {
			sigs[i], errs[i] = p.submit(ctx, u, endpoints[u], cp, parsed.Size, old)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("witness %s: %w", u, errs[i])
			}
		})
	}
	wg.Wait()
	cosigned := bytes.Clone(cp)
	for i, u := range urls {
		if errs[i] == nil {
			p.sizes[u] = parsed.Size
			cosigned = append(cosigned, sigs[i]...)
		}
	}
	failed := errors.Join(errs...)
	if !p.cfg.Policy.Satisfied(cosigned) {
		return fmt.Errorf("checkpoint at size %d lacks the cosignatures its policy requires: %w", parsed.Size, failed)
	}
	if err := atomicfile.Write(p.cfg.Published, cosigned, 0o644); err != nil {
		return fmt.Errorf("publish checkpoint at size %d: %w", parsed.Size, err)
	}
	p.pubMu.Lock()
	p.published = cosigned
	p.pubMu.Unlock()
	p.submitted = cp
	return failed
}

// submit runs add-checkpoint against one witness, once more if the witness
// holds another old size, and returns its verified cosignature lines.
func (p *Publisher) submit(ctx context.Context, url string, v note.Verifier, cp []byte, size, old uint64) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if old > size {
			return nil, fmt.Errorf("the witness has cosigned size %d but the log's checkpoint is at %d: the log was rolled back or forked", old, size)
		}
		var consistency [][]byte
		if old > 0 {
			var err error
			if consistency, err = p.cfg.Log.ConsistencyProof(old, size); err != nil {
				return nil, fmt.Errorf("consistency proof %d→%d: %w", old, size, err)
			}
		}
		status, body, err := p.post(ctx, url, FormatRequest(old, consistency, cp))
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			return checkCosignature(cp, body, v)
		case status == http.StatusConflict && attempt == 0:
			n, err := parseSize(body)
			if err != nil {
				return nil, err
			}
			old = n
		default:
			return nil, fmt.Errorf("add-checkpoint answered %d: %s", status, strings.TrimSpace(string(body)))
		}
	}
}

func (p *Publisher) post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, err
	}
	if len(b) > maxResponseBytes {
		return 0, nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return resp.StatusCode, b, nil
}

// parseSize reads the body of a 409 answer: the size the witness holds,
// in canonical decimal, and a newline, nothing else.
func parseSize(body []byte) (uint64, error) {
	num, ok := bytes.CutSuffix(body, []byte("\n"))
	if !ok || len(num) == 0 || (len(num) > 1 && num[0] == '0') || bytes.ContainsFunc(num, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("409 with a malformed size %q: want the size in decimal and a newline", body)
	}
	n, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("409 with a malformed size %q: %v", body, err)
	}
	return n, nil
}

// maxAnswerLines bounds the signature lines of a witness's answer (the
// note format allows 100 signatures in all, the log's included).
const maxAnswerLines = 32

// checkCosignature accepts a witness's answer only if it is signature lines
// and one of them is a valid cosignature by v of exactly cp's text. Only the
// lines v signed are kept. Each line must be a well-formed note signature
// ("— <name> <base64>"), and no key may sign twice: a second cosignature
// by the same key (another timestamp) would leave which one counts to
// whoever reads the note.
func checkCosignature(cp, answer []byte, v note.Verifier) ([]byte, error) {
	if len(answer) == 0 || answer[len(answer)-1] != '\n' {
		return nil, errors.New("the answer is not signature lines")
	}
	lines := strings.Split(string(answer[:len(answer)-1]), "\n")
	if len(lines) > maxAnswerLines {
		return nil, fmt.Errorf("the answer has %d signature lines, more than %d", len(lines), maxAnswerLines)
	}
	seen := map[string]bool{}
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "— ")
		name, b64, ok2 := strings.Cut(rest, " ")
		sig, err := base64.StdEncoding.Strict().DecodeString(b64)
		if !ok || !ok2 || name == "" || err != nil || len(sig) < 5 || !utf8.ValidString(l) {
			return nil, fmt.Errorf("the answer's line %d is not a note signature line", i+1)
		}
		id := fmt.Sprintf("%s+%08x", name, binary.BigEndian.Uint32(sig[:4]))
		if seen[id] {
			return nil, fmt.Errorf("the answer signs twice with key %s", id)
		}
		seen[id] = true
	}
	n, err := note.Open(append(bytes.Clone(cp), answer...), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("cosignature does not verify: %w", err)
	}
	var out []byte
	for _, s := range n.Sigs {
		out = fmt.Appendf(out, "— %s %s\n", s.Name, s.Base64)
	}
	return out, nil
}

// parse verifies a checkpoint signed by any of the log's keys.
func (p *Publisher) parse(cp []byte) (*flog.Checkpoint, error) {
	v := p.cfg.LogVerifier
	if p.cfg.LogKeys != nil {
		v = p.cfg.LogKeys()
	}
	var err error
	for _, k := range audit.KeysOf(v) {
		var c *flog.Checkpoint
		if c, _, _, err = flog.ParseCheckpoint(cp, p.cfg.Origin, k); err == nil {
			return c, nil
		}
	}
	return nil, err
}
