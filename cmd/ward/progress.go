package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressEvery is how often a progress line is redrawn.
const progressEvery = 200 * time.Millisecond

// progress is one line on standard error, rewritten in place while a long
// operation runs (ward audit verify, export, prove, …, ward replay DIR) and
// erased when it ends. It is shown only when standard error is a terminal
// and the output is not -o json, so that nothing a script reads ever holds
// it. A nil *progress does nothing.
type progress struct {
	label  string
	status func() string
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// startProgress starts showing label and, at every redraw, what status
// says (it may return "" when it knows nothing).
func startProgress(label, out string, status func() string) *progress {
	if out == "json" || !isTerminal(os.Stderr) {
		return nil
	}
	p := &progress{label: label, status: status, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	p.draw()
	go func() {
		defer close(p.done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	line := p.label + ": "
	if s := p.status(); s != "" {
		line += s + " "
	}
	line += time.Since(p.start).Round(time.Second).String()
	if ws, err := unix.IoctlGetWinsize(int(os.Stderr.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 1 && len(line) >= int(ws.Col) {
		line = line[:int(ws.Col)-1]
	}
	fmt.Fprint(os.Stderr, "\r\033[K"+line)
}

// Stop erases the line; later calls do nothing.
func (p *progress) Stop() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		fmt.Fprint(os.Stderr, "\r\033[K")
	})
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// openFile finds a file this process has open whose path match accepts,
// and returns its path, how far into it the process has read, and its
// size. It reads /proc/self: where there is none, it finds nothing.
func openFile(match func(string) bool) (path string, pos, size int64, ok bool) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return "", 0, 0, false
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !match(target) {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, found := strings.CutPrefix(line, "pos:"); found {
				pos, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		st, err := os.Stat(target)
		if err != nil {
			continue
		}
		return target, pos, st.Size(), true
	}
	return "", 0, 0, false
}

// readingLog reports how far the audit log in dir has been read.
func readingLog(dir string) func() string {
	entries, _ := filepath.Abs(filepath.Join(dir, "entries"))
	if r, err := filepath.EvalSymlinks(entries); err == nil {
		entries = r
	}
	total := int64(0)
	if st, err := os.Stat(entries); err == nil {
		total = st.Size()
	}
	return func() string {
		_, pos, size, ok := openFile(func(p string) bool { return p == entries })
		if !ok || size == 0 {
			return fmt.Sprintf("the log (%s)", mb(total))
		}
		return fmt.Sprintf("reading the log: %s of %s (%d%%)", mb(pos), mb(size), pos*100/size)
	}
}

// replayingDir reports which of the traces in dir is being replayed.
func replayingDir(dir string) func() string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	return replaying(names)
}

// replaying reports which of the traces named is being replayed, and how
// far.
func replaying(names []string) func() string {
	abs := map[string]int{}
	for i, n := range names {
		if a, err := filepath.Abs(n); err == nil {
			if r, err := filepath.EvalSymlinks(a); err == nil {
				a = r
			}
			abs[a] = i
		}
	}
	return func() string {
		path, pos, size, ok := openFile(func(p string) bool { _, found := abs[p]; return found })
		if !ok {
			return fmt.Sprintf("%d traces", len(names))
		}
		pct := int64(100)
		if size > 0 {
			pct = pos * 100 / size
		}
		return fmt.Sprintf("trace %d of %d (%s, %d%%)", abs[path]+1, len(names), filepath.Base(path), pct)
	}
}

// mb formats a byte count.
func mb(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
