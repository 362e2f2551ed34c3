//go:build !unix

package audit

import "os"

// lockDir creates the lock file. Without flock(2) it cannot exclude other
// processes; ward's supported platforms are unix.
func lockDir(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return f.Close, nil
}
