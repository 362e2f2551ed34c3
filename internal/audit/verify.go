package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// maxAnchorFile bounds a file given as an anchor (a copy of a checkpoints
// file holds a few hundred bytes per checkpoint).
const maxAnchorFile = 1 << 30

// DefaultHead is where a log in dir remembers its latest checkpoint unless
// configured otherwise: next to the directory, outside it.
func DefaultHead(dir string) string { return filepath.Clean(dir) + ".head" }

// VerifyConfig says what to verify a log directory against.
type VerifyConfig struct {
	// Verifier checks checkpoint signatures. Pin it: a key read from the
	// directory being verified proves nothing against whoever can write it.
	Verifier note.Verifier
	// Origin is the checkpoints' first line.
	Origin string
	// Head is ward's remembered-head file; empty means DefaultHead(dir).
	// A missing file is reported (Report.HeadFound), not refused.
	Head string
	// Anchors are files holding checkpoints of this log from elsewhere: a
	// signed checkpoint (witness cosignatures allowed) or a copy of a
	// checkpoints file. Every checkpoint in them must be signed by Verifier
	// and the log must extend it. A missing file is skipped.
	Anchors []string
	// Checkpoints are more anchors, held in memory: signed checkpoints
	// (cosignatures allowed), each named by its Source.
	Checkpoints []Held
}

// Held is a signed checkpoint of a log held elsewhere, and where.
type Held struct {
	Source     string
	Checkpoint []byte
}

// Verify checks the log in dir offline, as VerifyLog does, against ward's
// remembered head next to dir.
func Verify(dir string, v note.Verifier, origin string) (*Report, error) {
	return VerifyLog(dir, VerifyConfig{Verifier: v, Origin: origin})
}

// VerifyLog checks the log in dir offline, without opening it for writing.
// It checks every complete checkpoint record's signature (with
// cfg.Verifier) and origin, recomputes the RFC 6962 root over the entries
// at every size a checkpoint or an anchor covers, and checks that each
// covered entry parses, carries its position as its index and continues its
// session's chain; and that the entries and the checkpoint's record are
// where ward's remembered head says. The latest checkpoint and every
// anchor must match; a log behind an anchor was rolled back (ErrRollback);
// the checkpoints, in the file and outside it, narrow down where an entry
// was altered or removed. It reads each file once and keeps the sessions'
// chains in memory.
// Errors are a *VerifyError wrapping ErrTampered, ErrRollback or ErrCorrupt
// and saying where the problem is, or an I/O error.
//
// VerifyLog may run while a Log is appending: it reads the anchors, then
// the head, then sizes the checkpoints, then the entries, the reverse of
// the order in which a Log makes them durable.
func VerifyLog(dir string, cfg VerifyConfig) (*Report, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("verify audit log: nil verifier")
	}
	if cfg.Head == "" {
		cfg.Head = DefaultHead(dir)
	}
	s := newScan()
	anchors, err := loadAnchors(cfg.Anchors, cfg.Verifier, cfg.Origin, s.v)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	for _, a := range cfg.Checkpoints {
		if len(a.Checkpoint) > MaxCheckpointBytes {
			s.v.add(-1, tampered, "%s: not a checkpoint (larger than %d bytes)", a.Source, MaxCheckpointBytes)
			continue
		}
		size, root, err := openCosigned(a.Checkpoint, cfg.Verifier, cfg.Origin)
		if err != nil {
			s.v.add(-1, tampered, "%s: %v", a.Source, strings.TrimSpace(err.Error()))
			continue
		}
		anchors = append(anchors, &checkpoint{source: a.Source, rec: -1, size: size, root: root, signed: a.Checkpoint})
	}
	hs, err := readHead(cfg.Head, cfg.Verifier, cfg.Origin)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	if hs.problem != "" {
		s.v.add(-1, hs.kind, "%s", hs.problem)
	}
	if hs.cp != nil {
		s.anchors = append(s.anchors, hs.cp)
	}
	s.anchors = append(s.anchors, usable(anchors)...)
	if err := s.readFiles(dir, cfg.Verifier, cfg.Origin); err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	rep, err := s.report()
	if err != nil {
		return nil, err
	}
	rep.HeadFound = hs.found
	if hs.cp != nil {
		rep.Head = hs.cp.size
	}
	return rep, nil
}

