package witness

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/strictjson"
)

// A system of several ward nodes keeps one audit log per node, and each
// node cosigns the others' heads (internal/server, cosign.go).
// [VerifySystem] checks the whole system's history at once: every node's
// log in full, every checkpoint's signature, every cosignature, the
// quorum, and that each log extends what was published and cosigned of
// it. Its trust anchors (every node's log keys and cosignature key) are
// the caller's, never read from the data verified.

// SystemNode is what a verifier trusts about one node.
type SystemNode struct {
	// ID is the node's id (its log's origin is TD/audit/ID).
	ID string `json:"id" yaml:"id"`
	// LogKeys are the note verifier keys of the node's log: one, or
	// several after a rotation (the old ones verify the checkpoints they
	// signed). They share one name, the log's origin.
	LogKeys []string `json:"log_keys" yaml:"log_keys"`
	// CosignKey is the cosignature/v1 verifier key with which the node
	// cosigns the others' heads (DATA/keys/cosign.vkey).
	CosignKey string `json:"cosign_key" yaml:"cosign_key"`
	// Data is the node's data directory, or a copy of its audit/,
	// audit.head and witness/peers.json (what its witness cosigned of
	// the other nodes' logs: more checkpoints each of them must extend).
	Data string `json:"data" yaml:"data"`
	// Retired: the node no longer runs; its log is still verified, but
	// it no longer counts among the witnesses a quorum needs.
	Retired bool `json:"retired,omitempty" yaml:"retired,omitempty"`
}

// PublishedHead is a node's head as the system's store holds it.
type PublishedHead struct {
	Node, Origin string
	Size         uint64
	Checkpoint   []byte
}

// PublishedCosignature is the latest checkpoint of Node's log that
// Witness cosigned, as the system's store holds it.
type PublishedCosignature struct {
	Node, Witness string
	Size          uint64
	Checkpoint    []byte // the node's checkpoint and the witness's cosignature line
}

// SystemConfig says what to verify.
type SystemConfig struct {
	Nodes []SystemNode
	// Quorum is how many other nodes must have cosigned a checkpoint of a
	// log for it to count as witnessed; 0 means every other node that is
	// not retired.
	Quorum       int
	Heads        []PublishedHead
	Cosignatures []PublishedCosignature
}

// Node statuses in a [SystemReport], worst first.
const (
	StatusMissing     = "missing"       // the node's log is not where the configuration says
	StatusTampered    = "tampered"      // the log does not verify on its own (altered entries, a checkpoint not signed by the node's keys)
	StatusForked      = "forked"        // the log verifies on its own but differs from what was published or cosigned of it
	StatusRolledBack  = "rolled-back"   // the log is behind what was published or cosigned of it
	StatusBadEvidence = "bad-signature" // a published head or a cosignature does not verify with the configured keys
	StatusUnwitnessed = "unwitnessed"   // fewer other nodes than the quorum cosigned any of its checkpoints
	StatusUnpublished = "unpublished"   // the store holds no head of the node
	StatusOK          = "ok"
)

// SystemReport is what [VerifySystem] found.
type SystemReport struct {
	OK    bool         `json:"ok"`
	Nodes []NodeReport `json:"nodes"`
	// Unknown lists nodes the store knows (a head or a cosignature) that
	// the configuration does not name.
	Unknown []string `json:"unknown,omitempty"`
	Quorum  int      `json:"quorum"`
}

// NodeReport is what VerifySystem found of one node.
type NodeReport struct {
	Node   string `json:"node"`
	Origin string `json:"origin"`
	Status string `json:"status"`
	// Size is the log's size (its latest checkpoint); Published the size
	// of the head in the store; Witnessed the largest size a quorum of
	// other nodes cosigned (the log extends it).
	Size      uint64          `json:"size"`
	Published uint64          `json:"published"`
	Witnessed uint64          `json:"witnessed"`
	Cosigners []CosignerState `json:"cosigners"`
	Problems  []string        `json:"problems,omitempty"`
}

// CosignerState is the latest cosignature of a log by one other node.
type CosignerState struct {
	Witness string    `json:"witness"`
	Size    uint64    `json:"size"`
	Time    time.Time `json:"time"`
}

