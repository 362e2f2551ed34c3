package audit

import (
	"os"
	"syscall"
)

// datasync flushes a file whose size does not change (the head file):
// fdatasync skips the inode's timestamps.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