// readFiles reads the checkpoints file and the entries file, sizing the
// checkpoints file first: whatever it covers was written to the entries
// before.
func (s *scan) readFiles(dir string, v note.Verifier, origin string) error {
	cps, err := os.Open(filepath.Join(dir, checkpointsName))
	if err != nil {
		return err
	}
	defer cps.Close()
	cst, err := cps.Stat()
	if err != nil {
		return err
	}
	ent, err := os.Open(filepath.Join(dir, entriesName))
	if err != nil {
		return err
	}
	defer ent.Close()
	est, err := ent.Stat()
	if err != nil {
		return err
	}
	return s.read(cps, cst.Size(), ent, est.Size(), v, origin)
}

// loadAnchors reads anchor files. A checkpoint in them that is not signed
// by v for origin is a problem recorded in ve (someone handed the verifier a
// checkpoint of another log or a forged one); only I/O errors are returned.
func loadAnchors(paths []string, v note.Verifier, origin string, ve *VerifyError) ([]*checkpoint, error) {
	var out []*checkpoint
	for _, path := range paths {
		before := len(ve.Problems)
		cs, err := readAnchor(path, v, origin, ve)
		if err != nil {
			return nil, err
		}
		if len(ve.Problems) > before {
			// Remember the file, so that an override can set it aside.
			out = append(out, &checkpoint{source: path, file: path, rec: -1, unusable: true})
		}
		out = append(out, cs...)
	}
	return out, nil
}

func readAnchor(path string, v note.Verifier, origin string, ve *VerifyError) ([]*checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxAnchorFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxAnchorFile)
	}
	br := bufio.NewReader(f)
	first, err := br.Peek(1)
	if err != nil {
		ve.add(-1, tampered, "%s: empty", path)
		return nil, nil
	}
	var out []*checkpoint
	if first[0] == 0 {
		// A copy of a checkpoints file: frames whose length starts with a
		// zero byte, where a note starts with its printable origin.
		rec := 0
		_, bad, err := readFrames(br, st.Size(), MaxCheckpointBytes, func(_ int64, b []byte) error {
			defer func() { rec++ }()
			size, root, err := openCosigned(b, v, origin)
			if err != nil {
				ve.add(-1, tampered, "record %d of %s: %v", rec, path, err)
				return nil
			}
			out = append(out, &checkpoint{source: fmt.Sprintf("record %d of %s", rec, path), file: path, rec: -1, size: size, root: root, signed: append([]byte(nil), b...)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if bad != "" {
			ve.add(-1, corrupt, "%s: %s", path, bad)
		}
		return out, nil
	}
	b, err := io.ReadAll(io.LimitReader(br, MaxCheckpointBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxCheckpointBytes {
		ve.add(-1, tampered, "%s: not a checkpoint (larger than %d bytes)", path, MaxCheckpointBytes)
		return nil, nil
	}
	size, root, err := openCosigned(b, v, origin)
	if err != nil {
		ve.add(-1, tampered, "checkpoint in %s: %v", path, strings.TrimSpace(err.Error()))
		return nil, nil
	}
	return []*checkpoint{{source: "the checkpoint in " + path, file: path, rec: -1, size: size, root: root, signed: b}}, nil
}

// usable drops the placeholders of anchor files that could not be read.
func usable(anchors []*checkpoint) []*checkpoint {
	var out []*checkpoint
	for _, a := range anchors {
		if !a.unusable {
			out = append(out, a)
		}
	}
	return out
}
