package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroup is the control group a runtime runs in: one directory under
// cgroup v2, or one per controller under v1.
type cgroup struct {
	dirs   []string // created, deepest last; removed in reverse
	limits Limits
	v2     bool
}

// newCgroup creates a cgroup named ward-NAME beside this process's own,
// with limits set, for each of the memory, pids and cpu controllers.
func newCgroup(name string, l Limits) (*cgroup, error) {
	self, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{limits: l}
	if p, ok := self[""]; ok && hasControllers("/sys/fs/cgroup", "memory", "pids") {
		cg.v2 = true
		parent := filepath.Join("/sys/fs/cgroup", p)
		// Best effort: the controllers must be enabled for children; if
		// they cannot be, writing the limits below fails and says so.
		os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
		dir := filepath.Join(parent, "ward-"+name)
		if err := cg.mkdir(dir); err != nil {
			return nil, err
		}
		sets := map[string]string{"pids.max": strconv.Itoa(l.Pids), "memory.max": strconv.FormatInt(l.Memory, 10),
			"memory.swap.max": "0"}
		if l.CPU > 0 {
			sets["cpu.max"] = fmt.Sprintf("%d 100000", int64(l.CPU*100000))
		}
		for f, v := range sets {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0); err != nil && !(f == "memory.swap.max" && errors.Is(err, os.ErrNotExist)) {
				cg.remove()
				return nil, fmt.Errorf("cgroup %s: %w", f, err)
			}
		}
		return cg, nil
	}
	type set struct{ file, value string }
	want := map[string][]set{
		"pids":   {{"pids.max", strconv.Itoa(l.Pids)}},
		"memory": {{"memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)}, {"memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10)}},
	}
	if l.CPU > 0 {
		want["cpu"] = []set{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPU*100000), 10)}}
	}
	for _, ctl := range []string{"pids", "memory", "cpu"} {
		sets, ok := want[ctl]
		if !ok {
			continue
		}
		p, ok := self[ctl]
		if !ok {
			cg.remove()
			return nil, fmt.Errorf("no %s controller", ctl)
		}
		dir := filepath.Join("/sys/fs/cgroup", ctl, p, "ward-"+name)
		if err := cg.mkdir(dir); err != nil {
			cg.remove()
			return nil, err
		}
		for _, s := range sets {
			err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0)
			if err != nil && !(s.file == "memory.memsw.limit_in_bytes" && errors.Is(err, os.ErrNotExist)) {
				cg.remove()
				return nil, fmt.Errorf("cgroup %s: %w", s.file, err)
			}
		}
	}
	return cg, nil
}

func (cg *cgroup) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	cg.dirs = append(cg.dirs, dir)
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

// remove deletes the cgroup once its processes are gone (the kernel may
// take a moment to reap them after init's death).
func (cg *cgroup) remove() error {
	var last error
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		d := cg.dirs[i]
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				last = fmt.Errorf("cgroup %s not removed: %w", d, err)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cg.dirs = nil
	return last
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
