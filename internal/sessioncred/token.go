package sessioncred

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// TokenPrefix starts every token [NewToken] makes, so that secret scanners
// and people recognise one.
const TokenPrefix = "wmcp_"

// Token lengths a sidecar accepts (a token from [NewToken] is 48 bytes).
const (
	minToken = 32
	maxToken = 256
)

// NewToken returns a fresh sidecar token: TokenPrefix and 256 random bits,
// base64url. It is safe in a URL path and in an HTTP header.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// checkToken accepts 32 to 256 characters of A–Z a–z 0–9 - . _ ~ (what is
// left alone in a URL path and needs no quoting in a header).
func checkToken(t string) error {
	if len(t) < minToken || len(t) > maxToken {
		return fmt.Errorf("a sidecar token has %d to %d characters, not %d", minToken, maxToken, len(t))
	}
	for _, c := range []byte(t) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return errors.New("a sidecar token holds only A-Z a-z 0-9 - . _ ~")
		}
	}
	return nil
}

// tokenDigest is what the sidecar keeps and compares: comparing digests in
// constant time leaks neither the token's bytes nor its length.
type tokenDigest [sha256.Size]byte

func digestToken(t string) tokenDigest { return sha256.Sum256([]byte(t)) }

func (d *tokenDigest) matches(presented string) bool {
	p := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(d[:], p[:]) == 1
}

// TokenFile reads the sidecar token kept in path or, if there is no such
// file, creates it (mode 0600) with a new token; created says which. An
// existing file must be a regular file of the current user that nobody else
// can read or write, holding one well-formed token; a symbolic link is
// refused.
func TokenFile(path string) (token string, created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		token = NewToken()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return "", false, fmt.Errorf("token file: %w", err)
		}
		_, werr := f.WriteString(token + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", false, fmt.Errorf("token file: %w", werr)
		}
		return token, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("token file: %w (give a regular file, not a link)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", false, fmt.Errorf("token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", false, fmt.Errorf("token file %s is not a regular file", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return "", false, fmt.Errorf("token file %s belongs to uid %d, not to you (uid %d): use a file of your own", path, sys.Uid, os.Geteuid())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", false, fmt.Errorf("token file %s is mode %04o, so others can read or change it: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxToken+2))
	if err != nil {
		return "", false, fmt.Errorf("token file: %w", err)
	}
	token = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if err := checkToken(token); err != nil {
		return "", false, fmt.Errorf("token file %s: %v (delete it to have a new one made)", path, err)
	}
	return token, false, nil
}
