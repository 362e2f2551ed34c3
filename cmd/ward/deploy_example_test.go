package main

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The example deployment of three nodes (examples/deploy) and the
// Dockerfile: these tests read the files and check, without Docker, what
// would make the image pull from a registry or the nodes fail to be one
// system. TestImage (image_test.go) builds the image and runs the nodes.

const deployDir = "../../examples/deploy"

// composeService is what the test reads of a compose service.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]any    `yaml:"depends_on"`
	Ports       []string          `yaml:"ports"`
	NetworkMode string            `yaml:"network_mode"`
	Volumes     []struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	} `yaml:"volumes"`
}

// composeFile is what the test reads of a compose file.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func readCompose(t *testing.T, name string) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// composeDefault is s as compose reads it when no variable is set: each
// "${VAR:-DEFAULT}" in it is DEFAULT.
func composeDefault(s string) string {
	return regexp.MustCompile(`\$\{\w+:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// flagValue returns the value after flag in args, or "".
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestDeployExample: the three nodes of examples/deploy/compose.yaml read
// one configuration file; each has a data volume of its own at the
// directory the configuration and the Dockerfile name; the first creates
// the system and the other two join it with a token mounted from a file;
// and the configuration loads as ward loads it. With
// compose.postgres.yaml, the configuration's store is that file's
// PostgreSQL (host, user and database), every node waits for it and
// publishes its port; with compose.host.yaml every node runs the same
// command on the host's network at an address of its own. TestImage runs
// them.
func TestDeployExample(t *testing.T) {
	compose := readCompose(t, "compose.yaml")
	withPG := readCompose(t, "compose.postgres.yaml")
	onHost := readCompose(t, "compose.host.yaml")
	t.Setenv("WARD_DB_PASSWORD", "example-password")
	pg, ok := withPG.Services["postgres"]
	if !ok {
		t.Fatal("compose.postgres.yaml has no postgres service")
	}
	if _, ok := withPG.Volumes["pgdata"]; !ok {
		t.Error("compose.postgres.yaml does not declare postgres's volume")
	}

	nodes := []string{"ward1", "ward2", "ward3"}
	configs := map[string]bool{}
	dataVolumes := map[string]bool{}
	hostAddrs := map[string]bool{}
	for i, name := range nodes {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
		if composeDefault(s.Image) != "ward:dev" {
			t.Errorf("%s runs image %q, not make image's ward:dev", name, s.Image)
		}
		if p := withPG.Services[name]; p.DependsOn["postgres"] == nil {
			t.Errorf("%s does not wait for postgres in compose.postgres.yaml", name)
		} else if len(p.Ports) != 1 || !strings.HasPrefix(p.Ports[0], "127.0.0.1:") || !strings.HasSuffix(p.Ports[0], ":8443") {
			t.Errorf("%s publishes %v, not the node's port 8443 on the host's loopback", name, p.Ports)
		}
		if s.Environment["WARD_DB_PASSWORD"] == "" {
			t.Errorf("%s gets no WARD_DB_PASSWORD, which the configuration's DSN names", name)
		}
		if len(s.Command) == 0 || s.Command[0] != "up" {
			t.Fatalf("%s runs %v, not ward up", name, s.Command)
		}
		h := onHost.Services[name]
		if n := len(s.Command); h.NetworkMode != "host" || len(h.Command) != n+2 || !slices.Equal(h.Command[:n], s.Command) || h.Command[n] != "--addr" {
			t.Errorf("compose.host.yaml runs %s as %v on network %q: want %v --addr ADDR on the host's", name, h.Command, h.NetworkMode, s.Command)
		} else if a := composeDefault(h.Command[n+1]); hostAddrs[a] || !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("compose.host.yaml: %s's address %s is another node's, or not on loopback", name, a)
		} else {
			hostAddrs[a] = true
			if u := composeDefault(h.Environment["WARD_SERVER"]); u != "https://"+a {
				t.Errorf("compose.host.yaml: %s's health check asks %q, not its address %s", name, u, a)
			}
		}
		cfgPath, data, join := flagValue(s.Command, "--config"), flagValue(s.Command, "--data"), flagValue(s.Command, "--join")
		mounts := map[string]string{} // target -> type:source
		for _, v := range s.Volumes {
			mounts[v.Target] = v.Type + ":" + composeDefault(v.Source)
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
		if u.Hostname() != "postgres" {
			t.Errorf("the store is on host %q, not compose.postgres.yaml's postgres service", u.Hostname())
		}
		pw, _ := u.User.Password()
		if u.User.Username() != pg.Environment["POSTGRES_USER"] || strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"] || pw != "example-password" {
			t.Errorf("the store DSN names user %q, database %q; postgres has %q, %q", u.User.Username(), u.Path, pg.Environment["POSTGRES_USER"], pg.Environment["POSTGRES_DB"])
		}
		if pg.Environment["POSTGRES_PASSWORD"] != compose.Services["ward1"].Environment["WARD_DB_PASSWORD"] {
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

// TestDockerfile: the image is built on the empty base only (nothing is
// pulled from a registry: make image stages what it holds), runs as a
// user other than root, and keeps its data in a volume at the directory
// ward up is given.
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
	if stages != 1 || from != "scratch" {
		t.Errorf("%d stages, base %q: want one, FROM scratch", stages, from)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the image runs as %q", user)
	}
	if volume != "/var/lib/ward" || !strings.Contains(cmd, `"--data", "/var/lib/ward"`) {
		t.Errorf("VOLUME %q, CMD %q: the data directory must be the volume", volume, cmd)
	}
}
