package check

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
)

// instruction is one Dockerfile line, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	image string
	name  string
	ins   []instruction
}

// parseDockerfile reads the stages, resolving ${ARG} defaults in FROM lines.
// It covers the instructions our Dockerfiles use, not the whole syntax.
func parseDockerfile(tb testing.TB, path string) []stage {
	tb.Helper()
	var (
		stages  []stage
		args    = map[string]string{}
		pending string
	)
	sc := bufio.NewScanner(strings.NewReader(readFile(tb, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		cmd, rest, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := stage{image: os.Expand(f[0], func(k string) string { return args[k] })}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case len(stages) == 0:
			tb.Fatalf("%s: %s before FROM", path, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	if len(stages) < 2 {
		tb.Fatalf("%s: %d stages, want a build stage and a runtime stage", path, len(stages))
	}
	return stages
}

// envOf returns the ENV settings of a stage (KEY=VALUE form).
func envOf(s stage) map[string]string {
	env := map[string]string{}
	for _, in := range s.ins {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

var goDirective = regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`)

// goBuildFlags are the Makefile's flags, which the images must use too.
func goBuildFlags(tb testing.TB) string {
	tb.Helper()
	m := regexp.MustCompile(`(?m)^GO_BUILD_FLAGS := (.+)$`).FindStringSubmatch(readFile(tb, filepath.Join(repoRoot(tb), "Makefile")))
	if m == nil {
		tb.Fatal("Makefile: no GO_BUILD_FLAGS")
	}
	return strings.TrimSpace(m[1])
}

func dockerignore(tb testing.TB, root string) *patternmatcher.PatternMatcher {
	tb.Helper()
	var patterns []string
	for _, l := range strings.Split(readFile(tb, filepath.Join(root, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		tb.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

var dockerServices = map[string]string{ // service -> port
	"api-gateway":       "8080",
	"broadcast-service": "8081",
	"archival-worker":   "8082",
}

// TestDockerfiles checks each image's contract: Go base matching go.work,
// static build with the Makefile's flags, GOWORK=off, distroless non-root
// runtime, the README's port, and a health check that needs no shell.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	c := readContract(t)
	goVersion := goDirective.FindStringSubmatch(readFile(t, filepath.Join(root, "go.work")))
	if goVersion == nil {
		t.Fatal("go.work: no go directive")
	}
	flags := goBuildFlags(t)
	ignore := dockerignore(t, root)

	for svc, port := range dockerServices {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			if got := c.ports[svc]; len(got) == 0 || got[0] != port {
				t.Fatalf("README port of %s = %v, want %s", svc, got, port)
			}
			stages := parseDockerfile(t, filepath.Join(root, "infrastructure", "docker", "Dockerfile."+svc))
			build, final := stages[0], stages[len(stages)-1]

			if !strings.HasPrefix(build.image, "golang:"+goVersion[1]) {
				t.Errorf("build image %q, want golang:%s (go.work)", build.image, goVersion[1])
			}
			env := envOf(build)
			if env["GOWORK"] != "off" || env["CGO_ENABLED"] != "0" {
				t.Errorf("build ENV = %v, want GOWORK=off and CGO_ENABLED=0", env)
			}
			var builds []string
			for _, in := range build.ins {
				if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
					builds = append(builds, in.args)
					if !strings.Contains(in.args, "CGO_ENABLED=0") || !strings.Contains(in.args, flags) {
						t.Errorf("RUN %s: want CGO_ENABLED=0 and the Makefile's %s", in.args, flags)
					}
				}
				if in.cmd == "COPY" {
					f := strings.Fields(in.args)
					for _, src := range f[:len(f)-1] {
						matches, _ := filepath.Glob(filepath.Join(root, src))
						if len(matches) == 0 {
							t.Errorf("COPY %s: nothing in the repository matches", src)
						}
						for _, m := range matches {
							rel, _ := filepath.Rel(root, m)
							if out, _ := ignore.MatchesOrParentMatches(filepath.ToSlash(rel)); out {
								t.Errorf("COPY %s: .dockerignore leaves %s out of the context", src, rel)
							}
						}
					}
				}
			}
			if len(builds) != 2 || !strings.Contains(builds[0], "cd "+svc+" ") || !strings.Contains(builds[0], "./cmd") || !strings.Contains(builds[1], "./healthcheck") {
				t.Errorf("go build steps %q, want the service's ./cmd and the ./healthcheck probe", builds)
			}

			if !strings.Contains(final.image, "distroless/static") {
				t.Errorf("runtime image %q, want distroless static", final.image)
			}
			var user, expose string
			var health, entry []string
			for _, in := range final.ins {
				switch in.cmd {
				case "USER":
					user = in.args
				case "EXPOSE":
					expose = in.args
				case "HEALTHCHECK":
					_, cmd, _ := strings.Cut(in.args, " CMD ")
					if err := json.Unmarshal([]byte(cmd), &health); err != nil {
						t.Errorf("HEALTHCHECK %s: want exec form (no shell in the image): %v", in.args, err)
					}
				case "ENTRYPOINT":
					if err := json.Unmarshal([]byte(in.args), &entry); err != nil {
						t.Errorf("ENTRYPOINT %s: want exec form: %v", in.args, err)
					}
				}
			}
			if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
				t.Errorf("USER %q, want a non-root user", user)
			}
			if expose != port {
				t.Errorf("EXPOSE %q, want %s", expose, port)
			}
			if want := []string{"/app/healthcheck", "http://127.0.0.1:" + port + "/health"}; strings.Join(health, " ") != strings.Join(want, " ") {
				t.Errorf("HEALTHCHECK CMD %q, want %q", health, want)
			}
			if len(entry) != 1 || entry[0] != "/app/"+svc {
				t.Errorf("ENTRYPOINT %q, want [\"/app/%s\"]", entry, svc)
			}
		})
	}
}

// TestDockerBuildSteps runs each Dockerfile's build stage on this machine as
// far as it allows without Docker: it copies what the COPY lines take from a
// context filtered by .dockerignore into a temporary /src, runs the RUN lines
// with the stage's ENV, and checks the results are static binaries. The
// health probe is also run against a live HTTP server.
func TestDockerBuildSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service binaries; skipped with -short")
	}
	root := repoRoot(t)
	ignore := dockerignore(t, root)
	for svc := range dockerServices {
		t.Run(svc, func(t *testing.T) {
			// Sequential: each build keeps both cores busy.
			tmp := t.TempDir()
			out := filepath.Join(tmp, "out")
			stages := parseDockerfile(t, filepath.Join(root, "infrastructure", "docker", "Dockerfile."+svc))
			build := stages[0]
			env := os.Environ()
			for k, v := range envOf(build) {
				env = append(env, k+"="+v)
			}
			_, haveCmd := os.Stat(filepath.Join(root, svc, "cmd", "main.go"))
			workdir := tmp
			var skipped []string
			for _, in := range build.ins {
				switch in.cmd {
				case "WORKDIR":
					workdir = filepath.Join(tmp, in.args)
				case "COPY":
					f := strings.Fields(in.args)
					for _, src := range f[:len(f)-1] {
						copyContext(t, root, src, filepath.Join(workdir, f[len(f)-1]), ignore)
					}
				case "RUN":
					script := strings.ReplaceAll(in.args, "/out/", out+"/")
					if haveCmd != nil && strings.Contains(script, "./cmd") {
						skipped = append(skipped, in.args)
						continue
					}
					if err := os.MkdirAll(workdir, 0o755); err != nil {
						t.Fatal(err)
					}
					cmd := exec.Command("sh", "-ec", script)
					cmd.Dir, cmd.Env = workdir, env
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("RUN %s: %v\n%s", in.args, err, b)
					}
				}
			}

			probe := filepath.Join(out, "healthcheck")
			assertStatic(t, probe)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/health" {
					http.Error(w, "not ready", http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, `{"status":"healthy"}`)
			}))
			t.Cleanup(srv.Close)
			if b, err := exec.Command(probe, srv.URL+"/health").CombinedOutput(); err != nil {
				t.Errorf("healthcheck %s/health: %v (%s), want exit 0", srv.URL, err, b)
			}
			var exit *exec.ExitError
			if err := exec.Command(probe, srv.URL+"/ready").Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("healthcheck on a 503: %v, want exit status 1", err)
			}

			if len(skipped) > 0 {
				t.Skipf("%s/cmd/main.go does not exist yet, so these steps did not run: %q", svc, skipped)
			}
			assertStatic(t, filepath.Join(out, svc))
		})
	}
}

// copyContext does what COPY src dst does with the build context at root:
// a directory's contents go under dst, files matched by a glob go into dst,
// and anything .dockerignore excludes is not there to copy.
func copyContext(tb testing.TB, root, src, dst string, ignore *patternmatcher.PatternMatcher) {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(root, src))
	if err != nil || len(matches) == 0 {
		tb.Fatalf("COPY %s: no match in %s", src, root)
	}
	for _, m := range matches {
		err := filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if out, _ := ignore.MatchesOrParentMatches(filepath.ToSlash(rel)); out {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			target := filepath.Join(dst, filepath.Base(p))
			if p != m { // inside a copied directory: keep the relative layout
				inner, _ := filepath.Rel(m, p)
				target = filepath.Join(dst, inner)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		})
		if err != nil {
			tb.Fatalf("COPY %s: %v", src, err)
		}
	}
}

// assertStatic fails unless path is an ELF executable with no dynamic loader,
// as a distroless static image needs.
func assertStatic(tb testing.TB, path string) {
	tb.Helper()
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatalf("built binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			tb.Errorf("%s is dynamically linked; CGO_ENABLED=0 should make it static", path)
		}
	}
}
