//go:build linux

package doctor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelChecks checks what `ward run` needs of the kernel: user and mount
// namespaces (the boundary), overlayfs (change capture), cgroup v2
// (limits), Landlock and seccomp (confinement on top).
func kernelChecks() []Result {
	var out []Result
	readInt := func(p string) (int, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		return n, err == nil
	}
	switch n, ok := readInt("/proc/sys/user/max_user_namespaces"); {
	case ok && n == 0:
		out = append(out, Result{"user namespaces", Fail, "user.max_user_namespaces is 0: ward run cannot start its sandbox",
			"sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d to keep it)"})
	case os.Getuid() != 0 && func() bool { v, ok := readInt("/proc/sys/kernel/unprivileged_userns_clone"); return ok && v == 0 }():
		out = append(out, Result{"user namespaces", Fail, "kernel.unprivileged_userns_clone is 0: ward run as a user cannot make its sandbox",
			"sysctl -w kernel.unprivileged_userns_clone=1, or run ward as root"})
	case os.Getuid() != 0 && func() bool {
		v, ok := readInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
		return ok && v == 1
	}():
		out = append(out, Result{"user namespaces", Warn, "AppArmor restricts unprivileged user namespaces: ward run may be refused its sandbox",
			"sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give ward an AppArmor profile with userns"})
	default:
		out = append(out, Result{"user namespaces", OK, "available", ""})
	}
	if fsys, err := os.ReadFile("/proc/filesystems"); err == nil && !hasFS(fsys, "overlay") {
		out = append(out, Result{"overlayfs", Warn, "overlay is not in /proc/filesystems: ward run cannot capture a program's changes for review",
			"modprobe overlay (and add it to /etc/modules-load.d)"})
	} else if err == nil {
		out = append(out, Result{"overlayfs", OK, "available", ""})
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		out = append(out, Result{"cgroup v2", Warn, "no unified cgroup hierarchy at /sys/fs/cgroup: ward run cannot bound a program's memory and processes",
			"boot with systemd.unified_cgroup_hierarchy=1 (the default on current distributions)"})
	} else {
		out = append(out, Result{"cgroup v2", OK, "mounted at /sys/fs/cgroup", ""})
	}
	if abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); errno != 0 || abi == 0 {
		out = append(out, Result{"landlock", Warn, "Landlock is not enabled: ward run confines programs by namespaces and mounts only",
			"use a kernel of 5.13 or later with lsm=landlock in its command line"})
	} else {
		out = append(out, Result{"landlock", OK, fmt.Sprintf("ABI %d", abi), ""})
	}
	if seccomp, ok := statusField("Seccomp"); ok {
		out = append(out, Result{"seccomp", OK, "available (this process: mode " + seccomp + ")", ""})
	} else {
		out = append(out, Result{"seccomp", Warn, "the kernel reports no seccomp support: ward run cannot observe a program's system calls",
			"use a kernel built with CONFIG_SECCOMP_FILTER"})
	}
	return out
}

func hasFS(list []byte, name string) bool {
	s := bufio.NewScanner(bytes.NewReader(list))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

// statusField reads a field of /proc/self/status.
func statusField(name string) (string, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// clockSync asks the kernel whether the clock is synchronized (NTP).
func clockSync() (Result, bool) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Result{}, false
	}
	if state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0 {
		return Result{"clock", Warn, "the kernel reports the clock unsynchronized: certificates, grants and approvals expire by it",
			"enable time synchronization (chrony, systemd-timesyncd: timedatectl set-ntp true)"}, true
	}
	return Result{"clock", OK, "synchronized", ""}, true
}
