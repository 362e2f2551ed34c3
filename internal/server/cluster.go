package server

// Several nodes, one system.
//
// Nodes whose Config.StoreDSN names the same PostgreSQL schema are one
// ward system. What they share and what each keeps:
//
//   - Each node has a stable id, DATA/node.id (made on first start, a
//     lowercase name), and its own audit log, whose origin (and note key
//     name) is TRUST_DOMAIN/audit/NODE: logs of different nodes are never
//     confused for one another, and the audit index in the store keeps
//     each node's rows apart.
//   - The trust domain's CA, the JWT-SVID, grant and receipt keys and the
//     redaction salt are the system's: a session started on one node is
//     served by every other, and receipts verify with one key (with the
//     key ring, DATA/keys/ring.json, that keeps their rotation: keys.go).
//     They are
//     sealed in the store (AES-256-GCM under a key derived with HKDF-SHA256
//     from the join token), never in clear. The first node creates them
//     and a join token, DATA/keys/join.token (mode 0600); a node joins by
//     starting on the same store with that token (ward up --join FILE, or
//     Config.JoinToken), which it keeps in its own DATA/keys/join.token
//     for later starts. An operator may also write a token of their own
//     (see ParseJoinToken) and give it to every node, the first included.
//   - A node that starts on a store that already holds sealed keys, but
//     without the token, refuses to start and says how to join; a token
//     that does not open them, or a data directory holding keys other
//     than the system's, is refused the same way.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/keyring"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/strictjson"
)

// joinTokenPrefix starts every join token.
const joinTokenPrefix = "ward-join-v1:"

// sealedKeys is the name of the system's keys in the store.
const sealedKeys = "keys"

// sealMagic starts a sealed blob.
const sealMagic = "ward-sealed-v1\n"

// sharedFiles are the files of DATA every node of a system holds alike.
// keys/ring.json, the key ring (keys.go), is one of them but for systems
// sealed before rotation existed, whose blob lacks it.
var sharedFiles = []string{"ca/ca.key", "ca/ca.pem", "ca/jwt.key", "keys/grant.key", "keys/receipt.key", "keys/redact.salt", ringFile}

// sealedPayload is what the sealed blob holds.
type sealedPayload struct {
	TrustDomain string            `json:"trust_domain"`
	Files       map[string][]byte `json:"files"`
}

// NewJoinToken returns a new join token: "ward-join-v1:" and 32 random
// bytes, base64url without padding.
func NewJoinToken() string {
	var b [32]byte
	rand.Read(b[:])
	return joinTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseJoinToken checks a join token (surrounding white space is ignored)
// and returns its secret. An operator makes one with
//
//	printf 'ward-join-v1:%s\n' "$(head -c32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
func ParseJoinToken(tok string) ([]byte, error) {
	tok = strings.TrimSpace(tok)
	rest, ok := strings.CutPrefix(tok, joinTokenPrefix)
	if !ok {
		return nil, errors.New("a join token starts with " + joinTokenPrefix)
	}
	secret, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(secret) < 32 {
		return nil, errors.New("a join token is " + joinTokenPrefix + " and at least 32 bytes, base64url without padding")
	}
	return secret, nil
}

// sealKey derives the key that seals a system's keys from a join token's
// secret.
func sealKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "ward cluster seal v1", 32)
}

// seal encrypts p under secret.
func seal(secret []byte, p sealedPayload) ([]byte, error) {
	key, err := sealKey(secret)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := append([]byte(sealMagic), nonce...)
	return aead.Seal(out, nonce, plain, []byte(sealMagic)), nil
}

// errWrongToken reports a join token that does not open the sealed keys.
var errWrongToken = errors.New("the join token does not open this system's sealed keys: use the token of the node that created the system (its DATA/keys/join.token)")

// unseal decrypts a blob sealed under secret.
func unseal(secret, blob []byte) (sealedPayload, error) {
	var p sealedPayload
	rest, ok := strings.CutPrefix(string(blob), sealMagic)
	if !ok {
		return p, errors.New("the store's sealed keys are not in a format this ward reads")
	}
	key, err := sealKey(secret)
	if err != nil {
		return p, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return p, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return p, err
	}
	if len(rest) < aead.NonceSize() {
		return p, errWrongToken
	}
	plain, err := aead.Open(nil, []byte(rest[:aead.NonceSize()]), []byte(rest[aead.NonceSize():]), []byte(sealMagic))
	if err != nil {
		return p, errWrongToken
	}
	if err := strictjson.Unmarshal(plain, &p); err != nil {
		return p, fmt.Errorf("the store's sealed keys: %w", err)
	}
	return p, nil
}

