package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// maxOriginBytes bounds a log's origin, so that its checkpoints fit a head
// slot (see head.go).
const maxOriginBytes = 1024

// checkpointText is the C2SP tlog-checkpoint body.
func checkpointText(origin string, size uint64, root []byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root) + "\n"
}

// parseCheckpoint strictly parses a checkpoint body written by this package:
// exactly three lines, the origin, a decimal size without leading zeroes, a
// 32-byte root in canonical standard base64.
func parseCheckpoint(text, origin string) (size uint64, root []byte, err error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return 0, nil, errors.New("checkpoint must have exactly three lines")
	}
	if got := strings.TrimSuffix(lines[0], "\n"); got != origin {
		return 0, nil, fmt.Errorf("origin %q, want %q", got, origin)
	}
	size, err = parseDecimal(strings.TrimSuffix(lines[1], "\n"))
	if err != nil {
		return 0, nil, errors.New("malformed tree size")
	}
	root, err = decodeBase64(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != hasher.Size() {
		return 0, nil, errors.New("malformed root hash")
	}
	return size, root, nil
}

// parseDecimal reads an unsigned decimal in its one encoding: digits only,
// no sign, no leading zero.
func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a canonical decimal")
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// decodeBase64 decodes standard padded base64 in its one encoding. Go's
// decoder, even in strict mode, skips CR and LF and (outside strict mode)
// ignores non-zero padding bits, so two texts could decode to the same
// bytes; re-encoding and comparing rules both out.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("base64 not in canonical form")
	}
	return b, nil
}

// openNote opens a signed note with v and checks that its signature block is
// in its one encoding: every signature in canonical base64, no signature
// line twice, no second signature by one key, and the log's signatures
// (those named by the log's origin, v's name) first, at least one of
// them by v. v may be a [Keyring]: a signature by any of its keys
// verifies, and each of them there must. A log-named signature by a key
// v does not hold is another key of the log (a rotation's old or new
// one), not verified here. With own, the note must carry the log's
// signatures alone, as the log writes it; else other signatures (witness
// cosignatures) may follow, unverified here.
func openNote(signed []byte, v note.Verifier, own bool) (*note.Note, error) {
	n, err := note.Open(signed, note.VerifierList(keysOf(v)...))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, errors.New("not signed by the log key")
		}
		return nil, fmt.Errorf("signature: %v", err)
	}
	// note.Open accepted the layout, so the block after the last blank line
	// is signature lines, each "— name base64\n".
	sigs := signed[bytes.LastIndex(signed, []byte("\n\n"))+2:]
	seen := map[string]bool{}
	others := false // a signature not by the log's keys came
	for i := 0; len(sigs) > 0; i++ {
		j := bytes.IndexByte(sigs, '\n')
		line := strings.TrimPrefix(string(sigs[:j]), "— ")
		sigs = sigs[j+1:]
		name, b64, _ := strings.Cut(line, " ")
		raw, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("signature %d of %s is not in canonical base64", i, name)
		}
		id := name + "\x00" + string(raw[:4])
		if seen[id] {
			return nil, fmt.Errorf("two signatures by %s", name)
		}
		seen[id] = true
		ours := name == v.Name()
		if (i == 0 || !others) && !ours {
			if i == 0 {
				return nil, errors.New("the log's signature is not the first")
			}
			if own {
				return nil, errors.New("more than the log's signature")
			}
			others = true
		} else if ours && others {
			return nil, errors.New("a signature by the log's key after a cosignature")
		}
	}
	return n, nil
}

// openCheckpoint verifies a checkpoint as the log writes it (its signature
// alone) and parses its body.
func openCheckpoint(signed []byte, v note.Verifier, origin string) (uint64, []byte, error) {
	n, err := openNote(signed, v, true)
	if err != nil {
		return 0, nil, err
	}
	return parseCheckpoint(n.Text, origin)
}

// openCosigned verifies a checkpoint that may also carry witness
// cosignatures and parses its body.
func openCosigned(signed []byte, v note.Verifier, origin string) (uint64, []byte, error) {
	n, err := openNote(signed, v, false)
	if err != nil {
		return 0, nil, err
	}
	return parseCheckpoint(n.Text, origin)
}

// ParseVerifierKey reads a note verifier key ("name+hash+base64", as in
// DATA/keys/audit.pub) in its one encoding: the hash as eight lower-case hex
// digits, the key in canonical base64. note.NewVerifier alone also accepts
// upper-case hex and non-canonical base64.
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	// A name holds no '+'; base64 may.
	_, rest, _ := strings.Cut(vkey, "+")
	_, b64, _ := strings.Cut(rest, "+")
	key, err := decodeBase64(b64)
	if err != nil || fmt.Sprintf("%s+%08x+%s", v.Name(), v.KeyHash(), base64.StdEncoding.EncodeToString(key)) != vkey {
		return nil, errors.New("verifier key: not in canonical form")
	}
	return v, nil
}

// validOrigin reports whether origin can be a checkpoint's first line.
func validOrigin(origin string) bool {
	if origin == "" || len(origin) > maxOriginBytes || !utf8.ValidString(origin) {
		return false
	}
	for _, r := range origin {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
