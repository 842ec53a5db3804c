package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The binary itself refuses to start without a way to check tokens: it
// exits non-zero and says which AUTH_ settings to give. The test runs its
// own binary as the gateway (see runAsGateway).
func TestExitsWithoutAuth(t *testing.T) {
	if os.Getenv("GATEWAY_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitsWithoutAuth$")
	env := []string{"GATEWAY_TEST_RUN_MAIN=1", "SERVER_ADDR=127.0.0.1:0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTH_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("gateway without AUTH_ settings: %v, want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{"AUTH_JWT_SECRET", "AUTH_JWKS_URL", "AUTH_DISABLED=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("its message does not name %s:\n%s", want, out)
		}
	}
}
