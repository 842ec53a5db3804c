package chaos

import (
	"testing"
)

// TestFaultsReconcile is the short form of make chaos: every component
// killed and restarted in turn under steady bids and viewers, then every
// accepted bid reconciled with JetStream, the archive and the viewers.
func TestFaultsReconcile(t *testing.T) {
	rep := Run(t.Context(), t, Short())
	t.Logf("\n%s", rep.Markdown())
	for _, p := range rep.Problems {
		t.Error(p)
	}
	if t.Failed() {
		t.Logf("service logs:\n%s", rep.Logs)
	}
}
