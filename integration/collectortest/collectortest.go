// Package collectortest starts the collector in-process for integration tests and checks what
// any Kafka client read back from it against the record schema (internal/record,
// docs/record.schema.json). Tests read with the client under test (sarama, kcat, franz-go),
// convert what they read into Msg values and call Workload.Verify.
package collectortest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// NodeName is the node name the collector started by Config puts in every record.
const NodeName = "node-1"

// Logger discards the collector's log unless LOGROUTER_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("LOGROUTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Config is a collector configuration for node reading into brokers, with short intervals. It
// keeps the default compression (zstd), which is what clients meet in a deployment.
func Config(t testing.TB, node *loadgen.Node, brokers string, partitions int) router.Config {
	cfg := router.DefaultConfig()
	cfg.LogDir, cfg.PodsDir = node.LogDir, node.PodsDir
	cfg.CheckpointDir = t.TempDir()
	cfg.Node = NodeName
	cfg.Sink.Kafka.Brokers = brokers
	cfg.Sink.Partitions = partitions
	cfg.PollInterval = 20 * time.Millisecond
	cfg.ScanInterval = 50 * time.Millisecond
	cfg.CheckpointInterval = 50 * time.Millisecond
	cfg.RotatedIdle = 200 * time.Millisecond
	cfg.ShutdownGrace = 10 * time.Second
	return cfg
}

// Collector is a collector running in-process.
type Collector struct {
	C    *router.Collector
	Reg  *prometheus.Registry
	stop func() error
}

// Stop cancels the collector and waits for it to flush and return; it is safe to call twice
// and is called by the test's cleanup.
func (c *Collector) Stop() error { return c.stop() }

// Start runs a collector with cfg (path metadata only) until Stop or the end of the test.
func Start(t testing.TB, cfg router.Config) *Collector {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := router.New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node, Cluster: cfg.Cluster}}, reg, Logger())
	if err != nil {
		t.Fatalf("collector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(cfg.ShutdownGrace + 20*time.Second):
				runErr = fmt.Errorf("collector did not stop within %s", cfg.ShutdownGrace+20*time.Second)
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("collector stop: %v", err)
		}
	})
	return &Collector{C: c, Reg: reg, stop: stop}
}
