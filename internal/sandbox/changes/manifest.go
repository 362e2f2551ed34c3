package changes

import (
	"fmt"
	"io/fs"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// manifest is manifest.json.
type manifest struct {
	Version int      `json:"version"`
	Changes []record `json:"changes"`
}

// record is one Change as manifest.json spells it.
type record struct {
	Path   string `json:"path"`
	Kind   Kind   `json:"kind"`
	Type   Type   `json:"type"`
	Prev   Type   `json:"prev,omitzero"`
	Mode   string `json:"mode,omitzero"`
	Size   int64  `json:"size,omitzero"`
	SHA256 string `json:"sha256,omitzero"`
	Target string `json:"target,omitzero"`
	Reason string `json:"reason,omitzero"`
}

// hasMode reports whether a change of type t in kind k records a mode.
func hasMode(k Kind, t Type) bool {
	return k == Refused || (k != Deleted && (t == File || t == Dir))
}

// encodeManifest is s as manifest.json, one change per line.
func encodeManifest(s *Set) ([]byte, error) {
	m := manifest{Version: Version, Changes: make([]record, len(s.Changes))}
	for i, c := range s.Changes {
		r := record{Path: c.Path, Kind: c.Kind, Type: c.Type, Prev: c.Prev, Size: c.Size, SHA256: c.SHA256, Target: c.Target, Reason: c.Reason}
		if hasMode(c.Kind, c.Type) {
			r.Mode = fmt.Sprintf("%04o", UnixMode(c.Mode))
		}
		m.Changes[i] = r
	}
	b, err := json.Marshal(m, jsontext.Multiline(true), jsontext.WithIndent("\t"))
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeManifest parses manifest.json strictly: no unknown or duplicate
// members, invalid UTF-8 or trailing data, this version only, every change
// well-formed and the set consistent (see check). It does not look at
// content. Every error wraps ErrInvalid.
func decodeManifest(b []byte) (*Set, error) {
	if len(b) > MaxManifest {
		return nil, fmt.Errorf("%w: manifest larger than %d bytes", ErrInvalid, MaxManifest)
	}
	var m manifest
	if err := json.Unmarshal(b, &m, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("%w: manifest version %d, want %d", ErrInvalid, m.Version, Version)
	}
	if len(m.Changes) > MaxChanges {
		return nil, fmt.Errorf("%w: more than %d changes", ErrInvalid, MaxChanges)
	}
	s := &Set{Changes: make([]Change, len(m.Changes))}
	for i, r := range m.Changes {
		c := Change{Path: r.Path, Kind: r.Kind, Type: r.Type, Prev: r.Prev, Size: r.Size, SHA256: r.SHA256, Target: r.Target, Reason: r.Reason}
		if r.Mode != "" {
			mode, err := parseMode(r.Mode)
			if err != nil {
				return nil, fmt.Errorf("%w: change %d (%q): %v", ErrInvalid, i, r.Path, err)
			}
			c.Mode = mode
		}
		s.Changes[i] = c
	}
	if err := check(s.Changes); err != nil {
		return nil, err
	}
	for i, r := range m.Changes {
		switch want := hasMode(r.Kind, r.Type); {
		case want && r.Mode == "":
			return nil, fmt.Errorf("%w: change %d (%q): a %s %s needs a mode", ErrInvalid, i, r.Path, r.Kind, r.Type)
		case !want && r.Mode != "":
			return nil, fmt.Errorf("%w: change %d (%q): a %s %s has no mode", ErrInvalid, i, r.Path, r.Kind, r.Type)
		}
	}
	return s, nil
}

// parseMode reads four octal digits.
func parseMode(s string) (fs.FileMode, error) {
	if len(s) != 4 {
		return 0, fmt.Errorf("mode %q: want four octal digits", s)
	}
	u, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("mode %q: want four octal digits", s)
	}
	return fileMode(uint32(u)), nil
}

// UnixMode is m's permission bits as chmod(2) takes them.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode is the inverse of unixMode for the low twelve bits of u.
func fileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
