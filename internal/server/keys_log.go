package server

import (
	"context"
	"time"

	"github.com/ward-dev/ward/internal/keyring"
)

// logKeyKind is the kind `ward keys rotate --kind log` names: the audit
// log's checkpoint (note) key, which is each node's own and not in the
// key ring.
const logKeyKind = "log"

// rotateLogKey rotates the audit log's checkpoint key (RotateLogKey,
// logkeys.go): it starts an overlap in which both keys sign, or, during
// one, ends it if that is safe. The view is of the newest key, which
// signs from now on.
func (n *Node) rotateLogKey(ctx context.Context, by string) (keyring.View, error) {
	st, err := n.RotateLogKey(ctx, by)
	if err != nil {
		return keyring.View{}, err
	}
	newest := st.Key
	if st.Next != "" {
		newest = st.Next
	}
	return keyring.View{Kind: logKeyKind, KID: keyName(newest), State: keyring.Active, Created: time.Now().UTC()}, nil
}
