package sandbox

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// systemDirs are shown read-only (or, where the host has a symlink, as the
// same symlink) when they exist.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcShown are the parts of the host's /etc a program needs to run: the
// dynamic linker's cache, TLS roots, name-service switches, time zones.
// Secrets (/etc/shadow, keys, credentials) are not among them.
var etcShown = []string{"alternatives", "ca-certificates", "ca-certificates.conf", "ssl/certs", "ssl/openssl.cnf", "pki/tls/certs", "pki/ca-trust", "ld.so.cache", "ld.so.conf",
	"ld.so.conf.d", "localtime", "timezone", "os-release", "debian_version", "protocols", "services",
	"mime.types", "bash.bashrc", "profile", "profile.d", "inputrc", "gai.conf", "host.conf", "python3", "python3.11",
	"environment", "terminfo", "magic", "magic.mime", "locale.alias", "locale.gen", "default"}

// nsswitch is the runtime's /etc/nsswitch.conf, not the host's: the
// runtime has no resolver and no directory service, so libc looks names up
// in the runtime's own files only. With the host's switch, every lookup of
// a remote name went to DNS (127.0.0.1:53 by default, refused and recorded
// as an attempt to leave) and, on hosts that list them, to systemd, sssd or
// LDAP sockets that are not there: noise in the program's output and the
// audit log for what is only a failed lookup. A host is reached through
// ward's egress proxy, which resolves its name; a program that sends a DNS
// query itself is still refused and recorded. (libc also tries nscd before
// the switch; its socket is under /var/run or /run, neither of which the
// runtime shows from the host.)
const nsswitch = `# ward runtime: no resolver and no directory service. Names are looked up
# in /etc/hosts, users and groups in the runtime's own /etc/passwd and
# /etc/group. Hosts are reached through ward's egress proxy (HTTP_PROXY),
# which resolves their names.
passwd:     files
group:      files
shadow:     files
gshadow:    files
hosts:      files
networks:   files
protocols:  files
services:   files
ethers:     files
rpc:        files
netgroup:   files
aliases:    files
`

// devShown are the device nodes shown in /dev.
var devShown = []string{"null", "zero", "full", "random", "urandom"}

