package server

// The trust domain's signing keys and their rotation.
//
// The CA, the JWT-SVID key, the grant key and the receipt key are kept in
// a key ring (package keyring), DATA/keys/ring.json (0600): per kind, the
// active key, which signs everything new, and the retiring keys, which
// still verify what they signed until their not_after, the longest a
// credential they signed can live (the node's maximum session lifetime
// plus keySkew). The files of the keys from before rotation existed
// (DATA/ca/ca.key, ca.pem, jwt.key, DATA/keys/grant.key, receipt.key) are
// kept as copies of the active keys; the ring is the truth, written first.
// A data directory without a ring gets one made of those files on start.
//
// RotateKey makes a new active key of a kind; the node installs it at
// once: the CA (identity.CA.Install: bundle, JWKS, bundle.pem, X.509 and
// JWT verification), the grant issuer and verifier (authority), the
// receipt signer and DATA/keys/receipt.pub (every receipt key still
// trusted, the active one first). Every sweepKeys (expirySweep) retires
// the keys whose not_after has passed: they leave every verification set
// and their material leaves the ring. Installing always leaves out
// retiring keys already past their not_after, so a node that cannot
// persist the sweep drops them all the same.
//
// On several nodes the ring is one of the sealed files in the store
// (cluster.go): a rotation or sweep replaces the sealed blob under the
// store's lock (store.UpdateSealed), which puts a change of kind
// store.ChangeKeys on the change feed; every node that applies it loads
// the blob again, writes the files and installs the ring, within the
// feed's FreshnessBound.

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/keyring"
	"github.com/ward-dev/ward/internal/store"
)

const (
	// ringFile is the key ring, under DATA.
	ringFile = "keys/ring.json"
	// keySkew is added to the longest lifetime of a credential when a
	// rotated key's not_after is set: the clock skew verifiers allow
	// (grant.DefaultLeeway) and then some.
	keySkew = time.Minute
)

// activeFiles are the copies of the active keys, by kind and part.
var activeFiles = map[keyring.Kind]string{
	keyring.CA:      "ca/ca.key",
	keyring.JWT:     "ca/jwt.key",
	keyring.Grant:   "keys/grant.key",
	keyring.Receipt: "keys/receipt.key",
}

// caCertFile is the copy of the active root certificate.
const caCertFile = "ca/ca.pem"

// readRing reads DATA's key ring; nil if it has none.
func readRing(data string) (*keyring.Ring, error) {
	b, err := readSmall(filepath.Join(data, filepath.FromSlash(ringFile)), keyring.MaxSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := keyring.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("DATA/%s: %w", ringFile, err)
	}
	return r, nil
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return b, nil
}

// ringFiles returns the files that hold r in DATA: the ring and the
// copies of its active keys.
func ringFiles(r *keyring.Ring) (map[string][]byte, error) {
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{ringFile: b}
	for kind, f := range activeFiles {
		files[f] = []byte(r.Active(kind).Private)
	}
	files[caCertFile] = []byte(r.Active(keyring.CA).Cert)
	return files, nil
}

// writeRing writes r to DATA: the ring first (the commit point), then the
// copies of its active keys where they differ.
func writeRing(data string, r *keyring.Ring) error {
	files, err := ringFiles(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(data, "keys"), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(data, filepath.FromSlash(ringFile)), files[ringFile], 0o600); err != nil {
		return fmt.Errorf("write the key ring: %w", err)
	}
	return writeKeyCopies(data, files)
}

