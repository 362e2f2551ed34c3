package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Keys of a log across a rotation.
//
// A log's key is rotated without stopping it: for an overlap, its
// checkpoints carry two signatures, the old key's and the new one's
// (a signed note may carry several), then the new key's alone. Both keys
// have the log's origin as their name. A verifier that trusts both
// ([Keyring]) accepts every checkpoint of the log, before, during and
// after the overlap; one that trusts only the old key accepts the
// checkpoints up to the end of the overlap, and one that trusts only the
// new key those from its start. The old key verifies what it signed for
// as long as the log is kept: retiring it stops it signing, not
// verifying.

// keyring is several verifier keys of one log.
type keyring struct{ vs []note.Verifier }

// Keyring returns a verifier that accepts a checkpoint signed by any of
// vs, which must share one name (the log's origin). The first is the
// key the log signs with now: Name and KeyHash are its. Where this
// package checks that a checkpoint is the log's, a signature by any of
// vs counts.
func Keyring(vs ...note.Verifier) (note.Verifier, error) {
	if len(vs) == 0 {
		return nil, errors.New("keyring: no key")
	}
	if len(vs) == 1 {
		return vs[0], nil
	}
	seen := map[uint32]bool{}
	for _, v := range vs {
		if v.Name() != vs[0].Name() {
			return nil, fmt.Errorf("keyring: keys of two names, %q and %q", vs[0].Name(), v.Name())
		}
		if seen[v.KeyHash()] {
			return nil, fmt.Errorf("keyring: the key %s+%08x twice", v.Name(), v.KeyHash())
		}
		seen[v.KeyHash()] = true
	}
	return &keyring{vs: slices.Clone(vs)}, nil
}

func (k *keyring) Name() string    { return k.vs[0].Name() }
func (k *keyring) KeyHash() uint32 { return k.vs[0].KeyHash() }

// Verify verifies with the first key: note.Open looks keys up by hash
// in keysOf, so this is only for callers that use the ring as one key.
func (k *keyring) Verify(msg, sig []byte) bool { return k.vs[0].Verify(msg, sig) }

// KeysOf returns the keys v stands for: those of a [Keyring], else v.
func KeysOf(v note.Verifier) []note.Verifier { return slices.Clone(keysOf(v)) }

// keysOf returns the keys v stands for.
func keysOf(v note.Verifier) []note.Verifier {
	if k, ok := v.(*keyring); ok {
		return k.vs
	}
	return []note.Verifier{v}
}

// isKeyOf reports whether the signature line's name and key hash are one
// of v's keys.
func isKeyOf(v note.Verifier, name string, hash uint32) bool {
	for _, k := range keysOf(v) {
		if k.Name() == name && k.KeyHash() == hash {
			return true
		}
	}
	return false
}

// Signers returns the signers the log signs its checkpoints with now.
func (l *Log) Signers() []note.Signer {
	return slices.Clone(l.keys.Load().signers)
}

// logKeys are the keys an open log signs and verifies with.
type logKeys struct {
	signers  []note.Signer
	verifier note.Verifier
}

// checkSigners checks that every signer is one of v's keys, once.
func checkSigners(v note.Verifier, signers []note.Signer) error {
	seen := map[uint32]bool{}
	for _, s := range signers {
		if s == nil {
			return errors.New("a nil signer")
		}
		if !isKeyOf(v, s.Name(), s.KeyHash()) {
			return fmt.Errorf("the signer %s+%08x is not among the verifier's keys", s.Name(), s.KeyHash())
		}
		if seen[s.KeyHash()] {
			return fmt.Errorf("the signer %s+%08x twice", s.Name(), s.KeyHash())
		}
		seen[s.KeyHash()] = true
	}
	return nil
}

// Rotate changes the keys the log signs its next checkpoints with, while
// it runs: signers (at least one, the first the current key) must be
// keys of v, and v must hold every key the log verifies with now (the
// keys that signed its history keep verifying it). Checkpoints committed
// after Rotate returns carry the signers' signatures, in order.
func (l *Log) Rotate(v note.Verifier, signers ...note.Signer) error {
	if v == nil || len(signers) == 0 {
		return errors.New("rotate audit key: a verifier and a signer are required")
	}
	if v.Name() != l.cfg.Origin {
		return fmt.Errorf("rotate audit key: a key of %q, not of the log's origin %q", v.Name(), l.cfg.Origin)
	}
	if err := checkSigners(v, signers); err != nil {
		return fmt.Errorf("rotate audit key: %w", err)
	}
	cur := l.keys.Load()
	for _, k := range keysOf(cur.verifier) {
		if !isKeyOf(v, k.Name(), k.KeyHash()) {
			return fmt.Errorf("rotate audit key: the key %s+%08x signed the log and must keep verifying it", k.Name(), k.KeyHash())
		}
	}
	// The journal's records go under the newest signer's key from the
	// next one on: a process restarted after the overlap ends holds only
	// that key. Records under the old key must be covered by the head
	// before it stops signing (the caller Syncs first).
	jk, err := journalKey(signers[len(signers)-1])
	if err != nil {
		return fmt.Errorf("rotate audit key: %w", err)
	}
	l.keys.Store(&logKeys{signers: slices.Clone(signers), verifier: v})
	l.journalKey.Store(&jk)
	return nil
}

// CheckKeyOrder checks that the log in dir never went back to a key it
// had rotated away from: reading its checkpoints file in order, every
// checkpoint must carry a signature by the newest of v's keys seen so
// far (a key is seen when a checkpoint first carries its signature; of
// two first seen together, the later line is the newer, as the log
// writes them). Each signature counted is verified. Checkpoints signed
// by a retired key alone after its successor signed (what a thief of
// the retired key would add) are named in the error.
func CheckKeyOrder(dir string, v note.Verifier) error {
	f, err := os.Open(filepath.Join(dir, checkpointsName))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	keys := keysOf(v)
	seen := map[uint32]bool{}
	var newest *uint32
	var problems []string
	rec := 0
	_, _, err = readFrames(f, st.Size(), MaxCheckpointBytes, func(_ int64, b []byte) error {
		defer func() { rec++ }()
		n, err := note.Open(b, note.VerifierList(keys...))
		if err != nil {
			return nil // VerifyLog says what is wrong with it
		}
		signed := map[uint32]bool{}
		for _, s := range n.Sigs {
			signed[s.Hash] = true
		}
		if newest != nil && !signed[*newest] && len(problems) < 10 {
			problems = append(problems, fmt.Sprintf("checkpoint record %d is not signed by the key %s+%08x, which signed before it", rec, v.Name(), *newest))
		}
		for _, s := range n.Sigs {
			if !seen[s.Hash] {
				seen[s.Hash] = true
				h := s.Hash
				newest = &h
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the log went back to a key it had rotated away from: %s", ErrTampered, strings.Join(problems, "; "))
	}
	return nil
}
