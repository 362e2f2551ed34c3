package main

import (
	"debug/elf"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The example deployment of three nodes (examples/deploy) and the
// Dockerfile it builds. Docker is not needed: the tests read the files and
// check what would make the nodes fail to be one system.

const deployDir = "../../examples/deploy"

// composeService is what the test reads of a compose service.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]any    `yaml:"depends_on"`
	Ports       []string          `yaml:"ports"`
	Volumes     []struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	} `yaml:"volumes"`
}

// flagValue returns the value after flag in args, or "".
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestDeployExample: the three nodes of examples/deploy/compose.yaml read
// one configuration file, whose store is the compose file's PostgreSQL
// (host, user and database); each has a data volume of its own at the
// directory the configuration and the Dockerfile name; the first creates
// the system and the other two join it with a token mounted from a file;
// and the configuration loads as ward loads it.
func TestDeployExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	t.Setenv("WARD_DB_PASSWORD", "example-password")
	pg, ok := compose.Services["postgres"]
	if !ok {
		t.Fatal("compose.yaml has no postgres service")
	}

	nodes := []string{"ward1", "ward2", "ward3"}
	configs := map[string]bool{}
	dataVolumes := map[string]bool{}
	for i, name := range nodes {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
		if _, ok := s.DependsOn["postgres"]; !ok {
			t.Errorf("%s does not wait for postgres", name)
		}
		if s.Environment["WARD_DB_PASSWORD"] == "" {
			t.Errorf("%s gets no WARD_DB_PASSWORD, which the configuration's DSN names", name)
		}
		if len(s.Command) == 0 || s.Command[0] != "up" {
			t.Fatalf("%s runs %v, not ward up", name, s.Command)
		}
		cfgPath, data, join := flagValue(s.Command, "--config"), flagValue(s.Command, "--data"), flagValue(s.Command, "--join")
		mounts := map[string]string{} // target -> type:source
		for _, v := range s.Volumes {
			mounts[v.Target] = v.Type + ":" + v.Source
		}
		src, ok := mounts[cfgPath]
		if !ok || !strings.HasPrefix(src, "bind:") {
			t.Fatalf("%s: --config %s is not a file mounted from the host (%v)", name, cfgPath, mounts)
		}
		configs[src] = true
		dv, ok := mounts[data]
		if !ok || !strings.HasPrefix(dv, "volume:") {
			t.Fatalf("%s: --data %s is not a volume of its own (%v)", name, data, mounts)
		}
		if dataVolumes[dv] {
			t.Errorf("%s shares its data volume %s with another node", name, dv)
		}
		dataVolumes[dv] = true
		if _, ok := compose.Volumes[strings.TrimPrefix(dv, "volume:")]; !ok {
			t.Errorf("%s: volume %s is not declared", name, dv)
		}
		switch {
		case i == 0 && join != "":
			t.Errorf("the first node joins (%s): it should create the system", join)
		case i > 0 && join == "":
			t.Errorf("%s does not join the first node's system", name)
		case i > 0 && mounts[join] != "bind:./join.token":
			t.Errorf("%s: --join %s is not the join.token file (%v)", name, join, mounts)
		}
		if i == 0 {
			if data != "/var/lib/ward" {
				t.Errorf("the data directory %s is not the image's volume /var/lib/ward", data)
			}
		}
		if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":8443") {
			t.Errorf("%s publishes %v, not the node's port 8443", name, s.Ports)
		}
	}
	if len(configs) != 1 {
		t.Fatalf("the nodes read different configurations: %v", configs)
	}
	for src := range configs {
		cfg, err := loadConfig(filepath.Join(deployDir, strings.TrimPrefix(src, "bind:")))
		if err != nil {
			t.Fatalf("the nodes' configuration: %v", err)
		}
		u, err := url.Parse(cfg.StoreDSN)
		if err != nil || cfg.StoreDSN == "" {
			t.Fatalf("store DSN %q: %v", cfg.StoreDSN, err)
		}
		if _, ok := compose.Services[u.Hostname()]; !ok || u.Hostname() != "postgres" {
			t.Errorf("the store is on host %q, not the compose file's postgres service", u.Hostname())
		}
		pw, _ := u.User.Password()
		if u.User.Username() != pg.Environment["POSTGRES_USER"] || strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"] || pw != "example-password" {
			t.Errorf("the store DSN names user %q, database %q; postgres has %q, %q", u.User.Username(), u.Path, pg.Environment["POSTGRES_USER"], pg.Environment["POSTGRES_DB"])
		}
		if pg.Environment["POSTGRES_PASSWORD"] != s0(compose.Services, "ward1").Environment["WARD_DB_PASSWORD"] {
			t.Errorf("postgres and the nodes take the password from different variables")
		}
		if cfg.Data != "/var/lib/ward" || cfg.Addr != "0.0.0.0:8443" {
			t.Errorf("the configuration's data %q and listen %q are not the image's volume and port", cfg.Data, cfg.Addr)
		}
		if !cfg.DPoPNonce {
			t.Error("the nodes do not ask for DPoP nonces")
		}
	}
}

func s0(m map[string]composeService, k string) composeService { return m[k] }

// dockerfile returns the Dockerfile's instructions, continuation lines
// joined, comments dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		if cur += line; strings.TrimSpace(cur) != "" {
			out = append(out, strings.TrimSpace(cur))
		}
		cur = ""
	}
	return out
}

// TestDockerfile: the image is built in stages, runs as a user other
// than root, and keeps its data in a volume at the directory ward up is
// given.
func TestDockerfile(t *testing.T) {
	var from, user, volume, cmd string
	stages := 0
	for _, ins := range dockerfile(t) {
		word, rest, _ := strings.Cut(ins, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			stages++
			from = rest
		case "USER":
			user = rest
		case "VOLUME":
			volume = rest
		case "CMD":
			cmd = rest
		}
	}
	if stages < 2 || !strings.Contains(from, "static") {
		t.Errorf("%d stages, final base %q: want a build stage and a static base", stages, from)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the image runs as %q", user)
	}
	if volume != "/var/lib/ward" || !strings.Contains(cmd, `"--data", "/var/lib/ward"`) {
		t.Errorf("VOLUME %q, CMD %q: the data directory must be the volume", volume, cmd)
	}
}

// TestDockerBuild runs the Dockerfile's go build command, with its
// environment and flags, and checks that the binary is static (no
// program interpreter, no shared libraries) and reports the version the
// build gave it.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ward (-short)")
	}
	var build string
	for _, ins := range dockerfile(t) {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			build = strings.TrimPrefix(ins, "RUN ")
		}
	}
	if build == "" {
		t.Fatal("the Dockerfile has no go build")
	}
	out := filepath.Join(t.TempDir(), "ward")
	build = strings.ReplaceAll(build, "${VERSION}", "docker-test")
	build = strings.ReplaceAll(build, "/out/ward", out)
	// Shell words: NAME=VALUE prefixes, then arguments, "…" quoted.
	var words []string
	for _, m := range regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(build, -1) {
		words = append(words, strings.Trim(m, `"`))
	}
	env := os.Environ()
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || flagValue(words, "-o") != out {
		t.Fatalf("cannot read the build command %q", build)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Fatal("the build does not disable cgo: the binary would not be static")
	}
	c := exec.Command(words[0], words[1:]...)
	c.Dir, c.Env = "../..", env
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary has a program interpreter: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.Contains(string(v), "docker-test") {
		t.Fatalf("ward version: %q %v", v, err)
	}
}
