package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Local file paths.
//
// A policy about paths holds only if it is decided on the file the server
// will open. A server that serves files (the MCP filesystem server) reads
// its path arguments its own way: it resolves relative paths against its
// roots, trims quotes and spaces, expands "~", cleans ".." lexically and
// follows symlinks. ward therefore does not decide on the text an agent
// sent. For a server configured with roots, it resolves every file
// argument itself (lexically cleaned, then every symlink followed, as the
// server would), refuses one that leaves the roots or that it cannot read
// unambiguously, and rewrites the argument to the resolved absolute path:
// policies (context.arguments, context.path) see that path and the server
// receives exactly it, which its own resolution leaves unchanged.
//
// What remains is a race: a file swapped for a symlink between ward's
// resolution and the server's open. Only a writer inside the roots can
// do that; keep agents that may create links away from trees policies
// distinguish.

// resolveFiles resolves the file arguments (dotted paths, "*" for every
// element of an array or member of an object) of args under roots and
// returns the arguments with each replaced by its resolved path. Args are
// returned unchanged (same bytes) when nothing changes.
func resolveFiles(args json.RawMessage, fields []string, roots []string) (json.RawMessage, error) {
	if len(args) == 0 || len(fields) == 0 {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("arguments: %v", err)
	}
	changed := false
	for _, f := range fields {
		var err error
		root, err = rewrite(root, strings.Split(f, "."), f, func(p string) (string, error) {
			r, err := ResolvePath(p, roots)
			if err == nil && r != p {
				changed = true
			}
			return r, err
		})
		if err != nil {
			return nil, err
		}
	}
	if !changed {
		return args, nil
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("arguments: %v", err)
	}
	return out, nil
}

// rewrite applies fn to the string values at path in v.
func rewrite(v any, path []string, name string, fn func(string) (string, error)) (any, error) {
	if len(path) == 0 {
		switch s := v.(type) {
		case nil:
			return nil, nil
		case string:
			r, err := fn(s)
			if err != nil {
				return nil, fmt.Errorf("argument %s: %w", name, err)
			}
			return r, nil
		default:
			return nil, fmt.Errorf("argument %s must be a file path (a string)", name)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if path[0] == "*" {
			for k, e := range x {
				r, err := rewrite(e, path[1:], name, fn)
				if err != nil {
					return nil, err
				}
				x[k] = r
			}
			return x, nil
		}
		e, ok := x[path[0]]
		if !ok {
			return x, nil
		}
		r, err := rewrite(e, path[1:], name, fn)
		if err != nil {
			return nil, err
		}
		x[path[0]] = r
		return x, nil
	case []any:
		if path[0] != "*" {
			return x, nil
		}
		for i, e := range x {
			r, err := rewrite(e, path[1:], name, fn)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
		return x, nil
	case nil:
		return nil, nil
	}
	if path[0] == "*" {
		// A list of files given as one: a server that takes either reads
		// it as a file, so it is resolved as one; any other value is not
		// a file list.
		if len(path) == 1 {
			return rewrite(v, nil, name, fn)
		}
		return nil, fmt.Errorf("argument %s must be a list", name)
	}
	return v, nil
}

// ErrOutsideRoots is wrapped by ResolvePath's error for a path that
// resolves outside the roots.
var ErrOutsideRoots = errors.New("outside the server's roots")

// ResolvePath resolves p as a server with the given roots (absolute,
// symlinks resolved) would open it, and returns the result: p made
// absolute against the first root if relative, cleaned lexically, then
// every symlink in it followed; a final part that does not exist yet (a
// file to be written) is kept as written. It refuses what it cannot read
// unambiguously: an empty path, control characters, a backslash, spaces or
// quotes around it, a leading "~", a symlink loop or a dangling symlink,
// and a result outside every root.
func ResolvePath(p string, roots []string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case strings.TrimSpace(p) != p || strings.Trim(p, `"'`) != p:
		return "", fmt.Errorf("path %q has spaces or quotes around it; ward refuses it rather than guess how the server reads it", p)
	case strings.HasPrefix(p, "~"):
		return "", fmt.Errorf("path %q starts with \"~\"; give the absolute path", p)
	case strings.ContainsRune(p, '\\'):
		return "", fmt.Errorf("path %q contains a backslash; ward refuses it rather than guess how the server reads it", p)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("path %q contains a control character", p)
		}
	}
	if len(roots) == 0 {
		return "", errors.New("the server has no roots")
	}
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(roots[0], abs)
	}
	abs = filepath.Clean(abs)
	resolved, err := resolveExisting(abs)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	for _, r := range roots {
		if within(resolved, r) {
			return resolved, nil
		}
	}
	return "", fmt.Errorf("path %q resolves to %q, %w (%s)", p, resolved, ErrOutsideRoots, strings.Join(roots, ", "))
}

// resolveExisting follows every symlink of the longest existing prefix of
// the clean absolute path abs and appends the rest.
func resolveExisting(abs string) (string, error) {
	existing, rest := abs, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errors.New("it goes through a symlink whose target does not exist")
		}
		return "", fmt.Errorf("cannot resolve it: %v", err)
	}
	// A part that does not exist as written may exist under another
	// Unicode spelling ("prive\u0301" for "privé"), which the filesystem
	// server then opens (it matches parts by their NFC form): follow it
	// the same way, so that what is decided is what will be opened.
	parts := strings.Split(rest, string(filepath.Separator))
	for i, part := range parts {
		if part == "" {
			continue
		}
		match, err := equivalent(real, part)
		if err != nil {
			return "", err
		}
		if match == "" {
			return filepath.Join(append([]string{real}, parts[i:]...)...), nil
		}
		if real, err = filepath.EvalSymlinks(filepath.Join(real, match)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", errors.New("it goes through a symlink whose target does not exist")
			}
			return "", fmt.Errorf("cannot resolve it: %v", err)
		}
	}
	return real, nil
}

// equivalent returns the entry of dir named part, else the one whose name
// equals part in Unicode normalization form C, "" if there is none; two
// such entries are ambiguous and refused.
func equivalent(dir, part string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return "", nil
		}
		return "", fmt.Errorf("cannot read %s: %v", dir, err)
	}
	want := norm.NFC.String(part)
	match := ""
	for _, e := range entries {
		if e.Name() == part {
			return part, nil // as the server, an exact match first
		}
	}
	for _, e := range entries {
		if norm.NFC.String(e.Name()) != want {
			continue
		}
		if match != "" {
			return "", fmt.Errorf("%q matches %q and %q under Unicode normalization; ward refuses it rather than guess which one is meant", part, match, e.Name())
		}
		match = e.Name()
	}
	return match, nil
}

// within reports whether p is root or below it.
func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// CanonicalRoots returns roots as absolute paths with every symlink
// resolved, refusing roots that do not exist or are not directories.
func CanonicalRoots(roots []string) ([]string, error) {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("root %q: must be an absolute path", r)
		}
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			return nil, fmt.Errorf("root %q: %w", r, err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("root %q: %w", r, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("root %q is not a directory", r)
		}
		out = append(out, real)
	}
	return out, nil
}
