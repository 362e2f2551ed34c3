package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/strictjson"
)

// Role is what an operator may do in the console. Each role includes the
// ones before it.
type Role string

// The roles, weakest first.
const (
	// RoleViewer reads agents, sessions, approvals, audit and policies.
	RoleViewer Role = "viewer"
	// RoleApprover also votes on approval requests.
	RoleApprover Role = "approver"
	// RoleAdmin also quarantines and releases agents and ends sessions.
	RoleAdmin Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleApprover, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want viewer, approver or admin", s)
}

// rank orders roles; an unknown role ranks below every known one.
func (r Role) rank() int {
	return slices.Index([]Role{RoleViewer, RoleApprover, RoleAdmin}, r)
}

// Allows reports whether r includes need.
func (r Role) Allows(need Role) bool { return r.rank() >= 0 && r.rank() >= need.rank() }

// Argon2id parameters for new password hashes (RFC 9106's second
// recommended option, with the memory lowered to what a small node can
// spend per login: 64 MiB, one pass, two lanes). Stored hashes carry their
// own parameters.
const (
	argonTime    = 1
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	argonSaltLen = 16
)

// UsersFile is where a node keeps its console accounts, under its data
// directory.
const UsersFile = "console/users.json"

// User is one console account as stored: the password only as an
// argon2id hash in the PHC string format
// ($argon2id$v=19$m=65536,t=1,p=2$SALT$HASH).
type User struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

type usersDoc struct {
	Users []User `json:"users"`
}

var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// AddUser creates the account name with role in the users file at path and
// returns its generated password, which is stored only as a hash: show it
// once. An existing account of that name is refused.
func AddUser(path, name string, role Role) (string, error) {
	if !userName.MatchString(name) {
		return "", fmt.Errorf("user name %q: use 1-64 letters, digits, '.', '_', '@' or '-'", name)
	}
	if role.rank() < 0 {
		return "", fmt.Errorf("role %q: want viewer, approver or admin", role)
	}
	us, err := readUsers(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if slices.ContainsFunc(us, func(u User) bool { return u.Name == name }) {
		return "", fmt.Errorf("console user %q exists already", name)
	}
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(pw)
	hash, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	us = append(us, User{Name: name, Role: role, Hash: hash, Created: time.Now().UTC().Truncate(time.Second)})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(usersDoc{Users: us}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return password, nil
}

// readUsers reads the users file strictly.
func readUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc usersDoc
	if err := strictjson.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("console users %s: %v", path, err)
	}
	for _, u := range doc.Users {
		if u.Role.rank() < 0 || !userName.MatchString(u.Name) {
			return nil, fmt.Errorf("console users %s: user %q has role %q: want viewer, approver or admin", path, u.Name, u.Role)
		}
	}
	return doc.Users, nil
}

// HashPassword returns password's argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Limits on the parameters a stored hash may ask for, so that a damaged or
// hostile users file cannot make one login spend unbounded memory or time
// (two logins hash at once). The work, memory times passes, may be four
// times that of the hashes ward makes: RFC 9106's 64 MiB with 3 passes and
// OWASP's 7 MiB with 5 passes; more is refused.
const (
	maxArgonMemory = 256 << 10 // KiB: 256 MiB
	maxArgonTime   = 10
	maxArgonWork   = 4 * argonMemory * argonTime // KiB times passes
	maxArgonLanes  = 16
)

// CheckPassword reports whether password matches the PHC argon2id hash,
// comparing in constant time. A malformed hash never matches.
func CheckPassword(hash, password string) bool {
	h, ok := parseHash(hash)
	if !ok {
		return false
	}
	got := argon2.IDKey([]byte(password), h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

type argonHash struct {
	m, t      uint32
	p         uint8
	salt, key []byte
}

// parseHash reads a PHC argon2id hash exactly as ward writes one.
func parseHash(hash string) (argonHash, bool) {
	var h argonHash
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.m, &h.t, &h.p); err != nil || h.m == 0 || h.m > maxArgonMemory || h.t == 0 || h.t > maxArgonTime ||
		uint64(h.m)*uint64(h.t) > maxArgonWork || h.p == 0 || h.p > maxArgonLanes {
		return h, false
	}
	// Exactly as written, nothing before, between or after.
	if parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", h.m, h.t, h.p) {
		return h, false
	}
	b64 := base64.RawStdEncoding
	var err1, err2 error
	h.salt, err1 = b64.DecodeString(parts[4])
	h.key, err2 = b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(h.salt) < 8 || len(h.key) < 16 || len(h.key) > 64 {
		return h, false
	}
	return h, true
}

// users caches the users file, rereading it when it changes, so that an
// account added, removed or given another role takes effect without a
// restart (removal ends the account's sessions at their next request).
type users struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	list []User
	err  error
	// decoy is what the accounts' hashes look like (decoyShape of list).
	decoy decoyShape
}

// get returns the account named name.
func (u *users) get(name string) (User, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := os.Stat(u.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		u.list, u.err, u.mod, u.size = nil, nil, time.Time{}, 0
		u.decoy = shapeOf(nil)
	case err != nil:
		return User{}, false, err
	case !st.ModTime().Equal(u.mod) || st.Size() != u.size:
		u.list, u.err = readUsers(u.path)
		u.mod, u.size = st.ModTime(), st.Size()
		u.decoy = shapeOf(u.list)
	}
	if u.err != nil {
		return User{}, false, u.err
	}
	for _, x := range u.list {
		if x.Name == name {
			return x, true, nil
		}
	}
	return User{Hash: u.decoy.hash()}, false, nil
}

// decoyShape is what a login for a name no account has is checked
// against, so that it costs what a login for an account does: a hash that
// matches no password, with the parameters (and key length) most
// accounts' hashes have (ward's own when there are none), so that a name
// cannot be told to exist by how long a wrong password takes. It is
// worked out when the users file is read, not at every login.
type decoyShape struct {
	params string
	keyLen int
}

// shapeOf returns the shape of the hashes most of list's accounts have.
func shapeOf(list []User) decoyShape {
	d := decoyShape{params: fmt.Sprintf("m=%d,t=%d,p=%d", argonMemory, argonTime, argonThreads), keyLen: argonKeyLen}
	count := map[string]int{}
	best := 0
	for _, x := range list {
		h, ok := parseHash(x.Hash)
		if !ok {
			continue
		}
		params := fmt.Sprintf("m=%d,t=%d,p=%d", h.m, h.t, h.p)
		count[params]++
		if n := count[params]; n > best {
			best, d = n, decoyShape{params: params, keyLen: len(h.key)}
		}
	}
	return d
}

// hash is a fresh decoy of this shape: a random salt and key.
func (d decoyShape) hash() string {
	salt, key := make([]byte, argonSaltLen), make([]byte, d.keyLen)
	rand.Read(salt)
	rand.Read(key)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, d.params, b64.EncodeToString(salt), b64.EncodeToString(key))
}
