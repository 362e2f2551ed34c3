//go:build !linux

package sessioncred

import "net"

// hasPeerCredentials: peer credentials are implemented on Linux only.
const hasPeerCredentials = false

func peerUID(net.Conn) (uint32, error) { return 0, errNoPeerCredentials }