// writeKeyCopies writes the copies of the active keys that differ.
func writeKeyCopies(data string, files map[string][]byte) error {
	for f, want := range files {
		if f == ringFile {
			continue
		}
		path := filepath.Join(data, filepath.FromSlash(f))
		if have, err := os.ReadFile(path); err == nil && string(have) == string(want) {
			continue
		}
		mode := os.FileMode(0o600)
		if strings.HasSuffix(f, ".pem") {
			mode = 0o644
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(path, want, mode); err != nil {
			return fmt.Errorf("write DATA/%s: %w", f, err)
		}
	}
	return nil
}

// importRing makes the ring of a data directory that has the key files
// of before rotation existed (creating those it lacks, as a first start
// always did) and none yet. The CA is taken as created when its root
// certificate was (an hour backdated), the other keys when their files
// were written.
func importRing(data, trustDomain string, now time.Time) (*keyring.Ring, error) {
	ca, _, err := identity.Open(identity.Config{TrustDomain: trustDomain, Dir: filepath.Join(data, "ca")})
	if err != nil {
		return nil, fmt.Errorf("trust domain CA: %w", err)
	}
	files := map[string][]byte{}
	created := map[string]time.Time{}
	for _, f := range append([]string{caCertFile}, activeFileList()...) {
		path := filepath.Join(data, filepath.FromSlash(f))
		if f != caCertFile {
			if _, _, err := identity.LoadOrCreateECKey(path); err != nil {
				return nil, fmt.Errorf("DATA/%s: %w", f, err)
			}
		}
		if files[f], err = readSmall(path, 64<<10); err != nil {
			return nil, err
		}
		if st, err := os.Stat(path); err == nil {
			created[f] = st.ModTime()
		}
	}
	return ringOfFiles(files, created, max(ca.Sequence(), uint64(now.Unix())), now)
}

func activeFileList() []string {
	var out []string
	for _, kind := range keyring.Kinds {
		out = append(out, activeFiles[kind])
	}
	return out
}

// ringOfFiles makes a ring of the active keys' files (PEM: PKCS#8 keys,
// the root certificate), each created at created[file] (now if unknown;
// the CA when its root was made).
func ringOfFiles(files map[string][]byte, created map[string]time.Time, sequence uint64, now time.Time) (*keyring.Ring, error) {
	certDER, err := keyring.OnePEM(string(files[caCertFile]), "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caCertFile, err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caCertFile, err)
	}
	var keys []keyring.Key
	for _, kind := range keyring.Kinds {
		f := activeFiles[kind]
		priv, err := keyring.ParsePrivate(string(files[f]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		at, ok := created[f]
		if !ok {
			at = now
		}
		var c *x509.Certificate
		if kind == keyring.CA {
			c, at = cert, cert.NotBefore.Add(time.Hour)
		}
		key, err := keyring.FromKey(kind, priv, c, at)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", kind, err)
		}
		keys = append(keys, key)
	}
	return keyring.New(sequence, keys...)
}

// openKeys loads the key ring (making it from the key files on a data
// directory that has none), opens the CA and installs the ring's keys in
// it. The grant issuer is returned for the authority; installRing gives
// it the ring's keys once the authority exists.
func (n *Node) openKeys() (*grant.Issuer, error) {
	data := n.cfg.Data
	r, err := readRing(data)
	if err != nil {
		return nil, err
	}
	if r != nil {
		// The copies follow the ring, which was written first.
		files, err := ringFiles(r)
		if err != nil {
			return nil, err
		}
		if err := writeKeyCopies(data, files); err != nil {
			return nil, err
		}
	}
	var created bool
	n.CA, created, err = identity.Open(identity.Config{TrustDomain: n.cfg.TrustDomain, Dir: filepath.Join(data, "ca")})
	if err != nil {
		return nil, fmt.Errorf("trust domain CA: %w", err)
	}
	n.Created = created
	if r == nil {
		if r, err = importRing(data, n.cfg.TrustDomain, time.Now()); err != nil {
			return nil, err
		}
		if err := writeRing(data, r); err != nil {
			return nil, err
		}
	}
	if err := n.installRing(r, time.Now()); err != nil {
		return nil, err
	}
	return grantIssuer(r, n.cfg.TrustDomain)
}

func grantIssuer(r *keyring.Ring, td string) (*grant.Issuer, error) {
	priv, err := r.Active(keyring.Grant).PrivateKey()
	if err != nil {
		return nil, fmt.Errorf("grant key: %w", err)
	}
	return grant.NewIssuer(grant.IssuerConfig{Key: priv, TrustDomain: td})
}

// installRing puts r's keys in force at now: retiring keys past their
// not_after are left out. It also writes DATA/bundle.pem and
// DATA/keys/receipt.pub.
func (n *Node) installRing(r *keyring.Ring, now time.Time) error {
	ca := r.Active(keyring.CA)
	caKey, err := ca.PrivateKey()
	if err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	caCert, err := ca.Certificate()
	if err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	jwtKey, err := r.Active(keyring.JWT).PrivateKey()
	if err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	ks := identity.KeySet{Key: caKey, Cert: caCert, JWTKey: jwtKey, Sequence: r.Sequence}
	for _, k := range r.Verifying(keyring.CA, now)[1:] {
		cert, err := k.Certificate()
		if err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		if !now.Before(cert.NotAfter) {
			continue // expired itself: it verifies nothing any more
		}
		rr := identity.RetiringRoot{Cert: cert, NotAfter: k.NotAfter}
		if k.Private != "" {
			if rr.Key, err = k.PrivateKey(); err != nil {
				return fmt.Errorf("install keys: %w", err)
			}
		}
		ks.Retiring = append(ks.Retiring, rr)
	}
	for _, k := range r.Verifying(keyring.JWT, now)[1:] {
		pub, err := k.PublicKey()
		if err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		ks.RetiringJWT = append(ks.RetiringJWT, pub)
	}
	issuer, err := grantIssuer(r, n.cfg.TrustDomain)
	if err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	retiringGrants := map[string]*ecdsa.PublicKey{}
	for _, k := range r.Verifying(keyring.Grant, now)[1:] {
		if retiringGrants[k.KID], err = k.PublicKey(); err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
	}
	receiptKey, err := r.Active(keyring.Receipt).PrivateKey()
	if err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	var receiptPub []byte
	for _, k := range r.Verifying(keyring.Receipt, now) {
		pub, err := k.PublicKey()
		if err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		receiptPub = append(receiptPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}

	// Everything checked: put it in force.
	if err := n.CA.Install(ks); err != nil {
		return err
	}
	if n.Auth != nil {
		if err := n.Auth.SetGrantKeys(issuer, retiringGrants); err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
	}
	n.receiptKey.Store(receiptKey)
	n.ring.Store(r)
	data := n.cfg.Data
	if err := atomicfile.Write(filepath.Join(data, "bundle.pem"), n.CA.BundlePEM(), 0o644); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(data, "keys", "receipt.pub"), receiptPub, 0o644); err != nil {
		return fmt.Errorf("write receipt keys: %w", err)
	}
	return nil
}

// keyLifetime is how long a key of kind stays trusted once rotated out:
// the longest a credential it signed lives, plus keySkew. X.509-SVIDs,
// JWT-SVIDs and grants all end with their session, so that is the
// node's maximum session lifetime; receipts do not expire but are signed
// anew whenever they are fetched (GET /v1/receipts), and an old one is
// trusted as long.
func (n *Node) keyLifetime() time.Duration {
	max := n.cfg.MaxTTL
	if max <= 0 {
		max = authority.DefaultMaxSessionTTL
	}
	return max + keySkew
}

// ListKeys is api.Keys.ListKeys.
func (n *Node) ListKeys() []keyring.View {
	return n.ring.Load().Views(time.Now())
}

// RotateKey is api.Keys.RotateKey: it makes a new active key of kind,
// stores it (in DATA, or sealed in the store of several nodes), puts it in
// force here and records the rotation in the audit log.
func (n *Node) RotateKey(ctx context.Context, kindName, by string) (keyring.View, error) {
	if kindName == logKeyKind {
		return n.rotateLogKey(ctx, by)
	}
	kind, err := keyring.ParseKind(kindName)
	if err != nil {
		return keyring.View{}, fmt.Errorf("%w: %v", authority.ErrInvalid, err)
	}
	td, err := spiffeid.TrustDomainFromString(n.cfg.TrustDomain)
	if err != nil {
		return keyring.View{}, err
	}
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	now := time.Now()
	var prev keyring.Key // the key replaced, as the ring stored says
	rotate := func(r *keyring.Ring) (*keyring.Ring, error) {
		prev = r.Active(kind)
		next, err := keyring.NewKey(kind, td, now)
		if err != nil {
			return nil, err
		}
		return r.Rotate(next, now, n.keyLifetime())
	}
	r, _, err := n.changeRing(ctx, rotate)
	if errors.Is(err, keyring.ErrTooMany) {
		return keyring.View{}, fmt.Errorf("rotate the %s key: %w: %v", kind, store.ErrConflict, err)
	}
	if err != nil {
		return keyring.View{}, fmt.Errorf("rotate the %s key: %w", kind, err)
	}
	if err := n.installRing(r, now); err != nil {
		return keyring.View{}, fmt.Errorf("rotate the %s key: it is stored but could not be put in force here: %w", kind, err)
	}
	active := r.Active(kind)
	var notAfter time.Time
	for _, k := range r.Keys {
		if k.KID == prev.KID {
			notAfter = k.NotAfter
		}
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "keys.rotate", Actor: by, Data: jsonData(map[string]any{
		"kind": kind, "kid": active.KID, "previous": prev.KID, "previous_not_after": notAfter, "node": n.nodeID,
	})}); err != nil {
		return keyring.View{}, fmt.Errorf("the %s key was rotated (now %s) but the rotation could not be recorded: %w", kind, active.KID, err)
	}
	n.cfg.Logger.Info("rotated a signing key", "kind", kind, "kid", active.KID, "previous", prev.KID, "previous_not_after", notAfter, "by", by)
	for _, v := range r.Views(now) {
		if v.KID == active.KID {
			return v, nil
		}
	}
	return keyring.View{}, errors.New("rotate: the new key is not in the ring")
}

// RetireKey is api.Keys.RetireKey: it retires the retiring key kid at
// once, ahead of its not_after (its material leaked): it leaves every
// verification set here now and on the other nodes within their
// freshness bound, and what it signed is refused from then on.
func (n *Node) RetireKey(ctx context.Context, kid, by string) (keyring.View, error) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	now := time.Now()
	var was keyring.Key
	r, _, err := n.changeRing(ctx, func(r *keyring.Ring) (*keyring.Ring, error) {
		next, k, err := r.RetireNow(kid, now)
		was = k
		return next, err
	})
	switch {
	case errors.Is(err, keyring.ErrNotRetiring) && was.KID == "":
		return keyring.View{}, fmt.Errorf("retire key %.64s: %w: the trust domain has no such key (ward keys list)", kid, store.ErrNotFound)
	case errors.Is(err, keyring.ErrNotRetiring):
		return keyring.View{}, fmt.Errorf("retire key %s: %w: it is %s; only a retiring key is retired early (rotate an active key first)", kid, store.ErrConflict, was.State)
	case err != nil:
		return keyring.View{}, fmt.Errorf("retire key %.64s: %w", kid, err)
	}
	if err := n.installRing(r, now); err != nil {
		return keyring.View{}, fmt.Errorf("retire key %s: it is retired in the store but could not be dropped here: %w", kid, err)
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "keys.retire", Actor: by, Data: jsonData(map[string]any{
		"keys": []string{string(was.Kind) + " " + was.KID}, "early": true, "not_after_was": was.NotAfter, "node": n.nodeID,
	})}); err != nil {
		return keyring.View{}, fmt.Errorf("key %s was retired but the retirement could not be recorded: %w", kid, err)
	}
	n.cfg.Logger.Warn("retired a signing key ahead of its time: what it signed is refused from now on", "kind", was.Kind, "kid", kid, "by", by)
	for _, v := range r.Views(now) {
		if v.KID == kid {
			return v, nil
		}
	}
	return keyring.View{}, errors.New("retire: the key is not in the ring")
}

