package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// maxVerifiedChains bounds the X.509-SVID chains VerifyX509SVID remembers
// as verified; when it is reached the memory starts again (empty).
const maxVerifiedChains = 4096

// verifiedChains remembers chains VerifyX509SVID verified, so that the
// requests of one mutually authenticated connection (every one presents
// the same chain) cost a hash, not a chain verification with its ECDSA
// signature check. A chain verifies against the CA's bundle, which never
// changes, and the time, so what is remembered is its SPIFFE ID and the
// window in which every certificate of the chain is valid; outside it
// the chain is verified again (and refused). Only successes are
// remembered. The zero value is empty and ready.
type verifiedChains struct {
	mu     sync.Mutex
	chains map[[sha256.Size]byte]verifiedChain
}

type verifiedChain struct {
	id                  spiffeid.ID
	notBefore, notAfter time.Time
}

// chainKey is SHA-256 over the chain's certificates, each length-prefixed.
func chainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, c := range chain {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// lookup returns the ID of a chain verified before whose window holds now.
func (v *verifiedChains) lookup(k [sha256.Size]byte, now time.Time) (spiffeid.ID, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.chains[k]
	if !ok || now.Before(c.notBefore) || now.After(c.notAfter) {
		return spiffeid.ID{}, false
	}
	return c.id, true
}

// remember records a chain that verified as id.
func (v *verifiedChains) remember(k [sha256.Size]byte, chain []*x509.Certificate, id spiffeid.ID) {
	c := verifiedChain{id: id}
	for i, cert := range chain {
		if i == 0 || cert.NotBefore.After(c.notBefore) {
			c.notBefore = cert.NotBefore
		}
		if i == 0 || cert.NotAfter.Before(c.notAfter) {
			c.notAfter = cert.NotAfter
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.chains == nil || len(v.chains) >= maxVerifiedChains {
		v.chains = make(map[[sha256.Size]byte]verifiedChain)
	}
	v.chains[k] = c
}
