package server

// IgnoreNotifications makes a node of several ignore the change feed's
// notifications, so that only its poll finds changes.
func (n *Node) IgnoreNotifications() { n.feed.deaf.Store(true) }