// VerifySystem verifies every node's log against the configured keys and
// what the store holds of it. It returns an error only for a
// configuration it cannot use; what it finds is in the report.
func VerifySystem(cfg SystemConfig) (*SystemReport, error) {
	type trusted struct {
		node   SystemNode
		origin string
		logVs  []note.Verifier
		cosign note.Verifier
	}
	nodes := map[string]*trusted{}
	var order []string
	keyOwner := map[string]string{} // a key (log or cosign) → the node it is of
	for i, n := range cfg.Nodes {
		if n.ID == "" || nodes[n.ID] != nil {
			return nil, fmt.Errorf("node %d: empty or repeated id %q", i, n.ID)
		}
		t := &trusted{node: n}
		if len(n.LogKeys) == 0 {
			return nil, fmt.Errorf("node %s: no log key", n.ID)
		}
		for _, k := range append(slices.Clone(n.LogKeys), n.CosignKey) {
			if k == "" {
				continue
			}
			if other, dup := keyOwner[k]; dup {
				// A cosign key twice would count one witness twice
				// toward a quorum; a log key twice, two logs as one.
				return nil, fmt.Errorf("node %s: the key %s is also %s's", n.ID, keyID(k), other)
			}
			keyOwner[k] = n.ID
		}
		for _, k := range n.LogKeys {
			v, err := audit.ParseVerifierKey(k)
			if err != nil {
				return nil, fmt.Errorf("node %s: log key: %w", n.ID, err)
			}
			if t.origin == "" {
				t.origin = v.Name()
			} else if v.Name() != t.origin {
				return nil, fmt.Errorf("node %s: log keys of two names, %q and %q", n.ID, t.origin, v.Name())
			}
			t.logVs = append(t.logVs, v)
		}
		if n.CosignKey != "" {
			v, err := fnote.NewVerifierForCosignatureV1(n.CosignKey)
			if err != nil {
				return nil, fmt.Errorf("node %s: cosign key: %w", n.ID, err)
			}
			t.cosign = v
		}
		if n.Data == "" {
			return nil, fmt.Errorf("node %s: no data directory", n.ID)
		}
		nodes[n.ID] = t
		order = append(order, n.ID)
	}
	live := 0
	for _, n := range cfg.Nodes {
		if !n.Retired {
			live++
		}
	}
	rep := &SystemReport{OK: true}
	// What each node's witness remembers cosigning (its state file, on
	// the node's own disk): a rollback of the store and of a log together
	// still leaves the others' memories.
	remembered := map[string][]audit.Held{}
	stateProblems := map[string][]string{}
	for _, id := range order {
		w := nodes[id]
		states, err := readPeerState(filepath.Join(w.node.Data, "witness", "peers.json"))
		if err != nil {
			stateProblems[id] = append(stateProblems[id], err.Error())
			continue
		}
		for origin, st := range states {
			for _, o := range order {
				if nodes[o].origin == origin && o != id && st.Checkpoint != "" {
					remembered[o] = append(remembered[o], audit.Held{Source: "the checkpoint " + id + "'s witness state holds", Checkpoint: []byte(st.Checkpoint)})
				}
			}
		}
	}
	unknown := map[string]bool{}
	heads := map[string]PublishedHead{}
	for _, h := range cfg.Heads {
		if nodes[h.Node] == nil {
			unknown[h.Node] = true
			continue
		}
		heads[h.Node] = h
	}
	cosigs := map[string][]PublishedCosignature{}
	for _, c := range cfg.Cosignatures {
		if nodes[c.Node] == nil {
			unknown[c.Node] = true
			continue
		}
		if nodes[c.Witness] == nil {
			unknown[c.Witness] = true
		}
		cosigs[c.Node] = append(cosigs[c.Node], c)
	}
	rep.Unknown = slices.Sorted(func(yield func(string) bool) {
		for k := range unknown {
			if !yield(k) {
				return
			}
		}
	})
	for _, id := range order {
		t := nodes[id]
		q := cfg.Quorum
		if q == 0 {
			q = live
			if !t.node.Retired {
				q--
			}
		}
		rep.Quorum = max(rep.Quorum, q)
		nr := NodeReport{Node: id, Origin: t.origin, Status: StatusOK, Cosigners: []CosignerState{}}
		worse := func(status, format string, args ...any) {
			nr.Problems = append(nr.Problems, fmt.Sprintf(format, args...))
			if statusRank(status) < statusRank(nr.Status) {
				nr.Status = status
			}
		}
		// What the store holds of the log: each must carry the log's
		// signature (and the witness's), else it is evidence of nothing.
		var held []audit.Held
		if h, ok := heads[id]; ok {
			size, err := openSigned(h.Checkpoint, t.origin, t.logVs, nil)
			switch {
			case err != nil:
				worse(StatusBadEvidence, "its head in the store: %v", err)
			case size != h.Size:
				worse(StatusBadEvidence, "its head in the store says %d events, its checkpoint %d", h.Size, size)
			default:
				nr.Published = size
				held = append(held, audit.Held{Source: "its head in the store", Checkpoint: h.Checkpoint})
			}
		} else {
			worse(StatusUnpublished, "the store holds no head of it: it never ran as a node of this system, or its head was deleted")
		}
		for _, p := range stateProblems[id] {
			worse(StatusBadEvidence, "its witness state: %s", p)
		}
		for _, h := range remembered[id] {
			if _, err := openSigned(h.Checkpoint, t.origin, t.logVs, nil); err != nil {
				worse(StatusBadEvidence, "%s: %v", h.Source, err)
				continue
			}
			held = append(held, h)
		}
		var sizes []uint64
		counted := map[string]bool{} // a witness counts once, with its largest cosigned size
		slices.SortFunc(cosigs[id], func(a, b PublishedCosignature) int { return cmp.Compare(b.Size, a.Size) })
		for _, c := range cosigs[id] {
			w := nodes[c.Witness]
			switch {
			case c.Witness == id:
				worse(StatusBadEvidence, "a cosignature by itself")
				continue
			case w == nil:
				worse(StatusBadEvidence, "a cosignature by %s, a node the configuration does not name", c.Witness)
				continue
			case w.cosign == nil:
				worse(StatusBadEvidence, "a cosignature by %s, whose cosign key the configuration does not give", c.Witness)
				continue
			}
			size, ts, err := openCosignature(c.Checkpoint, t.origin, t.logVs, w.cosign)
			if err == nil && size != c.Size {
				err = fmt.Errorf("the store says %d events, the checkpoint %d", c.Size, size)
			}
			if err != nil {
				worse(StatusBadEvidence, "the cosignature by %s: %v", c.Witness, err)
				continue
			}
			nr.Cosigners = append(nr.Cosigners, CosignerState{Witness: c.Witness, Size: size, Time: ts})
			held = append(held, audit.Held{Source: "the checkpoint " + c.Witness + " cosigned", Checkpoint: c.Checkpoint})
			if (!w.node.Retired || cfg.Quorum > 0) && !counted[c.Witness] {
				counted[c.Witness] = true
				sizes = append(sizes, size)
			}
		}
		slices.Sort(sizes)
		slices.Reverse(sizes)
		if q > 0 {
			if len(sizes) >= q && sizes[q-1] > 0 {
				nr.Witnessed = sizes[q-1]
			} else {
				worse(StatusUnwitnessed, "%d other node(s) cosigned its checkpoints, the quorum is %d", len(sizes), q)
			}
		}
		dir := filepath.Join(t.node.Data, "audit")
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			worse(StatusMissing, "its log is missing: no directory %s", dir)
			rep.Nodes = append(rep.Nodes, nr)
			rep.OK = false
			continue
		}
		v, err := audit.Keyring(t.logVs...)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		vcfg := audit.VerifyConfig{Verifier: v, Origin: t.origin, Head: filepath.Join(t.node.Data, "audit.head"), Checkpoints: held}
		lrep, err := audit.VerifyLog(dir, vcfg)
		if err != nil {
			var ve *audit.VerifyError
			switch {
			case !errors.As(err, &ve):
				worse(StatusMissing, "its log cannot be read: %v", err)
			case errors.Is(err, audit.ErrRollback) && !rollbackAndMore(ve):
				worse(StatusRolledBack, "%v", err)
			default:
				// Does the log verify on its own? Then it is another
				// history than the one published and cosigned.
				vcfg.Checkpoints = nil
				if _, alone := audit.VerifyLog(dir, vcfg); alone == nil {
					worse(StatusForked, "%v", err)
				} else {
					worse(StatusTampered, "%v", alone)
				}
			}
		} else {
			nr.Size = lrep.Size
			if err := audit.CheckKeyOrder(dir, v); err != nil {
				worse(StatusTampered, "%v", err)
			}
			if !lrep.HeadFound {
				worse(StatusRolledBack, "its remembered head (%s) is missing", vcfg.Head)
			}
		}
		if nr.Status != StatusOK {
			rep.OK = false
		}
		rep.Nodes = append(rep.Nodes, nr)
	}
	if len(rep.Unknown) > 0 {
		rep.OK = false
	}
	return rep, nil
}

