package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/integration/collectortest"
)

// TestCollectorBinaryHealth runs the shipped `logrouter collect` through a broker outage and
// an unwritable checkpoint directory: /healthz stays 200 (the process is fine), /readyz answers
// 503 with the reason while the collector does not ship or cannot save, the metrics count it,
// and the exit status after SIGTERM is non-zero when the final checkpoint save failed.
func TestCollectorBinaryHealth(t *testing.T) {
	bin := collectortest.Binary(t)
	port := freeTCPPort(t)
	dataDir := t.TempDir()
	startBroker := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	broker := startBroker()
	brokers := fmt.Sprintf("127.0.0.1:%d", port)
	w := collectortest.NewWorkload(t, []string{"health"}, 1, []string{"app"})
	w.Write(t, 50, 100)
	ckDir := filepath.Join(t.TempDir(), "checkpoints")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	p := collectortest.StartBinary(t, bin, []string{"NODE_NAME=" + collectortest.NodeName}, "collect",
		"--kubernetes=false", "--brokers", brokers, "--log-dir", w.Node.LogDir, "--pods-dir", w.Node.PodsDir,
		"--checkpoint-dir", ckDir, "--metrics-addr", metricsAddr, "--ack-timeout", "500ms",
		"--poll-interval", "20ms", "--scan-interval", "50ms", "--checkpoint-interval", "50ms", "--shutdown-grace", "5s")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitHTTP := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if p.Exited() {
				t.Fatalf("logrouter collect exited:\n%s", p.Stderr.String())
			}
			if time.Now().After(deadline) {
				code, body := get("/readyz")
				t.Fatalf("timed out waiting for %s; /readyz: %d %s", what, code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ready := func(wantCode int, wantBody string) func() bool {
		return func() bool {
			code, body := get("/readyz")
			return code == wantCode && strings.Contains(body, wantBody)
		}
	}
	collectortest.WaitForRecords(t, collectortest.Admin(t, brokers), w.Want(), 30*time.Second)
	waitHTTP("/readyz 200", ready(200, "ok"))

	broker.Close()
	w.Write(t, 50, 100)
	waitHTTP("/readyz 503 not shipping", ready(503, "not shipping"))
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz during the outage: %d, want 200 (liveness is about the process)", code)
	}
	waitHTTP("kafka_errors_total in /metrics", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `logrouter_collector_kafka_errors_total{reason="unreachable"}`)
	})
	broker = startBroker()
	defer broker.Close()
	waitHTTP("/readyz 200 after the broker is back", ready(200, "ok"))
	collectortest.WaitForRecords(t, collectortest.Admin(t, brokers), w.Want(), 30*time.Second)

	if err := os.Rename(ckDir, ckDir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitHTTP("/readyz 503 checkpoints", ready(503, "checkpoints not saved"))
	err := p.Stop(20 * time.Second)
	if err == nil || !strings.Contains(p.Stderr.String(), "final checkpoint save failed") {
		t.Fatalf("exit after SIGTERM with the final save failing: %v, want a non-zero status and the error logged:\n%s", err, p.Stderr.String())
	}
}

func freeTCPPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
