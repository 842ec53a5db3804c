package check

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// secretRef is a compose value read from .env that Compose refuses to run
// without: ${NAME:?message}.
var secretRef = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*):\?[^}]*\}`)

// isSecretRef says whether v is exactly a reference to the .env variable name.
func isSecretRef(v, name string) bool {
	m := secretRef.FindStringSubmatch(v)
	return m != nil && m[0] == v && m[1] == name
}

// generateComposeEnv runs scripts/compose-env.sh, as make run does, to write
// file, and returns what it holds.
func generateComposeEnv(tb testing.TB, file string) map[string]string {
	tb.Helper()
	cmd := exec.Command("sh", filepath.Join(repoRoot(tb), "scripts", "compose-env.sh"), file)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("compose-env.sh: %v\n%s", err, out)
	}
	return parseEnvFile(tb, file)
}

func parseEnvFile(tb testing.TB, file string) map[string]string {
	tb.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(readFile(tb, file), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = v
		}
	}
	return vars
}

// interpolate replaces the ${NAME:?...} references in v with vars' values,
// as Compose does with .env.
func interpolate(tb testing.TB, v string, vars map[string]string) string {
	tb.Helper()
	return secretRef.ReplaceAllStringFunc(v, func(ref string) string {
		name := secretRef.FindStringSubmatch(ref)[1]
		val, ok := vars[name]
		if !ok {
			tb.Fatalf("%s is not in the generated .env", name)
		}
		return val
	})
}

// secretVars are the variables that hold a secret, in the services' and
// the data stores' environments.
var secretVars = []string{"REDIS_PASSWORD", "NATS_PASSWORD", "POSTGRES_PASSWORD", "AUTH_JWT_SECRET",
	"NATS_GATEWAY_PASSWORD", "NATS_BROADCAST_PASSWORD", "NATS_ARCHIVER_PASSWORD"}

// TestComposeSecrets: no data store is reachable from other machines or
// without credentials. Every published port is bound to 127.0.0.1, every
// password and the JWT secret come from the generated .env (none is a
// literal in the file), Redis requires its password, NATS has a user per
// service and each service connects as its own.
func TestComposeSecrets(t *testing.T) {
	t.Parallel()
	f, path := loadCompose(t)
	raw := readFile(t, path)
	for name, s := range f.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q on every interface, want 127.0.0.1:%s", name, p, p)
			}
		}
		for _, k := range secretVars {
			v, ok := s.Environment[k]
			// A service's NATS_PASSWORD names its user's variable: below.
			if ok && k != "NATS_PASSWORD" && !isSecretRef(fmt.Sprint(v), k) {
				t.Errorf("%s: %s=%v, want ${%s:?...} from .env", name, k, v, k)
			}
		}
	}
	for _, weak := range []string{"password@", "POSTGRES_PASSWORD: password", "POSTGRES_HOST_AUTH_METHOD"} {
		if strings.Contains(raw, weak) {
			t.Errorf("%s contains %q: a default or missing password", path, weak)
		}
	}

	redis := f.Services["redis"]
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "requirepass") || !strings.Contains(cmd, "$$REDIS_PASSWORD") {
		t.Errorf("redis command %q does not require the password from .env", cmd)
	}
	if !isSecretRef(fmt.Sprint(redis.Environment["REDIS_PASSWORD"]), "REDIS_PASSWORD") ||
		!isSecretRef(fmt.Sprint(f.Services["api-gateway"].Environment["REDIS_PASSWORD"]), "REDIS_PASSWORD") {
		t.Error("redis and the gateway must both take REDIS_PASSWORD from .env")
	}
	if hc := strings.Join(redis.Healthcheck.Test, " "); !strings.Contains(hc, "REDISCLI_AUTH") {
		t.Errorf("redis health check %q does not authenticate", hc)
	}

	users := readFile(t, filepath.Join(filepath.Dir(path), "nats-users.conf"))
	for user, variable := range natsUsers {
		if !strings.Contains(users, fmt.Sprintf("user: %q", user)) || !strings.Contains(users, "password: $"+variable) {
			t.Errorf("nats-users.conf lacks user %s with password $%s", user, variable)
		}
	}
	conf := readFile(t, filepath.Join(filepath.Dir(path), "nats.conf"))
	if !regexp.MustCompile(`(?m)^include \./nats-users\.conf$`).MatchString(conf) {
		t.Error("nats.conf does not include ./nats-users.conf")
	}
	for _, node := range natsNodes {
		s := f.Services[node]
		if !slices.Contains(s.Volumes, "./nats-users.conf:/etc/nats/nats-users.conf:ro") {
			t.Errorf("%s: nats-users.conf is not mounted beside nats.conf (volumes %v)", node, s.Volumes)
		}
		for _, variable := range natsUsers {
			if !isSecretRef(fmt.Sprint(s.Environment[variable]), variable) {
				t.Errorf("%s: %s=%v, want ${%s:?...} from .env", node, variable, s.Environment[variable], variable)
			}
		}
	}
	seen := map[string]string{}
	for svc, want := range map[string]string{"api-gateway": "gateway", "broadcast-service": "broadcast", "archival-worker": "archiver"} {
		env := f.Services[svc].Environment
		if got := fmt.Sprint(env["NATS_USER"]); got != want {
			t.Errorf("%s: NATS_USER=%s, want %s", svc, got, want)
		}
		if !isSecretRef(fmt.Sprint(env["NATS_PASSWORD"]), natsUsers[want]) {
			t.Errorf("%s: NATS_PASSWORD=%v, want ${%s:?...}", svc, env["NATS_PASSWORD"], natsUsers[want])
		}
		if other, dup := seen[want]; dup {
			t.Errorf("%s and %s share the NATS user %s", other, svc, want)
		}
		seen[want] = svc
	}
}

// TestComposeEnvScript: make run's script writes every secret the compose
// file reads, random and private, keeps what .env already holds (the data
// volumes were initialised with it) and adds only what is missing; git
// ignores the file.
func TestComposeEnvScript(t *testing.T) {
	t.Parallel()
	_, path := loadCompose(t)
	var wanted []string
	for _, m := range secretRef.FindAllStringSubmatch(readFile(t, path), -1) {
		if !slices.Contains(wanted, m[1]) {
			wanted = append(wanted, m[1])
		}
	}
	if len(wanted) < 6 {
		t.Fatalf("compose reads only %v from .env", wanted)
	}
	dir := t.TempDir()
	first := generateComposeEnv(t, filepath.Join(dir, "a.env"))
	second := generateComposeEnv(t, filepath.Join(dir, "b.env"))
	values := map[string]bool{}
	for _, k := range wanted {
		v := first[k]
		if len(v) < 32 || !regexp.MustCompile(`^[0-9a-f]+$`).MatchString(v) {
			t.Errorf("%s=%q: want at least 32 random hex digits", k, v)
		}
		if values[v] || v == second[k] {
			t.Errorf("%s=%q repeats another value", k, v)
		}
		values[v] = true
	}
	if info, err := os.Stat(filepath.Join(dir, "a.env")); err != nil || info.Mode().Perm()&0o077 != 0 {
		t.Errorf(".env mode %v (%v), want readable by its owner only", info.Mode(), err)
	}

	// An existing file keeps its values; a missing one is added.
	kept := filepath.Join(dir, "kept.env")
	if err := os.WriteFile(kept, []byte("POSTGRES_PASSWORD=chosen-by-hand\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := generateComposeEnv(t, kept)
	if got["POSTGRES_PASSWORD"] != "chosen-by-hand" {
		t.Errorf("POSTGRES_PASSWORD=%q after running again, want the value it had", got["POSTGRES_PASSWORD"])
	}
	for _, k := range wanted {
		if got[k] == "" {
			t.Errorf("%s was not added to an existing .env", k)
		}
	}
	again := generateComposeEnv(t, kept)
	for k, v := range got {
		if again[k] != v {
			t.Errorf("%s changed on a third run", k)
		}
	}

	root := repoRoot(t)
	if _, err := exec.LookPath("git"); err == nil {
		cmd := exec.Command("git", "check-ignore", "-q", "--no-index", "infrastructure/docker/.env")
		cmd.Dir = root
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore infrastructure/docker/.env: %v", err)
		}
	}
}