// changeRing applies change to the system's ring and stores the result:
// on several nodes in the sealed blob (under the store's lock, applied to
// the ring the store holds), alone in DATA. It returns the ring in force
// and whether change changed it; change returning its argument changes
// nothing. The caller holds keysMu.
func (n *Node) changeRing(ctx context.Context, change func(*keyring.Ring) (*keyring.Ring, error)) (*keyring.Ring, bool, error) {
	if n.joinSecret == nil {
		cur := n.ring.Load()
		r, err := change(cur)
		if err != nil || r == cur {
			return cur, false, err
		}
		if err := writeRing(n.cfg.Data, r); err != nil {
			return nil, false, err
		}
		return r, true, nil
	}
	blob, changed, err := n.Store.UpdateSealed(ctx, sealedKeys, func(old []byte) ([]byte, error) {
		p, err := unseal(n.joinSecret, old)
		if err != nil {
			return nil, err
		}
		cur, err := payloadRing(p, time.Now())
		if err != nil {
			return nil, err
		}
		r, err := change(cur)
		if err != nil || r == cur {
			return nil, err
		}
		files, err := ringFiles(r)
		if err != nil {
			return nil, err
		}
		for f, b := range files {
			p.Files[f] = b
		}
		return seal(n.joinSecret, p)
	})
	if err != nil {
		return nil, false, err
	}
	r, err := n.loadSealed(blob)
	return r, changed, err
}

