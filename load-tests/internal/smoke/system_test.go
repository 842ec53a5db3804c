package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bidding-platform/load-tests/internal/loadgen"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// noPostgres points the gateway at a PostgreSQL that is not there: it
// serves only bid history, which these tests do not read.
const noPostgres = "POSTGRES_URL=postgres://bidding:password@127.0.0.1:1/bidding?sslmode=disable&connect_timeout=1"

// buildService builds a service's binary from this repository, or skips the
// test when the service has no main package yet.
func buildService(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(loadTestsDir(t), "..", name)
	if _, err := os.Stat(filepath.Join(dir, "cmd", "main.go")); err != nil {
		t.Skipf("%s/cmd/main.go does not exist yet", name)
	}
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startService runs bin with env on a free port, waits for its /health and
// stops it when the test ends. It returns the service's address.
func startService(t *testing.T, bin string, env ...string) string {
	t.Helper()
	addr := freeAddr(t)
	startServiceOn(t, addr, bin, env...)
	return addr
}

// startServiceOn is startService on a given address.
func startServiceOn(t *testing.T, addr, bin string, env ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"SERVER_ADDR=" + addr, "LOG_FORMAT=text", "LOG_LEVEL=warn"}, env...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", filepath.Base(bin), tail(b, 3000))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before becoming healthy:\n%s", filepath.Base(bin), tail(b, 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy on %s after 30s", filepath.Base(bin), addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func getItem(t *testing.T, gateway, id string) models.Item {
	t.Helper()
	resp, err := http.Get(gateway + "/api/v1/items/" + id)
	if err != nil {
		t.Fatalf("get item %s: %v", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get item %s: status %d", id, resp.StatusCode)
	}
	var it models.Item
	if err := json.NewDecoder(resp.Body).Decode(&it); err != nil {
		t.Fatalf("decode item %s: %v", id, err)
	}
	return it
}

// TestToolsAgainstRealServices runs every tool against the gateway and the
// broadcast service built from this repository, on real Redis and NATS, and
// checks what the tools report against what the services hold.
func TestToolsAgainstRealServices(t *testing.T) {
	gatewayBin := buildService(t, "api-gateway")
	broadcastBin := buildService(t, "broadcast-service")
	needPython(t, "websockets")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)
	gateway := "http://" + startService(t, gatewayBin,
		"REDIS_ADDR="+rd.Addr(), "NATS_URL="+nt.URL(), "AUTO_CREATE_ITEMS=true", "AUTH_DISABLED=true",
		"RATE_LIMIT_PER_USER=0", "RATE_LIMIT_PER_IP=0",
		noPostgres)
	broadcastAddr := startService(t, broadcastBin, "NATS_URL="+nt.URL(), "AUTH_DISABLED=true")

	t.Run("loadgen counts match the gateway", func(t *testing.T) {
		var accepted uint64
		var highest models.Money
		for _, mode := range []string{loadgen.ModeClimb, loadgen.ModeFlood} {
			cfg := loadgen.DefaultConfig()
			cfg.URL, cfg.Item, cfg.Mode = gateway, "smoke_hot", mode
			cfg.Users, cfg.Concurrency, cfg.Requests, cfg.Duration = 50, 16, 2000, time.Minute
			rep, err := loadgen.Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			if rep.Errors != 0 {
				t.Errorf("%s: %d transport errors: %v", mode, rep.Errors, rep.ErrorSamples)
			}
			if got, want := rep.Status["200"]+rep.Status["409"], uint64(cfg.Requests); got != want {
				t.Errorf("%s: 200+409 = %d, want every one of %d bids answered so (status %v)", mode, got, want, rep.Status)
			}
			if rep.DoubleWins != 0 || !rep.WinsChecked {
				t.Errorf("%s: %d amounts accepted twice (checked %v): two winners at one price", mode, rep.DoubleWins, rep.WinsChecked)
			}
			accepted += rep.Accepted
			if rep.HighestAccepted > highest {
				highest = rep.HighestAccepted
			}
		}
		it := getItem(t, gateway, "smoke_hot")
		if got, want := it.BidCount, int64(accepted); got != want {
			t.Errorf("gateway bid_count = %d, loadgen saw %d accepted", got, want)
		}
		if got, want := it.CurrentBid, highest; got != want {
			t.Errorf("gateway current_bid = %s, loadgen's highest accepted %s", got, want)
		}
		if accepted == 0 {
			t.Error("no bid was accepted")
		}
	})

	for _, client := range []string{"raw", "websockets"} {
		t.Run("fan-out script sees every event with the "+client+" client", func(t *testing.T) {
			fanout(t, client, false, gateway, broadcastAddr)
		})
	}
	t.Run("fan-out viewers that reconnect with since_seq miss nothing", func(t *testing.T) {
		fanout(t, "raw", true, gateway, broadcastAddr)
	})

	t.Run("resilience experiment keeps bidding while NATS and broadcast are frozen", func(t *testing.T) {
		_, bport, _ := net.SplitHostPort(broadcastAddr)
		out, code := runPython(t, 2*time.Minute, "run_experiment3.py", "--gateway", gateway,
			"--phase-seconds", "1", "--rate", "100", "--workers", "4", "--items", "2",
			"--pause", fmt.Sprintf("nats=%d", nt.Port), "--pause", "broadcast="+bport, "--json")
		if code != 0 {
			t.Fatalf("run_experiment3.py: exit %d\n%s", code, out)
		}
		var rep struct {
			Phases []struct {
				Phase        string   `json:"phase"`
				Bids         int      `json:"bids"`
				Availability *float64 `json:"availability"`
			} `json:"phases"`
			Verdict struct {
				Lost int `json:"lost_acceptances"`
			} `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(lastJSON(out)), &rep); err != nil {
			t.Fatalf("decode report: %v\n%s", err, out)
		}
		seen := map[string]bool{}
		for _, p := range rep.Phases {
			seen[p.Phase] = true
			if p.Bids > 0 && (p.Availability == nil || *p.Availability != 1) {
				t.Errorf("phase %q: availability %v over %d bids, want 1", p.Phase, p.Availability, p.Bids)
			}
		}
		for _, want := range []string{"baseline", "nats down", "nats recovered", "broadcast down", "broadcast recovered"} {
			if !seen[want] {
				t.Errorf("no phase %q in %+v", want, rep.Phases)
			}
		}
	})
}

// fanout runs the fan-out script with 20 viewers and 20 bids and checks
// every viewer got every event once, in order.
func fanout(t *testing.T, client string, reconnect bool, gateway, broadcastAddr string) {
	t.Helper()
	const viewers, bids = 20, 20
	args := []string{"websocket_fanout_test.py", "--client", client,
		"--connections", strconv.Itoa(viewers), "--bids", strconv.Itoa(bids), "--interval", "0.02",
		"--gateway", gateway, "--broadcast", "ws://" + broadcastAddr, "--json"}
	if reconnect {
		args = append(args, "--reconnect", "0.5")
	}
	out, code := runPython(t, 2*time.Minute, args...)
	if code != 0 {
		t.Fatalf("websocket_fanout_test.py: exit %d\n%s", code, out)
	}
	var rep struct {
		Deliveries  int `json:"deliveries"`
		Missed      int `json:"missed"`
		Duplicates  int `json:"duplicates"`
		OutOfOrder  int `json:"out_of_order"`
		Connections struct {
			Open        int `json:"open"`
			Reconnected int `json:"reconnected"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(lastJSON(out)), &rep); err != nil {
		t.Fatalf("decode report: %v\n%s", err, out)
	}
	if rep.Connections.Open != viewers || rep.Missed+rep.Duplicates+rep.OutOfOrder != 0 {
		t.Errorf("report %+v: want %d viewers and nothing missed, duplicated or reordered", rep, viewers)
	}
	// Reconnected viewers' events are accounted by seq but left out of the
	// latency samples, which then cannot reach viewers*bids.
	if !reconnect && rep.Deliveries != viewers*bids {
		t.Errorf("deliveries = %d, want %d", rep.Deliveries, viewers*bids)
	}
	if reconnect && rep.Connections.Reconnected != viewers/2 {
		t.Errorf("reconnected = %d, want %d", rep.Connections.Reconnected, viewers/2)
	}
}

// lastJSON returns the JSON object a script printed last: the report, after
// any progress lines.
func lastJSON(out string) string {
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] == '{' && (i == 0 || out[i-1] == '\n') {
			var v any
			if json.Unmarshal([]byte(out[i:]), &v) == nil {
				return out[i:]
			}
		}
	}
	return out
}
