package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup is the control group a runtime runs in: one directory under
// cgroup v2, or one per controller under v1.
type cgroup struct {
	dirs   []string // in creation order; removed in reverse
	memory string   // the directory with the memory controller
	pids   string   // the directory with the pids controller
	limits Limits
	v2     bool
	sets   map[string][]cgroupSet // directory → limits to write there
}

type cgroupSet struct{ file, value string }

// cgroupName is a fresh name for a runtime's cgroup: random, so that one
// a killed runtime left behind is never in the way of a new one.
func cgroupName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "ward-" + hex.EncodeToString(b)
}

// isCgroupName reports whether base is a name cgroupName makes.
func isCgroupName(base string) bool {
	h, ok := strings.CutPrefix(base, "ward-")
	if !ok || len(h) != 16 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// planCgroup works out where a cgroup named name goes, beside this
// process's own, with the memory, pids and cpu controllers, and what
// limits it gets; create makes it.
func planCgroup(name string, l Limits) (*cgroup, error) {
	self, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{limits: l, sets: map[string][]cgroupSet{}}
	if p, ok := self[""]; ok && hasControllers("/sys/fs/cgroup", "memory", "pids") {
		cg.v2 = true
		dir := filepath.Join("/sys/fs/cgroup", p, name)
		cg.dirs, cg.memory, cg.pids = []string{dir}, dir, dir
		sets := []cgroupSet{{"pids.max", strconv.Itoa(l.Pids)}, {"memory.max", strconv.FormatInt(l.Memory, 10)},
			{"memory.swap.max", "0"}}
		if l.CPU > 0 {
			sets = append(sets, cgroupSet{"cpu.max", fmt.Sprintf("%d 100000", int64(l.CPU*100000))})
		}
		cg.sets[dir] = sets
		return cg, nil
	}
	want := map[string][]cgroupSet{
		"pids":   {{"pids.max", strconv.Itoa(l.Pids)}},
		"memory": {{"memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)}, {"memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10)}},
	}
	if l.CPU > 0 {
		want["cpu"] = []cgroupSet{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPU*100000), 10)}}
	}
	for _, ctl := range []string{"pids", "memory", "cpu"} {
		sets, ok := want[ctl]
		if !ok {
			continue
		}
		p, ok := self[ctl]
		if !ok {
			return nil, fmt.Errorf("no %s controller", ctl)
		}
		dir := filepath.Join("/sys/fs/cgroup", ctl, p, name)
		cg.dirs = append(cg.dirs, dir)
		cg.sets[dir] = sets
		switch ctl {
		case "pids":
			cg.pids = dir
		case "memory":
			cg.memory = dir
		}
	}
	return cg, nil
}

// create makes the planned directories and sets the limits; on failure it
// removes what it made.
func (cg *cgroup) create() error {
	if cg.v2 {
		// Best effort: the controllers must be enabled for children; if
		// they cannot be, writing the limits below fails and says so.
		os.WriteFile(filepath.Join(filepath.Dir(cg.dirs[0]), "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
	}
	made := 0
	fail := func(err error) error {
		(&cgroup{dirs: cg.dirs[:made]}).remove()
		return err
	}
	for _, dir := range cg.dirs {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fail(fmt.Errorf("cgroup: %w", err))
		}
		made++
		for _, s := range cg.sets[dir] {
			err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0)
			optional := s.file == "memory.swap.max" || s.file == "memory.memsw.limit_in_bytes"
			if err != nil && !(optional && errors.Is(err, os.ErrNotExist)) {
				return fail(fmt.Errorf("cgroup %s: %w", s.file, err))
			}
		}
	}
	return nil
}

// add moves a process into the cgroup; its children follow.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
	}
	return nil
}

func (cg *cgroup) describe() string {
	v := "v1"
	if cg.v2 {
		v = "v2"
	}
	cpu := "no CPU limit"
	if cg.limits.CPU > 0 {
		cpu = fmt.Sprintf("%.2f CPUs", cg.limits.CPU)
	}
	return fmt.Sprintf("limits: cgroup %s: %d MiB memory, %d processes, %s", v, cg.limits.Memory>>20, cg.limits.Pids, cpu)
}

// hits says which limits the runtime ran into, from the kernel's counts:
// processes the OOM killer ended (v2 memory.events, v1
// memory.oom_control: oom_kill) and processes or threads that could not
// be started (pids.events: max, in both versions).
func (cg *cgroup) hits() []string {
	var out []string
	memFile := "memory.oom_control"
	if cg.v2 {
		memFile = "memory.events"
	}
	if n := counter(filepath.Join(cg.memory, memFile), "oom_kill"); n > 0 {
		out = append(out, fmt.Sprintf("memory: out of memory: the kernel killed %d %s at the limit of %d MiB (--memory)",
			n, plural(n, "process"), cg.limits.Memory>>20))
	}
	if n := counter(filepath.Join(cg.pids, "pids.events"), "max"); n > 0 {
		out = append(out, fmt.Sprintf("processes: %d %s to start a process or thread failed at the limit of %d (--pids)",
			n, plural(n, "attempt"), cg.limits.Pids))
	}
	return out
}

func plural(n int64, word string) string {
	switch {
	case n == 1:
		return word
	case strings.HasSuffix(word, "s"):
		return word + "es"
	}
	return word + "s"
}

// counter reads the value of key from a flat-keyed cgroup file ("key N"
// per line), 0 if it has none.
func counter(file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup once its processes are gone (the kernel may
// take a moment to reap them after init's death). Processes still in it
// after a second are killed: they can only be the runtime's.
func (cg *cgroup) remove() error {
	var last error
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		d := cg.dirs[i]
		start := time.Now()
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Since(start) > 5*time.Second {
				last = fmt.Errorf("cgroup %s not removed: %w", d, err)
				break
			}
			if time.Since(start) > time.Second {
				killAll(d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cg.dirs = nil
	return last
}

// killAll kills the processes of the cgroup directory d.
func killAll(d string) {
	b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// selfCgroups reads /proc/self/cgroup: controller → path ("" for v2).
func selfCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// hasControllers reports whether a v2 hierarchy at root offers all of cs.
func hasControllers(root string, cs ...string) bool {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(b))
	for _, c := range cs {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			return false
		}
	}
	return true
}