// rollbackAndMore reports whether a verification error found more than a
// rollback (an altered entry, a bad signature): its message then leads
// with ErrTampered rather than ErrRollback.
func rollbackAndMore(ve *audit.VerifyError) bool {
	return !strings.HasPrefix(ve.Error(), audit.ErrRollback.Error())
}

func statusRank(s string) int {
	return slices.Index([]string{StatusMissing, StatusTampered, StatusForked, StatusRolledBack, StatusBadEvidence, StatusUnwitnessed, StatusUnpublished, StatusOK}, s)
}

// openSigned verifies a checkpoint signed by one of the log's keys (other
// signatures may follow, and extra, if set, must be among them) and
// returns its size.
func openSigned(cp []byte, origin string, logVs []note.Verifier, extra note.Verifier) (uint64, error) {
	vs := slices.Clone(logVs)
	if extra != nil {
		vs = append(vs, extra)
	}
	n, err := note.Open(cp, note.VerifierList(vs...))
	if err != nil {
		return 0, fmt.Errorf("the checkpoint does not verify with the configured keys: %v", err)
	}
	byLog, byExtra := false, extra == nil
	for _, s := range n.Sigs {
		for _, v := range logVs {
			byLog = byLog || (s.Name == v.Name() && s.Hash == v.KeyHash())
		}
		byExtra = byExtra || (extra != nil && s.Name == extra.Name() && s.Hash == extra.KeyHash())
	}
	if !byLog {
		return 0, errors.New("the checkpoint is not signed by the node's log key")
	}
	if !byExtra {
		return 0, errors.New("the checkpoint carries no signature by the cosign key")
	}
	var c flog.Checkpoint
	rest, err := c.Unmarshal([]byte(n.Text))
	if err != nil || len(rest) > 0 || c.Origin != origin {
		return 0, fmt.Errorf("not a checkpoint of %s", origin)
	}
	return c.Size, nil
}

// openCosignature verifies a checkpoint of the log cosigned by w and
// returns its size and the cosignature's time.
func openCosignature(cp []byte, origin string, logVs []note.Verifier, w note.Verifier) (uint64, time.Time, error) {
	size, err := openSigned(cp, origin, logVs, w)
	if err != nil {
		return 0, time.Time{}, err
	}
	n, _ := note.Open(cp, note.VerifierList(append(slices.Clone(logVs), w)...))
	for _, s := range n.Sigs {
		if s.Name == w.Name() && s.Hash == w.KeyHash() {
			ts, err := fnote.CoSigV1Timestamp(s)
			if err != nil {
				return 0, time.Time{}, err
			}
			return size, ts, nil
		}
	}
	return 0, time.Time{}, errors.New("no cosignature")
}

// keyID names a verifier key by its name and hash.
func keyID(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}

// maxStateFile bounds a witness state file read by VerifySystem.
const maxStateFile = 16 << 20

// readPeerState reads a node's witness state (see [Witness]), or nothing
// if it has none.
func readPeerState(path string) (map[string]logState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxStateFile)
	}
	var st map[string]logState
	if err := strictjson.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}
