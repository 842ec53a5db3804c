package check

import (
	"fmt"
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

// composeFile is the part of docker-compose.yml the checks read. Lists that
// Compose also accepts in other shapes (environment as a list, depends_on as
// a list) are decoded loosely and normalised below.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image         string         `yaml:"image"`
	Build         *composeBuild  `yaml:"build"`
	ContainerName string         `yaml:"container_name"`
	Command       []string       `yaml:"command"`
	Environment   map[string]any `yaml:"environment"`
	Ports         []string       `yaml:"ports"`
	Volumes       []string       `yaml:"volumes"`
	DependsOn     map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Disable  bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Restart  string `yaml:"restart"`
	CPUs     any    `yaml:"cpus"`
	MemLimit string `yaml:"mem_limit"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(tb testing.TB) (composeFile, string) {
	tb.Helper()
	path := filepath.Join(repoRoot(tb), "infrastructure", "docker", "docker-compose.yml")
	var f composeFile
	if err := yaml.Unmarshal([]byte(readFile(tb, path)), &f); err != nil {
		tb.Fatalf("parse %s: %v", path, err)
	}
	return f, path
}

// natsNodes are the compose services of the three-node JetStream cluster;
// the first keeps the single server's name, container and ports.
var natsNodes = []string{"nats", "nats-2", "nats-3"}

// The container names and dependencies the README and DESIGN describe.
var composeExpect = map[string]struct {
	container string
	needs     []string // services that must be healthy first
}{
	"redis":             {container: "bidding-redis"},
	"nats":              {container: "bidding-nats"},
	"nats-2":            {container: "bidding-nats-2"},
	"nats-3":            {container: "bidding-nats-3"},
	"postgres":          {container: "bidding-postgres"},
	"api-gateway":       {container: "bidding-api-gateway", needs: append([]string{"redis", "postgres"}, natsNodes...)},
	"broadcast-service": {container: "bidding-broadcast", needs: natsNodes},
	"archival-worker":   {container: "bidding-archival-worker", needs: append([]string{"postgres"}, natsNodes...)},
}

func TestComposeMatchesReadme(t *testing.T) {
	t.Parallel()
	c := readContract(t)
	f, path := loadCompose(t)

	var names []string
	for _, s := range f.Services {
		names = append(names, s.ContainerName)
	}
	for _, name := range c.containers {
		if !slices.Contains(names, name) {
			t.Errorf("the README uses container %q, which compose does not define (it has %v)", name, names)
		}
	}
	for name := range f.Services {
		if _, ok := composeExpect[name]; !ok {
			t.Errorf("compose service %q is not part of the documented stack", name)
		}
	}
	for name, want := range composeExpect {
		t.Run(name, func(t *testing.T) {
			s, ok := f.Services[name]
			if !ok {
				t.Fatalf("%s: no service %q", path, name)
			}
			if s.ContainerName != want.container {
				t.Errorf("container_name = %q, want %q", s.ContainerName, want.container)
			}
			for _, port := range c.ports[name] {
				if !slices.Contains(s.Ports, "127.0.0.1:"+port+":"+port) {
					t.Errorf("ports = %v, want 127.0.0.1:%s:%s (README)", s.Ports, port, port)
				}
			}
			if s.Healthcheck == nil || s.Healthcheck.Disable || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Interval == "" {
				t.Errorf("healthcheck = %+v, want a test command and an interval", s.Healthcheck)
			}
			if !slices.Contains([]string{"always", "unless-stopped", "on-failure"}, s.Restart) {
				t.Errorf("restart = %q, want a restart policy", s.Restart)
			}
			if s.CPUs == nil || s.MemLimit == "" {
				t.Errorf("cpus = %v, mem_limit = %q: want both resource limits", s.CPUs, s.MemLimit)
			}
			for _, dep := range want.needs {
				d, ok := s.DependsOn[dep]
				if !ok || d.Condition != "service_healthy" {
					t.Errorf("depends_on[%s] = %+v, want condition service_healthy", dep, d)
				}
				if f.Services[dep].Healthcheck == nil {
					t.Errorf("depends on %s, which has no health check to wait for", dep)
				}
			}
			for dep := range s.DependsOn {
				if !slices.Contains(want.needs, dep) {
					t.Errorf("depends_on %s, which this service does not talk to", dep)
				}
			}
			for _, v := range s.Volumes {
				if named, _, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(named, ".") && !strings.HasPrefix(named, "/") {
					if _, declared := f.Volumes[named]; !declared {
						t.Errorf("volume %q is not declared under volumes:", named)
					}
				}
			}
		})
	}
}

// TestComposeServicesConfig checks that each Go service is built from its
// Dockerfile, probed without a shell, and configured with every variable the
// README documents, pointing at the compose services by name.
func TestComposeServicesConfig(t *testing.T) {
	t.Parallel()
	c := readContract(t)
	f, _ := loadCompose(t)
	root := repoRoot(t)
	composeDir := filepath.Join(root, "infrastructure", "docker")
	secrets := generateComposeEnv(t, filepath.Join(t.TempDir(), ".env"))

	for _, name := range []string{"api-gateway", "broadcast-service", "archival-worker"} {
		t.Run(name, func(t *testing.T) {
			s := f.Services[name]
			if s.Build == nil {
				t.Fatal("no build section")
			}
			if ctx := filepath.Clean(filepath.Join(composeDir, s.Build.Context)); ctx != root {
				t.Errorf("build context %s, want the repository root %s (the Dockerfiles copy shared/)", ctx, root)
			}
			if want := "infrastructure/docker/Dockerfile." + name; s.Build.Dockerfile != want {
				t.Errorf("dockerfile = %q, want %q", s.Build.Dockerfile, want)
			}
			if _, err := os.Stat(filepath.Join(root, s.Build.Dockerfile)); err != nil {
				t.Error(err)
			}
			port := c.ports[name][0]
			if want := []string{"CMD", "/app/healthcheck", "http://127.0.0.1:" + port + "/health"}; !slices.Equal(s.Healthcheck.Test, want) {
				t.Errorf("healthcheck test = %q, want %q (the images have no shell)", s.Healthcheck.Test, want)
			}
			for _, v := range c.env[name] {
				if _, ok := s.Environment[v]; !ok {
					t.Errorf("environment lacks %s (README)", v)
				}
			}
			for k, v := range s.Environment {
				if !slices.Contains(c.env[name], k) {
					t.Errorf("environment sets %s=%v, which the README does not document for %s", k, v, name)
				}
			}
			for _, key := range []string{"REDIS_ADDR", "NATS_URL", "POSTGRES_URL"} {
				raw, ok := s.Environment[key].(string)
				if !ok {
					continue
				}
				raw = interpolate(t, raw, secrets)
				// NATS_URL (and REDIS_ADDR on a cluster) may list several servers.
				for _, addr := range strings.Split(raw, ",") {
					host := strings.TrimSpace(addr)
					if u, err := url.Parse(host); err == nil && u.Host != "" {
						host = u.Host
					}
					h, _, _ := strings.Cut(host, ":")
					if _, ok := f.Services[h]; !ok {
						t.Errorf("%s=%s: host %q is not a compose service", key, raw, h)
					}
				}
			}
			if raw, ok := s.Environment["POSTGRES_URL"].(string); ok {
				u, err := url.Parse(interpolate(t, raw, secrets))
				if err != nil {
					t.Fatalf("POSTGRES_URL: %v", err)
				}
				pw, _ := u.User.Password()
				if u.User.Username() != c.dbUser || pw != secrets["POSTGRES_PASSWORD"] || u.Path != "/"+c.dbName {
					t.Errorf("POSTGRES_URL = %s, want user %s, the password ${POSTGRES_PASSWORD:?...} from .env, database %s (README)", raw, c.dbUser, c.dbName)
				}
			}
		})
	}

	// A personal channel's token is the one the gateway accepts, and its
	// items come from the gateway over the compose network.
	gw, bc := f.Services["api-gateway"].Environment, f.Services["broadcast-service"].Environment
	for _, k := range c.env["broadcast-service"] {
		if strings.HasPrefix(k, "AUTH_") && fmt.Sprint(bc[k]) != fmt.Sprint(gw[k]) {
			t.Errorf("broadcast-service %s = %v, api-gateway's %v: tokens must be checked alike", k, bc[k], gw[k])
		}
	}
	if got, want := bc["GATEWAY_INTERNAL_URL"], "http://api-gateway:"+c.ports["api-gateway"][0]; got != want {
		t.Errorf("broadcast-service GATEWAY_INTERNAL_URL = %v, want %q (localhost is the container itself)", got, want)
	}
	if got := f.Services["api-gateway"].Environment["AUTO_CREATE_ITEMS"]; got != "true" {
		t.Errorf("api-gateway AUTO_CREATE_ITEMS = %v, want \"true\" for the quick start", got)
	}
	pg := f.Services["postgres"].Environment
	if pg["POSTGRES_DB"] != c.dbName || pg["POSTGRES_USER"] != c.dbUser || !isSecretRef(fmt.Sprint(pg["POSTGRES_PASSWORD"]), "POSTGRES_PASSWORD") {
		t.Errorf("postgres environment = %v, want database %s, user %s (README) and the password from .env", pg, c.dbName, c.dbUser)
	}
}

// TestComposeDurability checks what makes an accepted bid survive a crash of
// any one component in the compose stack: Redis syncs every write to its
// append-only file before answering, and NATS is a three-node JetStream
// cluster whose nodes each keep their store on a volume of their own, sync
// every write to disk, and route to one another, with every service told
// about all three nodes and to keep three replicas.
func TestComposeDurability(t *testing.T) {
	t.Parallel()
	f, path := loadCompose(t)
	composeDir := filepath.Dir(path)

	redis := strings.Join(f.Services["redis"].Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync always"} {
		if !strings.Contains(redis, want) {
			t.Errorf("redis command %q lacks %q", redis, want)
		}
	}

	names := map[string]string{}   // server name -> compose service
	volumes := map[string]string{} // named volume -> compose service
	configs := map[string]string{} // nats.conf path -> its text
	for _, node := range natsNodes {
		s, ok := f.Services[node]
		if !ok {
			t.Errorf("no NATS node %q", node)
			continue
		}
		conf, name := flagValue(s.Command, "--config"), flagValue(s.Command, "--name")
		if conf == "" || name == "" {
			t.Errorf("%s: command %q must give --config and --name", node, s.Command)
			continue
		}
		if other, dup := names[name]; dup {
			t.Errorf("%s and %s are both named %q", other, node, name)
		}
		names[name] = node
		mounts := map[string]string{} // container path -> source
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				mounts[parts[1]] = parts[0]
			}
		}
		src, ok := mounts[conf]
		if !ok || !strings.HasPrefix(src, ".") {
			t.Errorf("%s: --config %s is not mounted from a file beside the compose file (volumes %v)", node, conf, s.Volumes)
			continue
		}
		text, seen := configs[src]
		if !seen {
			text = readFile(t, filepath.Join(composeDir, src))
			configs[src] = text
		}
		store := natsStoreDir.FindStringSubmatch(text)
		if store == nil {
			t.Errorf("%s: %s has no jetstream store_dir", node, src)
			continue
		}
		vol, ok := mounts[store[1]]
		if !ok || strings.HasPrefix(vol, ".") || strings.HasPrefix(vol, "/") {
			t.Errorf("%s: JetStream store %s must be on a named volume (volumes %v)", node, store[1], s.Volumes)
		} else if other, dup := volumes[vol]; dup {
			t.Errorf("%s and %s share the volume %s: each node needs its own store", other, node, vol)
		} else {
			volumes[vol] = node
		}
	}
	for src, text := range configs {
		if !natsSyncAlways.MatchString(text) {
			t.Errorf("%s: want jetstream sync_interval: always (the nodes share one disk and kernel)", src)
		}
		for _, node := range natsNodes {
			if !strings.Contains(text, "nats://"+node+":6222") {
				t.Errorf("%s: cluster routes do not include nats://%s:6222", src, node)
			}
		}
	}

	for _, svc := range []string{"api-gateway", "broadcast-service", "archival-worker"} {
		env := f.Services[svc].Environment
		var hosts []string
		for _, u := range strings.Split(fmt.Sprint(env["NATS_URL"]), ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err == nil {
				hosts = append(hosts, p.Hostname())
			}
		}
		if !slices.Equal(hosts, natsNodes) {
			t.Errorf("%s: NATS_URL=%v lists %v, want the nodes %v", svc, env["NATS_URL"], hosts, natsNodes)
		}
	}
	// The gateway alone creates the stream, with its replica count.
	if got := fmt.Sprint(f.Services["api-gateway"].Environment["NATS_STREAM_REPLICAS"]); got != fmt.Sprint(len(natsNodes)) {
		t.Errorf("api-gateway: NATS_STREAM_REPLICAS=%s, want %d (one replica per node)", got, len(natsNodes))
	}
}

var (
	natsStoreDir   = regexp.MustCompile(`(?m)^\s*store_dir:\s*"?([^"\s]+)"?`)
	natsSyncAlways = regexp.MustCompile(`(?m)^\s*sync_interval:\s*"?always"?\s*$`)
)

// flagValue is the argument after flag in a command, or "".
func flagValue(cmd []string, flag string) string {
	if i := slices.Index(cmd, flag); i >= 0 && i+1 < len(cmd) {
		return cmd[i+1]
	}
	return ""
}

// TestComposeConfigValid runs Debian's docker-compose (1.29) validation when
// it is installed; it needs no Docker engine.
func TestComposeConfigValid(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not installed (scripts/install-deps.sh installs it); the YAML checks above still ran")
	}
	_, path := loadCompose(t)
	envFile := filepath.Join(t.TempDir(), ".env")
	generateComposeEnv(t, envFile)
	out, err := exec.Command(bin, "-f", path, "--env-file", envFile, "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	// Without the secrets Compose refuses to start rather than run with
	// empty passwords.
	empty := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "-f", path, "--env-file", empty, "config", "-q").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "make run") {
		t.Errorf("docker-compose config without the secrets: %v\n%s\nwant a refusal that says to run make run", err, out)
	}
}