// nodeID returns the node's id from DATA/node.id, creating it (node-
// and 8 random bytes in hex) on first start.
func nodeID(data string) (string, error) {
	path := filepath.Join(data, "node.id")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var r [8]byte
		rand.Read(r[:])
		id := "node-" + hex.EncodeToString(r[:])
		if err := atomicfile.Write(path, []byte(id+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("node id: %w", err)
		}
		return id, nil
	}
	if err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !store.ValidNodeName(id) {
		return "", fmt.Errorf("node id: %s holds %q, which is not a node name ([a-z0-9][a-z0-9-]*, at most 63 bytes)", path, id)
	}
	return id, nil
}

// joinStore opens the shared PostgreSQL store as this node and makes
// DATA hold the system's keys: the ones sealed in the store, or, on the
// system's first start, keys made here and sealed there.
func (n *Node) joinStore(ctx context.Context) error {
	data := n.cfg.Data
	id, err := nodeID(data)
	if err != nil {
		return err
	}
	n.nodeID = id
	if n.Store, err = store.OpenPostgres(ctx, store.Config{DSN: n.cfg.StoreDSN, Schema: n.cfg.StoreSchema, Node: id}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// One process per node id: a copy of this data directory running
	// beside it would write a second log under the same name.
	if n.claim, err = n.Store.ClaimNode(ctx, id); err != nil {
		if errors.Is(err, store.ErrNodeClaimed) {
			return fmt.Errorf("%w. This data directory's node is already running; a copy of a node's data directory cannot run beside it (start a new node on an empty data directory with ward up --join FILE), and a node that was just stopped frees its id within seconds", err)
		}
		return fmt.Errorf("store: %w", err)
	}
	tokenPath := filepath.Join(data, "keys", "join.token")
	token := strings.TrimSpace(n.cfg.JoinToken)
	if token == "" {
		if b, err := os.ReadFile(tokenPath); err == nil {
			token = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("join token: %w", err)
		}
	}
	var secret []byte
	if token != "" {
		if secret, err = ParseJoinToken(token); err != nil {
			return fmt.Errorf("join token: %w", err)
		}
	}
	made := false
	blob, created, err := n.Store.Sealed(ctx, sealedKeys, func() ([]byte, error) {
		if secret == nil {
			token = NewJoinToken()
			if secret, err = ParseJoinToken(token); err != nil {
				return nil, err
			}
			// Kept before the keys are sealed under it: a crash in
			// between must not leave keys that no token opens.
			if err := os.MkdirAll(filepath.Dir(tokenPath), 0o700); err != nil {
				return nil, err
			}
			if err := atomicfile.Write(tokenPath, []byte(token+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("join token: %w", err)
			}
		}
		p, fresh, err := n.localKeys()
		if err != nil {
			return nil, err
		}
		made = fresh
		return seal(secret, p)
	})
	if err != nil {
		return fmt.Errorf("the system's keys in %s: %w", n.Store.Location(), err)
	}
	if !created {
		if secret == nil {
			return fmt.Errorf("%s already holds the keys of a ward system: start this node with ward up --join FILE, FILE holding the join token of a node of the system (its DATA/keys/join.token)", n.Store.Location())
		}
		p, err := unseal(secret, blob)
		if err != nil {
			return err
		}
		if p.TrustDomain != n.cfg.TrustDomain {
			return fmt.Errorf("the system in %s is trust domain %s, this node's configuration says %s", n.Store.Location(), p.TrustDomain, n.cfg.TrustDomain)
		}
		// A data directory that receives the CA now is new to the
		// system: its empty audit log next to a store not yet
		// bootstrapped (a first node still starting) is no lost store.
		if made, err = writeShared(data, p); err != nil {
			return err
		}
	}
	n.joinedFresh = made
	n.joinSecret = secret
	if err := os.MkdirAll(filepath.Dir(tokenPath), 0o700); err != nil {
		return err
	}
	if old, err := os.ReadFile(tokenPath); err != nil || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(string(old))), []byte(token)) != 1 {
		if err := atomicfile.Write(tokenPath, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("join token: %w", err)
		}
	}
	if err := n.openFeed(ctx); err != nil {
		return err
	}
	n.leases = newLeaseLedger(n.Store, id)
	if created {
		n.cfg.Logger.Info("created this ward system's keys, sealed in the store; other nodes join with ward up --join FILE, FILE a copy of this node's join token",
			"token", tokenPath, "node", id)
	}
	return nil
}

