package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
)

// BenchmarkGatewayEndToEndLatency measures the time from a line written to a container log
// file to the record arriving at a streaming SSE client, through the whole system: the
// collector (`logrouter collect`, a subprocess with default flags), kfake and the gateway
// (real HTTP). Each iteration writes 500 lines, one every 2 ms; p50/p99/max are reported over
// all iterations.
func BenchmarkGatewayEndToEndLatency(b *testing.B) {
	dir := b.TempDir()
	bin := collectortest.Binary(b)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	defer kcl.Close()
	e := startGatewayOn(b, cluster, kcl)
	secret, _ := e.token(token.Spec{Namespaces: []string{"shop"}})

	// The kubelet's layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/0.log and a
	// /var/log/containers/<pod>_<ns>_<container>-<id>.log symlink.
	podDir := filepath.Join(dir, "pods", "shop_web-1_0b5c9d2e-uid", "app")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o755); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(podDir, "0.log")
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	id := fmt.Sprintf("%016x%016x%016x%016x", rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64())
	if err := os.Symlink(logPath, filepath.Join(dir, "containers", "web-1_shop_app-"+id+".log")); err != nil {
		b.Fatal(err)
	}
	write := func(msg string) {
		line := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + msg + "\n"
		if _, err := f.WriteString(line); err != nil {
			b.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "collect",
		"--log-dir", filepath.Join(dir, "containers"), "--pods-dir", filepath.Join(dir, "pods"),
		"--brokers", strings.Join(cluster.ListenAddrs(), ","), "--checkpoint-dir", filepath.Join(dir, "ckpt"),
		"--metrics-addr", "", "--node-name", "node-1")
	cmd.Stderr = &testWriter{b}
	if !testing.Verbose() {
		cmd.Stderr = nil
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	// Wait until the collector has created the namespace's topic, then stream from latest.
	write("warm-up")
	deadline := time.Now().Add(30 * time.Second)
	var resp *http.Response
	for {
		resp = e.get("/v1/namespaces/shop/logs?from=latest", secret, "Accept", "text/event-stream")
		if resp.StatusCode == http.StatusOK {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			b.Fatalf("topic for shop never appeared (status %d)", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer resp.Body.Close()
	arrivals := make(chan time.Duration, 1024)
	go func() {
		defer close(arrivals)
		sr := newSSE(bufio.NewReader(resp.Body))
		for {
			ev, err := sr.next()
			if err != nil {
				return
			}
			if ev.event != "" || ev.data == "" {
				continue
			}
			r, err := record.Decode([]byte(ev.data))
			if err != nil {
				continue
			}
			ns, ok := strings.CutPrefix(r.Message, "lat ")
			if !ok {
				continue
			}
			sent, err := strconv.ParseInt(ns, 10, 64)
			if err != nil {
				continue
			}
			arrivals <- time.Since(time.Unix(0, sent))
		}
	}()

	const perIter = 500
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < perIter; j++ {
			write("lat " + strconv.FormatInt(time.Now().UnixNano(), 10))
			time.Sleep(2 * time.Millisecond)
		}
		for len(lat) < (i+1)*perIter {
			select {
			case d, ok := <-arrivals:
				if !ok {
					b.Fatal("stream ended")
				}
				lat = append(lat, d)
			case <-time.After(30 * time.Second):
				b.Fatalf("only %d of %d lines arrived", len(lat), (i+1)*perIter)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(len(lat)), "lines")
}
