package audit

import (
	"errors"
	"os"
	"syscall"
)

// datasync flushes a file whose size does not change (the head file):
// fdatasync skips the inode's timestamps.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// preallocate gives f size bytes of zeros that are allocated on disk, so
// that later writes inside it need no new space (a session table is
// updated after its batch is acknowledged). Where the file system cannot,
// the file is extended sparsely.
func preallocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}

// freeSpace is how many bytes this process may still write on the file
// system of path: the blocks reserved for root count when it is root.
func freeSpace(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	blocks := st.Bavail
	if syscall.Geteuid() == 0 {
		blocks = st.Bfree
	}
	return blocks * uint64(st.Bsize), nil
}