// loadSealed writes the system's sealed files into DATA and returns their
// ring.
func (n *Node) loadSealed(blob []byte) (*keyring.Ring, error) {
	p, err := unseal(n.joinSecret, blob)
	if err != nil {
		return nil, err
	}
	if _, err := writeShared(n.cfg.Data, p); err != nil {
		return nil, err
	}
	return payloadRing(p, time.Now())
}

// payloadRing returns the ring of a sealed payload, or, for a system
// sealed before rotation existed, one made of its key files.
func payloadRing(p sealedPayload, now time.Time) (*keyring.Ring, error) {
	if b, ok := p.Files[ringFile]; ok {
		if len(b) > keyring.MaxSize {
			return nil, fmt.Errorf("the store's key ring is larger than %d bytes", keyring.MaxSize)
		}
		return keyring.Parse(b)
	}
	return ringOfFiles(p.Files, nil, uint64(now.Unix()), now)
}

// reloadKeys loads the system's keys from the store again and puts them
// in force: another node changed them (the feed's ChangeKeys).
func (n *Node) reloadKeys(ctx context.Context) error {
	if n.joinSecret == nil {
		return nil
	}
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	blob, _, err := n.Store.Sealed(ctx, sealedKeys, func() ([]byte, error) {
		return nil, errors.New("the system's sealed keys are gone from the store")
	})
	if err != nil {
		return err
	}
	r, err := n.loadSealed(blob)
	if err != nil {
		return err
	}
	return n.installRing(r, time.Now())
}

