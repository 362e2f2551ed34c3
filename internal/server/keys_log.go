package server

import (
	"context"
	"fmt"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/keyring"
)

// logKeyKind is the kind `ward keys rotate --kind log` names: the audit
// log's checkpoint (note) key, which is each node's own and not in the
// key ring.
const logKeyKind = "log"

// rotateLogKey rotates the audit log's checkpoint key. It is the hook for
// that rotation (which belongs with the log and its witnesses); until it
// is built it refuses, saying so.
func (n *Node) rotateLogKey(ctx context.Context, by string) (keyring.View, error) {
	return keyring.View{}, fmt.Errorf("%w: this node cannot rotate the audit log's checkpoint key (kind log) yet; it rotates ca, jwt, grant and receipt", authority.ErrInvalid)
}
