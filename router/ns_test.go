package router

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/pipeline"
)

func newTestCollector(t *testing.T) *Collector {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LogDir, cfg.PodsDir, cfg.CheckpointDir = t.TempDir(), "", t.TempDir()
	cfg.Sink.Kafka.Brokers = "127.0.0.1:1"
	c, err := New(cfg, nil, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.sink.Close)
	return c
}

// TestNamespaceStateOutlivesReloads: a namespace's state object is created once and kept across
// applies; a change of its limits keeps the tokens its lines already took, so neither a reload
// nor a new file hands out a fresh burst.
func TestNamespaceStateOutlivesReloads(t *testing.T) {
	c := newTestCollector(t)
	s := c.namespace("team-a")
	if c.namespace("team-a") != s {
		t.Fatal("a second lookup made a new state object")
	}
	if s.m != c.metrics.forNamespace("team-a") {
		t.Fatal("state object does not carry the namespace's metrics")
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return t0 }
	s.setLimits(pipeline.Limits{LinesPerSecond: 10, BurstLines: 5})
	if !s.lines.Load().AllowN(t0, 5) {
		t.Fatal("burst of 5 not allowed")
	}
	c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"team-a": pipeline.NewSet("team-a", []*pipeline.Pipeline{{Namespace: "team-a", Name: "p"}})}})
	if c.namespace("team-a") != s {
		t.Fatal("apply replaced the namespace's state object")
	}
	// The same limits again, then a larger burst: the bucket stays empty at t0.
	s.setLimits(pipeline.Limits{LinesPerSecond: 10, BurstLines: 5})
	s.setLimits(pipeline.Limits{LinesPerSecond: 10, BurstLines: 50})
	if s.lines.Load().AllowN(t0, 1) {
		t.Fatal("a limit change refilled the bucket")
	}
	if !s.lines.Load().AllowN(t0.Add(time.Second), 10) {
		t.Fatal("10 lines/s not available a second later")
	}
	// Removing the limit makes the bucket unlimited.
	s.setLimits(pipeline.Limits{})
	if s.lines.Load() != nil {
		t.Fatal("removing the limit kept a bucket")
	}
}