// SweepKeys retires the keys whose not_after is not after now: they leave
// every verification set here at once, and the ring that stores them
// (DATA, or the store) forgets their material. It returns the key IDs
// retired. The node runs it every expirySweep; tests call it with a later
// now.
func (n *Node) SweepKeys(ctx context.Context, now time.Time) ([]string, error) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	cur := n.ring.Load()
	swept, changed := cur.Sweep(now)
	if !changed {
		return nil, nil
	}
	var retired []string
	for _, k := range cur.Keys {
		if k.State == keyring.Retiring && !now.Before(k.NotAfter) {
			retired = append(retired, string(k.Kind)+" "+k.KID)
		}
	}
	r, stored, err := n.changeRing(ctx, func(r *keyring.Ring) (*keyring.Ring, error) {
		s, _ := r.Sweep(now)
		return s, nil
	})
	if err != nil {
		// Fail closed: what is past its not_after leaves this node's
		// verification sets even if the store cannot be told.
		if ierr := n.installRing(swept, now); ierr != nil {
			return nil, errors.Join(err, ierr)
		}
		return retired, fmt.Errorf("retire keys: %w (they are no longer trusted here)", err)
	}
	if err := n.installRing(r, now); err != nil {
		return nil, err
	}
	if stored {
		if _, err := n.Audit.Append(ctx, audit.Event{Type: "keys.retire", Actor: "ward", Data: jsonData(map[string]any{"keys": retired, "node": n.nodeID})}); err != nil {
			return retired, err
		}
	}
	return retired, nil
}

// sweepKeysNow is the periodic sweep's call of SweepKeys.
func (n *Node) sweepKeysNow(ctx context.Context) {
	if keys, err := n.SweepKeys(ctx, time.Now()); err != nil && ctx.Err() == nil {
		n.cfg.Logger.Warn("retiring keys", "err", err)
	} else if len(keys) > 0 {
		n.cfg.Logger.Info("retired signing keys: what they signed has expired", "keys", keys)
	}
}

// receiptSigner is api.Config.ReceiptKey.
func (n *Node) receiptSigner() *ecdsa.PrivateKey { return n.receiptKey.Load() }
