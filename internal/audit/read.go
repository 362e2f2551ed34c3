package audit

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadDir reads the events at positions [from, to) from a log directory
// without opening it for writing, so it works while a node runs. It does not
// verify: call [Verify] first and read only up to the verified size.
func ReadDir(dir string, from, to uint64) ([]Event, error) {
	if from > to {
		return nil, fmt.Errorf("read audit log [%d, %d): empty range", from, to)
	}
	f, err := os.Open(filepath.Join(dir, entriesName))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var events []Event
	var idx uint64
	var decodeErr error
	_, bad, err := readFrames(f, st.Size(), MaxEntryBytes, func(off int64, b []byte) error {
		defer func() { idx++ }()
		if idx < from || idx >= to {
			return nil
		}
		e, err := decodeEntry(b)
		if err != nil {
			decodeErr = fmt.Errorf("entry %d: %v: %w", idx, err, ErrCorrupt)
			return decodeErr
		}
		events = append(events, e)
		return nil
	})
	if decodeErr != nil {
		return nil, decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	if bad != "" && idx < to {
		return nil, fmt.Errorf("read audit log: %s: %w", bad, ErrCorrupt)
	}
	if idx < to {
		return nil, fmt.Errorf("read audit log [%d, %d): only %d entries", from, to, idx)
	}
	return events, nil
}
