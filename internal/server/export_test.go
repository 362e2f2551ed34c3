package server

import "context"

// IgnoreNotifications makes a node of several ignore the change feed's
// notifications, so that only its poll finds changes.
func (n *Node) IgnoreNotifications() { n.feed.deaf.Store(true) }

// PauseFeed stops or resumes a node of several following the change feed.
func (n *Node) PauseFeed(paused bool) { n.feed.paused.Store(paused) }

// SealWithoutRing rewrites the system's sealed keys without the key
// ring, as a system sealed before rotation existed holds them.
func (n *Node) SealWithoutRing(ctx context.Context) error {
	_, _, err := n.Store.UpdateSealed(ctx, sealedKeys, func(old []byte) ([]byte, error) {
		p, err := unseal(n.joinSecret, old)
		if err != nil {
			return nil, err
		}
		delete(p.Files, ringFile)
		return seal(n.joinSecret, p)
	})
	return err
}