// localKeys makes whatever shared key of DATA is missing and returns them
// all; fresh reports that it made the CA.
func (n *Node) localKeys() (sealedPayload, bool, error) {
	data := n.cfg.Data
	_, fresh, err := identity.Open(identity.Config{TrustDomain: n.cfg.TrustDomain, Dir: filepath.Join(data, "ca")})
	if err != nil {
		return sealedPayload{}, false, fmt.Errorf("trust domain CA: %w", err)
	}
	for _, k := range []string{"grant", "receipt"} {
		if _, _, err := identity.LoadOrCreateECKey(filepath.Join(data, "keys", k+".key")); err != nil {
			return sealedPayload{}, false, fmt.Errorf("%s key: %w", k, err)
		}
	}
	if r, err := readRing(data); err != nil {
		return sealedPayload{}, false, err
	} else if r == nil {
		if r, err = importRing(data, n.cfg.TrustDomain, time.Now()); err != nil {
			return sealedPayload{}, false, err
		}
		if err := writeRing(data, r); err != nil {
			return sealedPayload{}, false, err
		}
	}
	saltPath := filepath.Join(data, "keys", "redact.salt")
	if _, err := os.Stat(saltPath); errors.Is(err, os.ErrNotExist) {
		salt := make([]byte, 32)
		rand.Read(salt)
		if err := atomicfile.Write(saltPath, salt, 0o600); err != nil {
			return sealedPayload{}, false, fmt.Errorf("redaction salt: %w", err)
		}
	}
	p := sealedPayload{TrustDomain: n.cfg.TrustDomain, Files: map[string][]byte{}}
	for _, f := range sharedFiles {
		b, err := os.ReadFile(filepath.Join(data, filepath.FromSlash(f)))
		if err != nil {
			return sealedPayload{}, false, err
		}
		p.Files[f] = b
	}
	return p, fresh, nil
}

// writeShared writes the system's keys into DATA, refusing a data
// directory that holds other ones; fresh reports that DATA had no CA.
// Once the system has a key ring, DATA's keys are the system's when its
// CA key is one the ring holds or remembers (keys rotated since DATA was
// written are replaced by the store's); before, they must be the store's
// exactly.
func writeShared(data string, p sealedPayload) (fresh bool, err error) {
	var ring *keyring.Ring
	if b, ok := p.Files[ringFile]; ok {
		if ring, err = keyring.Parse(b); err != nil {
			return false, fmt.Errorf("the store's sealed keys: %w", err)
		}
	}
	for _, f := range sharedFiles {
		want, ok := p.Files[f]
		if !ok {
			if f == ringFile {
				continue
			}
			return false, fmt.Errorf("the store's sealed keys lack %s", f)
		}
		path := filepath.Join(data, filepath.FromSlash(f))
		have, err := os.ReadFile(path)
		switch {
		case err == nil:
			if subtle.ConstantTimeCompare(have, want) == 1 {
				continue
			}
			if ring == nil || !ownKeys(data, ring) {
				return false, fmt.Errorf("DATA/%s is not this system's: the data directory %s belongs to another ward system (start this node with an empty data directory to join)", f, data)
			}
		case errors.Is(err, os.ErrNotExist):
			if f == "ca/ca.key" {
				fresh = true
			}
		default:
			return false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return false, err
		}
		mode := os.FileMode(0o600)
		if strings.HasSuffix(f, ".pem") {
			mode = 0o644
		}
		if err := atomicfile.Write(path, want, mode); err != nil {
			return false, fmt.Errorf("write DATA/%s: %w", f, err)
		}
	}
	return fresh, nil
}

// ownKeys reports whether DATA's CA key is one of ring's CA keys, in any
// state: DATA was written by a node of this system.
func ownKeys(data string, ring *keyring.Ring) bool {
	b, err := readSmall(filepath.Join(data, "ca", "ca.key"), 64<<10)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return false
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return false
	}
	kid, err := keyring.Thumbprint(&ec.PublicKey)
	return err == nil && ring.Known(keyring.CA, kid)
}

// auditName is the name of a new audit note key, and so the origin of a
// new audit log: TRUST_DOMAIN/audit, or TRUST_DOMAIN/audit/NODE on a node
// of several.
func (n *Node) auditName() string {
	if n.nodeID != "" {
		return n.cfg.TrustDomain + "/audit/" + n.nodeID
	}
	return n.cfg.TrustDomain + "/audit"
}

// NodeID is the node's id when it shares its store with others ("" on
// SQLite).
func (n *Node) NodeID() string { return n.nodeID }
