package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds a node's start: from exec to /healthz ready.
const startTimeout = 90 * time.Second

// node is one `ward up` process of a data directory, started again after
// every kill on the same address, and the ward CLI run against it.
type node struct {
	bin    string // the ward binary
	dir    string // the scenario's directory: config, CLI home
	data   string // the node's data directory
	config string // ward.yaml
	addr   string // 127.0.0.1:PORT, the same across restarts
	env    []string

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited
	logs   *tailBuffer   // the node's stderr, its last lines
	hc     *http.Client  // trusts the node's CA, once known
	starts int
	said   string // what the last start printed on its standard output
}

// newNode prepares a node: its data directory and address, and the CLI's
// environment (WARD_HOME in dir, no WARD_* from the caller's).
func newNode(bin, dir, data, config string) (*node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &node{bin: bin, dir: dir, data: data, config: config, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARD_") {
			n.env = append(n.env, kv)
		}
	}
	n.env = append(n.env, "WARD_HOME="+filepath.Join(dir, "home"))
	return n, nil
}

// freePort finds a loopback port nobody listens on, below the kernel's
// ephemeral range where it can: the node gives its port up at every kill,
// and a port the kernel hands out for ":0" could be taken meanwhile by
// another process (another test) before the node starts again.
func freePort() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low > 12000 {
		for range 50 {
			port := 10000 + rand.IntN(low-12000)
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				ln.Close()
				return port, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// url is the node's base URL.
func (n *node) url() string { return "https://" + n.addr }

// start runs `ward up` and waits until it serves and /healthz says ready.
// On the first start it takes in the admin credential the node prints. A
// node that exits instead is an error holding what it said.
func (n *node) start(ctx context.Context, extra ...string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cmd := exec.Command(n.bin, n.upArgs(extra...)...)
	cmd.Dir, cmd.Env = n.dir, n.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	n.logs = &tailBuffer{max: 64 << 10}
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ward up: %w", err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	n.starts++
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
			}
		}
		close(lines)
		cmd.Wait()
		close(n.exited)
	}()
	var said strings.Builder
	n.said = ""
	for up := false; !up; {
		select {
		case line, ok := <-lines:
			if !ok {
				<-n.exited
				return fmt.Errorf("ward up exited (%v) before serving:\n%s%s", cmd.ProcessState, said.String(), n.logs.String())
			}
			said.WriteString(line + "\n")
			if f, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
				for _, kv := range strings.Fields(f) {
					if strings.HasPrefix(kv, "WARD_") {
						n.env = append(n.env, kv)
					}
				}
			}
			n.said = said.String()
			up = strings.Contains(line, "Ctrl-C stops")
		case <-ctx.Done():
			n.kill()
			return fmt.Errorf("ward up did not serve within %v:\n%s%s", startTimeout, said.String(), n.logs.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	if n.hc == nil {
		pem, err := os.ReadFile(filepath.Join(n.data, "bundle.pem"))
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("the node's bundle.pem holds no certificate")
		}
		n.hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	for {
		code, body, err := n.health()
		if err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("ward up exited (%v) before it was ready:\n%s", cmd.ProcessState, n.logs.String())
		case <-ctx.Done():
			return fmt.Errorf("the node was not ready within %v: /healthz %d %s %v", startTimeout, code, body, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// upArgs are the arguments of `ward up` for this node.
func (n *node) upArgs(extra ...string) []string {
	args := append([]string{"up", "--data", n.data, "--addr", n.addr}, extra...)
	if n.config != "" {
		args = append(args, "--config", n.config)
	}
	return args
}

// killDuringStart starts `ward up` and kills it with SIGKILL after the
// given time, whatever it is doing then (opening the log, checking the
// store against it, restoring budgets, recording its start).
func (n *node) killDuringStart(after time.Duration) error {
	cmd := exec.Command(n.bin, n.upArgs()...)
	cmd.Dir, cmd.Env = n.dir, n.env
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ward up: %w", err)
	}
	time.Sleep(after)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return nil
}

// health asks /healthz (readiness).
func (n *node) health() (int, string, error) {
	resp, err := n.hc.Get(n.url() + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// running reports whether the node's process has not exited.
func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill ends the node with SIGKILL, as a crash or the OOM killer would, and
// waits until it is gone.
func (n *node) kill() {
	if n.running() {
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

// stop ends the node with SIGTERM, as an operator would, and waits; after
// a minute it is killed.
func (n *node) stop() {
	if !n.running() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(time.Minute):
		n.kill()
	}
}

// ward runs the ward CLI against the node and returns its standard output;
// a non-zero exit is an error holding what it said.
func (n *node) ward(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Dir, cmd.Env = n.dir, n.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ward %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
