package check

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the folder holding go.work, found from the test's directory.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.work above the test directory")
		}
		dir = parent
	}
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// contract is what the README promises about running the system, read from
// the README itself so the checks follow it when it changes.
type contract struct {
	// ports lists the host ports of each compose service ("This will start:").
	ports map[string][]string
	// env lists the variables each Go service reads ("Environment Variables").
	env map[string][]string
	// containers are the container names the README's commands use.
	containers []string
	// db is the local database, user and password.
	dbName, dbUser, dbPassword string
}

// readmeServices maps the README's words to compose service names.
var readmeServices = []struct{ phrase, service string }{
	{"API Gateway", "api-gateway"},
	{"Broadcast Service", "broadcast-service"},
	{"Archival Worker", "archival-worker"},
	{"Redis", "redis"},
	{"NATS", "nats"},
	{"PostgreSQL", "postgres"},
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	envName    = regexp.MustCompile("^[A-Z][A-Z0-9_]+$")
	portNum    = regexp.MustCompile("^[0-9]{2,5}$")
	container  = regexp.MustCompile(`\bbidding-[a-z-]*[a-z]\b`)
	database   = regexp.MustCompile("database\\s+`([^`]+)`,\\s+user\\s+`([^`]+)`,\\s+password\\s+`([^`]+)`")
)

func serviceFor(line string) string {
	for _, s := range readmeServices {
		if strings.Contains(line, s.phrase) {
			return s.service
		}
	}
	return ""
}

func readContract(tb testing.TB) contract {
	tb.Helper()
	text := readFile(tb, filepath.Join(repoRoot(tb), "README.md"))
	lines := strings.Split(text, "\n")
	c := contract{ports: map[string][]string{}, env: map[string][]string{}}

	// "This will start:" followed by "- Redis on port `6379`" lines.
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "This will start:") {
			continue
		}
		for _, item := range lines[i+1:] {
			item = strings.TrimSpace(item)
			if !strings.HasPrefix(item, "- ") {
				break
			}
			svc := serviceFor(item)
			if svc == "" {
				tb.Fatalf("README: no service named in %q", item)
			}
			for _, m := range backticked.FindAllStringSubmatch(item, -1) {
				if portNum.MatchString(m[1]) {
					c.ports[svc] = append(c.ports[svc], m[1])
				}
			}
		}
		break
	}

	// "### Environment Variables": a paragraph of variables every service
	// reads, then "**API Gateway:**" and a "- `NAME`: ..." list per service.
	start := strings.Index(text, "### Environment Variables")
	if start < 0 {
		tb.Fatal(`README: no "### Environment Variables" section`)
	}
	section := text[start+len("### Environment Variables"):]
	if end := strings.Index(section, "\n### "); end >= 0 {
		section = section[:end]
	}
	var common []string
	current := ""
	for _, l := range strings.Split(section, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "**") && strings.HasSuffix(t, ":**"):
			current = serviceFor(t)
		case current == "" && !strings.HasPrefix(t, "- "):
			for _, m := range backticked.FindAllStringSubmatch(t, -1) {
				if envName.MatchString(m[1]) {
					common = append(common, m[1])
				}
			}
		case current != "" && strings.HasPrefix(t, "- `"):
			// "- `A`, `B`: what they do": the names are before the first "`:".
			names := t
			if i := strings.Index(t, "`:"); i >= 0 {
				names = t[:i+1]
			}
			for _, m := range backticked.FindAllStringSubmatch(names, -1) {
				if envName.MatchString(m[1]) {
					c.env[current] = append(c.env[current], m[1])
				}
			}
		}
	}
	for svc := range c.env {
		c.env[svc] = append(c.env[svc], common...)
	}

	seen := map[string]bool{}
	for _, name := range container.FindAllString(text, -1) {
		if !seen[name] {
			seen[name] = true
			c.containers = append(c.containers, name)
		}
	}

	if m := database.FindStringSubmatch(text); m != nil {
		c.dbName, c.dbUser, c.dbPassword = m[1], m[2], m[3]
	}
	return c
}

// TestReadmeContract fails when the README stops saying what the other
// checks read from it, so they cannot pass by finding nothing.
func TestReadmeContract(t *testing.T) {
	t.Parallel()
	c := readContract(t)
	t.Logf("README contract: ports %v; env %v; containers %v", c.ports, c.env, c.containers)
	for _, svc := range []string{"api-gateway", "broadcast-service", "archival-worker", "redis", "nats", "postgres"} {
		if len(c.ports[svc]) == 0 {
			t.Errorf("README lists no port for %s under \"This will start:\"", svc)
		}
	}
	for _, svc := range []string{"api-gateway", "broadcast-service", "archival-worker"} {
		if len(c.env[svc]) < 3 {
			t.Errorf("README lists %d environment variables for %s, want the documented list", len(c.env[svc]), svc)
		}
		if !slices.Contains(c.env[svc], "LOG_LEVEL") {
			t.Errorf("README: LOG_LEVEL missing from %s's variables %v", svc, c.env[svc])
		}
	}
	for _, name := range []string{"bidding-api-gateway", "bidding-broadcast", "bidding-archival-worker"} {
		if !slices.Contains(c.containers, name) {
			t.Errorf("README never names container %s (found %v)", name, c.containers)
		}
	}
	if c.dbName == "" || c.dbUser == "" || c.dbPassword == "" {
		t.Error("README: no \"database `x`, user `y`, password `z`\" sentence")
	}
}
