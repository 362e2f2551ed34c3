package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// The container image, built and run for real: a Docker daemon of the
// test's own, `make image`, and the example deployment's three nodes
// (examples/deploy: compose.yaml with compose.host.yaml) run by
// docker-compose on the machine's PostgreSQL, as its README walks
// through.

// dockerStartLimit bounds the daemon's start, and nodeStartLimit a node's
// from `up` to /healthz 200 (generous: CI shares two cores); they bound
// waits, they are not what is tested.
const (
	dockerStartLimit = 60 * time.Second
	nodeStartLimit   = 90 * time.Second
	// propagationLimit bounds the wait for a session ended on one node to
	// be refused on the others (the design says 1 s; the wait is longer
	// so a slow machine does not fail the test, which checks that it
	// happens).
	propagationLimit = 15 * time.Second
)

// dockerEnv is the environment of the docker and docker-compose commands
// a test runs: its own daemon's socket.
type dockerEnv struct {
	t   *testing.T
	env []string
}

// run runs name args in dir with the daemon's environment (plus extra),
// and returns its combined output, failing t when it fails.
func (d *dockerEnv) run(dir string, extra []string, name string, args ...string) string {
	d.t.Helper()
	out, err := d.try(dir, extra, name, args...)
	if err != nil {
		d.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try is run without failing: the output and the error.
func (d *dockerEnv) try(dir string, extra []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(append(os.Environ(), d.env...), extra...)
	var b bytes.Buffer
	c.Stdout, c.Stderr = &b, &b
	err := c.Run()
	return b.String(), err
}

// startDocker starts a Docker daemon of the test's own: its data, state
// and socket in a temporary directory, no bridge and no iptables rules
// (the containers use the host's network), its containerd namespace its
// own, so it touches nothing of another daemon's. It needs root and
// Debian's docker.io and docker-compose (make deps installs them): where
// they are missing the test is skipped, loudly, unless
// WARD_REQUIRE_DOCKER is set (make test sets it), and then it fails.
func startDocker(t *testing.T) *dockerEnv {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root (to run a Docker daemon of its own)"
	}
	for _, bin := range []string{"dockerd", "docker", "docker-compose"} {
		if _, err := exec.LookPath(bin); err != nil && missing == "" {
			missing = bin + " (Debian: apt-get install docker.io docker-compose; make deps does)"
		}
	}
	if missing != "" {
		if os.Getenv("WARD_REQUIRE_DOCKER") != "" {
			t.Fatalf("the container image cannot be tested without %s", missing)
		}
		t.Skipf("SKIPPED, the container image is NOT tested: it needs %s; make test runs it", missing)
	}
	// A short path: the daemon's sockets live under it.
	dir, err := os.MkdirTemp("", "ward-docker-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	ns := filepath.Base(dir)
	cmd := exec.Command("dockerd",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "--host", "unix://"+sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--containerd-namespace", ns, "--containerd-plugins-namespace", ns+"-plugins")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Log("dockerd did not stop within 30 s of SIGTERM: killing its process group")
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("dockerd's log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
		// dockerd leaves its default network namespace's bind mount
		// (exec-root/netns/default) mounted when it exits.
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing the daemon's directory: %v", err)
		}
	})
	d := &dockerEnv{t: t, env: []string{"DOCKER_HOST=unix://" + sock}}
	deadline := time.Now().Add(dockerStartLimit)
	for {
		out, err := d.try("", nil, "docker", "version", "--format", "{{.Server.Version}}")
		if err == nil {
			t.Logf("Docker daemon %s on %s", strings.TrimSpace(out), sock)
			return d
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited: %v\n%s", err, tail(b, 4096))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within %v: %s", dockerStartLimit, out)
		}
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("unmounting under %s: %v", dir, err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...; the mount point has
		// spaces escaped as \040.
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor calls ok until it returns true or limit passes; false then.
func waitFor(limit time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
	return true
}

// TestImage builds the image with `make image` on a Docker daemon of its
// own and runs examples/deploy's three nodes with docker-compose
// (compose.yaml and compose.host.yaml) on the machine's PostgreSQL, in a
// schema of the test's own, following examples/deploy/README.md: the
// first node creates the system and prints the admin credential; its join
// token, copied out and given to nonroot, lets the other two join; every
// node answers /healthz from the host over loopback, and Docker's health
// check (ward health) in its container, as nonroot on a volume of its
// own; a session started on node 1 is listed by node 3 and served by node
// 2 (a tool call goes through), ended on node 2, and then refused by
// nodes 1 and 3 (a tool call too); and ward audit nodes, run in a
// container, lists the three nodes' signed logs.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the container image (-short)")
	}
	dsn, schema, ok := testPGSchema(t)
	if !ok {
		if os.Getenv("WARD_REQUIRE_POSTGRES") != "" {
			t.Fatal("PostgreSQL test server unreachable")
		}
		t.Skip("PostgreSQL test server unreachable")
	}
	d := startDocker(t)
	root := repoRoot()
	image := "ward:image-test"

	// make image: the binary, the staged root filesystem, docker build.
	d.run(root, nil, "make", "--no-print-directory", "image", "IMAGE="+image, "VERSION=image-test")
	// The binary runs in an image that has no C library or loader: static.
	if out := d.run("", nil, "docker", "run", "--rm", "--network", "none", image, "version"); strings.TrimSpace(out) != "ward image-test" {
		t.Fatalf("ward version in the image: %q", out)
	}
	var inspect []struct {
		Config struct {
			User       string
			Entrypoint []string
			Cmd        []string
			Volumes    map[string]any
			Env        []string
			// Healthcheck.Test is CMD followed by the command.
			Healthcheck struct{ Test []string }
		}
	}
	if err := json.Unmarshal([]byte(d.run("", nil, "docker", "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	cfg := inspect[0].Config
	if _, ok := cfg.Volumes["/var/lib/ward"]; cfg.User != "65532:65532" || !ok ||
		strings.Join(cfg.Entrypoint, " ") != "/usr/local/bin/ward" || strings.Join(cfg.Cmd, " ") != "up --data /var/lib/ward --addr 0.0.0.0:8443" {
		t.Fatalf("the image's user %q, volumes %v, entrypoint %v, cmd %v", cfg.User, cfg.Volumes, cfg.Entrypoint, cfg.Cmd)
	}
	if strings.Join(cfg.Healthcheck.Test, " ") != "CMD /usr/local/bin/ward health" || !slices.Contains(cfg.Env, "WARD_CA=/var/lib/ward/bundle.pem") {
		t.Fatalf("the image's health check %v, environment %v", cfg.Healthcheck.Test, cfg.Env)
	}

	// The image holds what the Dockerfile lists, root's but for nonroot's
	// data directory and home, and nothing else (Docker adds the
	// container's own entries to an export: left out).
	var files []string
	for _, h := range exportImage(t, d, image) {
		switch strings.TrimSuffix(h.Name, "/") {
		case ".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "proc", "sys", "etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf":
			continue
		}
		files = append(files, fmt.Sprintf("%s %d:%d %v", h.Name, h.Uid, h.Gid, h.FileInfo().Mode()))
	}
	wantFiles := []string{
		"etc/ 0:0 drwxr-xr-x", "etc/group 0:0 -rw-r--r--", "etc/nsswitch.conf 0:0 -rw-r--r--", "etc/passwd 0:0 -rw-r--r--",
		"etc/ssl/ 0:0 drwxr-xr-x", "etc/ssl/certs/ 0:0 drwxr-xr-x", "etc/ssl/certs/ca-certificates.crt 0:0 -rw-r--r--",
		"home/ 0:0 drwxr-xr-x", "home/nonroot/ 65532:65532 drwx------", "tmp/ 0:0 dtrwxrwxrwx",
		"usr/ 0:0 drwxr-xr-x", "usr/local/ 0:0 drwxr-xr-x", "usr/local/bin/ 0:0 drwxr-xr-x", "usr/local/bin/ward 0:0 -rwxr-xr-x",
		"var/ 0:0 drwxr-xr-x", "var/lib/ 0:0 drwxr-xr-x", "var/lib/ward/ 65532:65532 drwx------",
	}
	slices.Sort(files)
	if !slices.Equal(files, wantFiles) {
		t.Fatalf("the image's files:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
	}

	// The nodes' configuration: the example's, its store the test's.
	work := t.TempDir()
	var wardYAML map[string]any
	b, err := os.ReadFile(filepath.Join(deployDir, "ward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &wardYAML); err != nil {
		t.Fatal(err)
	}
	wardYAML["store"] = map[string]string{"postgres": dsn, "schema": schema}
	b, _ = yaml.Marshal(wardYAML)
	config, join := filepath.Join(work, "ward.yaml"), filepath.Join(work, "join.token")
	if err := os.WriteFile(config, b, 0o644); err != nil { // read by nonroot in the containers
		t.Fatal(err)
	}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	project := "wardimg" + strings.ReplaceAll(strings.TrimPrefix(schema, "ward_test_"), "_", "")
	env := []string{
		"COMPOSE_PROJECT_NAME=" + project, "COMPOSE_FILE=compose.yaml:compose.host.yaml",
		"WARD_IMAGE=" + image, "WARD_CONFIG=" + config, "WARD_JOIN_TOKEN=" + join,
		"WARD_DB_PASSWORD=unused-the-dsn-names-none",
		"WARD1_ADDR=" + addrs[0], "WARD2_ADDR=" + addrs[1], "WARD3_ADDR=" + addrs[2],
	}
	deploy, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string { t.Helper(); return d.run(deploy, env, "docker-compose", args...) }
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.try(deploy, env, "docker-compose", "logs", "--no-color", "--tail", "40")
			t.Logf("the nodes' logs:\n%s", out)
		}
		if out, err := d.try(deploy, env, "docker-compose", "down", "--volumes", "--timeout", "10"); err != nil {
			t.Logf("docker-compose down: %v\n%s", err, out)
		}
	})

	// 1. The first node: it creates the system and prints the admin
	// credential once.
	compose("up", "-d", "ward1")
	ward1 := strings.TrimSpace(compose("ps", "-q", "ward1"))
	var admin string
	credLine := regexp.MustCompile(`WARD_TOKEN=(ward_[A-Za-z0-9_-]+)`)
	if !waitFor(nodeStartLimit, func() bool {
		m := credLine.FindStringSubmatch(d.run("", nil, "docker", "logs", ward1))
		if m != nil {
			admin = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("ward1 printed no admin credential within %v", nodeStartLimit)
	}
	bundle := filepath.Join(work, "bundle.pem")
	d.run("", nil, "docker", "cp", ward1+":/var/lib/ward/bundle.pem", bundle)
	hc := tlsClient(t, bundle)
	urls := make([]string, 3)
	for i, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		urls[i] = "https://localhost:" + port
	}
	ready := func(i int) {
		t.Helper()
		var last string
		if !waitFor(nodeStartLimit, func() bool {
			resp, err := hc.Get(urls[i] + "/healthz")
			if err != nil {
				last = err.Error()
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
			return resp.StatusCode == http.StatusOK
		}) {
			t.Fatalf("node %d's /healthz, from the host: %s", i+1, last)
		}
	}
	ready(0)

	// 2. The join token, copied out, given to nonroot, read-only; the
	// other two join with it.
	d.run("", nil, "docker", "cp", ward1+":/var/lib/ward/keys/join.token", join)
	if err := os.Chown(join, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(join, 0o400); err != nil {
		t.Fatal(err)
	}
	compose("up", "-d", "ward2", "ward3")
	ready(1)
	ready(2)
	// Docker's health check (ward health in the container) finds each
	// node ready too.
	for _, v := range []string{"ward1", "ward2", "ward3"} {
		id := strings.TrimSpace(compose("ps", "-q", v))
		var status string
		if !waitFor(nodeStartLimit, func() bool {
			status = strings.TrimSpace(d.run("", nil, "docker", "inspect", "--format", "{{.State.Health.Status}}", id))
			return status == "healthy"
		}) {
			t.Fatalf("%s's health check: %s\n%s", v, status, d.run("", nil, "docker", "inspect", "--format", "{{json .State.Health}}", id))
		}
	}
	// Each node ran as nonroot on a volume of its own.
	for _, v := range []string{"ward1", "ward2", "ward3"} {
		mp := strings.TrimSpace(d.run("", nil, "docker", "volume", "inspect", "--format", "{{.Mountpoint}}", project+"_"+v))
		for _, p := range []string{mp, filepath.Join(mp, "keys"), filepath.Join(mp, "audit")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("volume %s: %v", v, err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65532 || st.Gid != 65532 || fi.Mode().Perm() != 0o700 {
				t.Errorf("volume %s: %s is owned by %d:%d, mode %04o, not nonroot's, 0700", v, strings.TrimPrefix(p, mp)+"/", st.Uid, st.Gid, fi.Mode().Perm())
			}
		}
	}

	// 3. One system: a session started on node 1 is served by node 2; ended
	// on node 2, it is refused by nodes 1 and 3, tool calls included.
	t.Setenv("WARD_CA", bundle)
	t.Setenv("WARD_TOKEN", admin)
	t.Setenv("WARD_HOME", t.TempDir())
	t.Setenv("WARD_SERVER", urls[0])
	mustCLI(t, "sponsor", "create", "alice", "--kind", "human", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--allow", "tool:demo.*")
	creds := filepath.Join(work, "scribe")
	var started struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "tidy the notes", "--ttl", "15m", "--out", creds, "-o", "json")), &started); err != nil || started.Session == "" {
		t.Fatalf("session start: %v %+v", err, started)
	}
	t.Setenv("WARD_SERVER", urls[2])
	if out := mustCLI(t, "session", "list"); !strings.Contains(out, started.Session) {
		t.Fatalf("node 3 does not list the session started on node 1:\n%s", out)
	}
	c, err := sessioncred.Load(creds)
	if err != nil {
		t.Fatal(err)
	}
	agent := c.HTTPClient(true) // mutual TLS with the session's X.509-SVID
	whoami := func(i int) (int, string) {
		resp, err := agent.Get(urls[i] + "/v1/session")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := whoami(1); code != http.StatusOK || !strings.Contains(body, started.Session) {
		t.Fatalf("node 2 does not serve the session started on node 1: %d %s", code, body)
	}
	if err := echoThrough(t, urls[1]+"/mcp", agent); err != nil {
		t.Fatalf("a tool call through node 2 for the session started on node 1: %v", err)
	}
	t.Setenv("WARD_SERVER", urls[1])
	mustCLI(t, "session", "end", started.Session, "--reason", "image test")
	for _, i := range []int{0, 2} {
		var code int
		var body string
		if !waitFor(propagationLimit, func() bool {
			code, body = whoami(i)
			return code == http.StatusUnauthorized
		}) || !strings.Contains(body, "ended") {
			t.Fatalf("node %d still serves the session ended on node 2 after %v: %d %s", i+1, propagationLimit, code, body)
		}
		if err := echoThrough(t, urls[i]+"/mcp", agent); err == nil {
			t.Fatalf("node %d forwarded a tool call of the session ended on node 2", i+1)
		}
	}

	// Every node's audit log, as the heads in the store say, asked from
	// inside a container.
	var heads []struct {
		Node   string `json:"node"`
		Signed bool   `json:"signed"`
	}
	var out string
	if !waitFor(nodeStartLimit, func() bool {
		out = compose("exec", "-T", "ward1", "/usr/local/bin/ward", "audit", "nodes", "--config", "/etc/ward/ward.yaml", "-o", "json")
		signed := 0
		if json.Unmarshal([]byte(out), &heads) == nil {
			for _, h := range heads {
				if h.Signed {
					signed++
				}
			}
		}
		return signed == 3
	}) {
		t.Fatalf("ward audit nodes does not list three signed node logs:\n%s", out)
	}
}

// exportImage returns the headers of the files of a container created
// from image (and removed).
func exportImage(t *testing.T, d *dockerEnv, image string) []*tar.Header {
	t.Helper()
	id := strings.TrimSpace(d.run("", nil, "docker", "create", image))
	defer d.run("", nil, "docker", "rm", id)
	c := exec.Command("docker", "export", id)
	c.Env = append(os.Environ(), d.env...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var hs []*tar.Header
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.Process.Kill()
			c.Wait()
			t.Fatalf("docker export: %v %s", err, stderr.String())
		}
		hs = append(hs, h)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("docker export: %v %s", err, stderr.String())
	}
	return hs
}

// tlsClient trusts the CA bundle at path only.
func tlsClient(t *testing.T, path string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", path)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
