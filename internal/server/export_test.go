package server

// IgnoreNotifications makes a node of several ignore the change feed's
// notifications, so that only its poll finds changes.
func (n *Node) IgnoreNotifications() { n.feed.deaf.Store(true) }

// PauseFeed stops or resumes a node of several following the change feed.
func (n *Node) PauseFeed(paused bool) { n.feed.paused.Store(paused) }