// buildRoot makes the runtime's root file system under RUN/root, in init's
// mount namespace (which no longer propagates to the host), and returns its
// path. Scratch space (the overlay's upper layer, /tmp, $HOME) is one
// tmpfs of Limits.Disk bytes at RUN/scratch. The runtime's /proc is not
// mounted here but by stage2, in the program's own PID namespace.
//
// Every host directory shown (the system directories, parts of /etc,
// ReadOnly, the workspace) is an overlay whose lower layer is a bind of
// it at RUN/scratch/layers/N (on the scratch tmpfs, which the program
// does not see), named relative to RUN: in an overlay, a socket or a
// FIFO of the lower layer is an inode of the overlay's own, which no
// socket is bound to and no pipe is attached to, so connect(), sendto(),
// sendmsg() and sendmmsg() to a host daemon's socket fail
// (ECONNREFUSED) however the program names it (symlinks, a path it
// rewrites in memory while the kernel reads it), and its mount table
// shows "lowerdir=scratch/layers/N", not the host's path.
func buildRoot(spec *initSpec) (string, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("make mounts private: %w", err)
	}
	// Overlay layers are named relative to the run directory.
	if err := os.Chdir(spec.RunDir); err != nil {
		return "", err
	}
	scratch := filepath.Join(spec.RunDir, "scratch")
	root := filepath.Join(spec.RunDir, "root")
	for _, d := range []string{scratch, root} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
		"mode=0700,size="+strconv.FormatInt(spec.Limits.Disk, 10)); err != nil {
		return "", fmt.Errorf("scratch tmpfs: %w", err)
	}
	for _, d := range []string{"upper", "work", "tmp", "home", "shm", "run", "empty", "layers"} {
		mode := os.FileMode(0o755)
		if d == "tmp" || d == "shm" {
			mode = 0o1777
		}
		if err := os.Mkdir(filepath.Join(scratch, d), mode); err != nil {
			return "", err
		}
		os.Chmod(filepath.Join(scratch, d), mode)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=16m"); err != nil {
		return "", fmt.Errorf("root tmpfs: %w", err)
	}
	for _, d := range []string{"etc", "dev", "proc", "tmp", "workspace", "home", "home/agent", "run", "run/ward"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	b := &shower{root: root}
	for _, d := range systemDirs {
		if err := b.show(d, d, false); err != nil {
			return "", err
		}
	}
	// Parents before what they hold, each once.
	ro := slices.Clone(spec.ReadOnly)
	slices.SortFunc(ro, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	for _, p := range slices.Compact(ro) {
		if err := b.show(p, p, true); err != nil {
			return "", fmt.Errorf("read-only path %s: %w", p, err)
		}
	}
	for _, name := range etcShown {
		p := filepath.Join("/etc", name)
		if err := b.show(p, p, false); err != nil {
			return "", err
		}
	}
	// Files of the runtime's own, not the host's.
	own := map[string]string{
		"etc/hostname":      spec.Hostname + "\n",
		"etc/hosts":         "127.0.0.1\tlocalhost " + spec.Hostname + "\n::1\tlocalhost\n",
		"etc/resolv.conf":   "# ward runtime: no resolver. Names are resolved by ward's egress proxy (HTTP_PROXY).\n",
		"etc/passwd":        "root:x:0:0:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"etc/nsswitch.conf": nsswitch,
	}
	for name, content := range own {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	// /run/ward: files ward gives the program, read-only.
	names := make([]string, 0, len(spec.Files))
	for n := range spec.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(scratch, "run", n), spec.Files[n], 0o644); err != nil {
			return "", err
		}
	}
	if err := bindReadOnly(filepath.Join(scratch, "run"), filepath.Join(root, "run/ward")); err != nil {
		return "", err
	}
	if err := buildDev(root, scratch); err != nil {
		return "", err
	}
	for _, b := range [][2]string{{"tmp", "tmp"}, {"home", "home/agent"}} {
		if err := unix.Mount(filepath.Join(scratch, b[0]), filepath.Join(root, b[1]), "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("bind %s: %w", b[1], err)
		}
	}
	lower := "scratch/empty"
	if spec.Workspace != "" {
		lower = filepath.Join("scratch", "layers", "workspace")
		if err := os.Mkdir(lower, 0o700); err != nil {
			return "", err
		}
		if err := unix.Mount(spec.Workspace, lower, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("workspace: %w", err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=scratch/upper,workdir=scratch/work"
	if err := mountOverlay(filepath.Join(root, "workspace"), opts, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return "", fmt.Errorf("workspace overlay: %w", err)
	}
	// The skeleton itself is read-only: the program writes only to the
	// workspace, /tmp, $HOME and /dev/shm.
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return "", fmt.Errorf("remount root read-only: %w", err)
	}
	return root, nil
}

// mountOverlay mounts an overlay on dst, with user.overlay.* xattrs
// (userxattr, which a user namespace needs) where the kernel takes them.
func mountOverlay(dst, opts string, flags uintptr) error {
	err := unix.Mount("overlay", dst, "overlay", flags, opts+",userxattr")
	if err != nil {
		if err2 := unix.Mount("overlay", dst, "overlay", flags, opts); err2 == nil {
			return nil
		}
	}
	return err
}

// shower shows host paths in the root being built.
type shower struct {
	root   string
	layers int // RUN/scratch/layers/N made so far
}

// show makes host path src visible at dst (both absolute; dst inside the
// runtime's root): a symlink as the same symlink, a directory as a
// read-only overlay of it, a regular file as a read-only bind mount. A
// missing src, or one of another type (a socket, a FIFO, a device), is
// not shown, and is an error if required.
func (b *shower) show(src, dst string, required bool) error {
	dst = filepath.Join(b.root, dst)
	fi, err := os.Lstat(src)
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		return b.dir(src, dst)
	case fi.Mode().IsRegular():
		return showFile(src, dst)
	case required:
		return fmt.Errorf("%s is a %s: only directories and regular files are shown", src, kindOf(fi.Mode()))
	}
	return nil
}

// dir shows the host directory src at dst as an overlay whose only
// non-empty layer is src (an overlay needs two lower layers when it has
// no upper one; the other is an empty directory of scratch).
func (b *shower) dir(src, dst string) error {
	b.layers++
	layer := filepath.Join("scratch", "layers", strconv.Itoa(b.layers))
	if err := os.Mkdir(layer, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(src, layer, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(layer, &st); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if st.Flags&unix.ST_NOEXEC != 0 {
		flags |= unix.MS_NOEXEC
	}
	if err := mountOverlay(dst, "lowerdir="+layer+":scratch/empty", flags); err != nil {
		return fmt.Errorf("overlay of %s: %w", src, err)
	}
	return nil
}

// showFile bind-mounts the host file src on dst, read-only, and checks
// that what got mounted is a regular file: src may have been replaced
// since it was looked at.
func showFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Unmount(dst, unix.MNT_DETACH)
		return fmt.Errorf("%s is no longer a regular file: not shown", src)
	}
	return remountReadOnly(src, dst)
}

// bindReadOnly bind-mounts src on dst and makes the mount read-only,
// nosuid and nodev. In a user namespace, a remount must keep the flags the
// source mount has locked, so they are read and kept.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return remountReadOnly(src, dst)
}

// remountReadOnly makes the bind mount at dst (of src) read-only, nosuid
// and nodev, keeping the flags its source has locked.
func remountReadOnly(src, dst string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	for _, f := range [][2]int64{{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME}} {
		if st.Flags&f[0] != 0 {
			flags |= uintptr(f[1])
		}
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", src, err)
	}
	return nil
}

// buildDev makes a minimal /dev: a few host device nodes, bound (a user
// namespace cannot create them), /dev/shm on scratch, and the usual links.
func buildDev(root, scratch string) error {
	dev := filepath.Join(root, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("/dev tmpfs: %w", err)
	}
	for _, n := range devShown {
		src := filepath.Join("/dev", n)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(dev, n)
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	for link, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o1777); err != nil {
		return err
	}
	if err := unix.Mount(filepath.Join(scratch, "shm"), filepath.Join(dev, "shm"), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/shm: %w", err)
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}
