package check

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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

// The container names and dependencies the README and DESIGN describe.
var composeExpect = map[string]struct {
	container string
	needs     []string // services that must be healthy first
}{
	"redis":             {container: "bidding-redis"},
	"nats":              {container: "bidding-nats"},
	"postgres":          {container: "bidding-postgres"},
	"api-gateway":       {container: "bidding-api-gateway", needs: []string{"redis", "nats", "postgres"}},
	"broadcast-service": {container: "bidding-broadcast", needs: []string{"nats"}},
	"archival-worker":   {container: "bidding-archival-worker", needs: []string{"nats", "postgres"}},
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
				if !slices.Contains(s.Ports, port+":"+port) {
					t.Errorf("ports = %v, want %s:%s (README)", s.Ports, port, port)
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
				host := raw
				if u, err := url.Parse(raw); err == nil && u.Host != "" {
					host = u.Host
				}
				h, _, _ := strings.Cut(host, ":")
				if _, ok := f.Services[h]; !ok {
					t.Errorf("%s=%s: host %q is not a compose service", key, raw, h)
				}
			}
			if raw, ok := s.Environment["POSTGRES_URL"].(string); ok {
				u, err := url.Parse(raw)
				if err != nil {
					t.Fatalf("POSTGRES_URL: %v", err)
				}
				pw, _ := u.User.Password()
				if u.User.Username() != c.dbUser || pw != c.dbPassword || u.Path != "/"+c.dbName {
					t.Errorf("POSTGRES_URL = %s, want user %s, password %s, database %s (README)", raw, c.dbUser, c.dbPassword, c.dbName)
				}
			}
		})
	}

	if got := f.Services["api-gateway"].Environment["AUTO_CREATE_ITEMS"]; got != "true" {
		t.Errorf("api-gateway AUTO_CREATE_ITEMS = %v, want \"true\" for the quick start", got)
	}
	pg := f.Services["postgres"].Environment
	if pg["POSTGRES_DB"] != c.dbName || pg["POSTGRES_USER"] != c.dbUser || pg["POSTGRES_PASSWORD"] != c.dbPassword {
		t.Errorf("postgres environment = %v, want database %s, user %s, password %s (README)", pg, c.dbName, c.dbUser, c.dbPassword)
	}
	nats := f.Services["nats"]
	if !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats command = %q, want JetStream (-js)", nats.Command)
	}
	store := ""
	if i := slices.Index(nats.Command, "-sd"); i >= 0 && i+1 < len(nats.Command) {
		store = nats.Command[i+1]
	}
	mounted := false
	for _, v := range nats.Volumes {
		if _, target, ok := strings.Cut(v, ":"); ok && strings.TrimSuffix(target, ":rw") == store {
			mounted = true
		}
	}
	if store == "" || !mounted {
		t.Errorf("nats: JetStream store %q (-sd) must be on a volume, volumes %v", store, nats.Volumes)
	}
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
	out, err := exec.Command(bin, "-f", path, "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}
