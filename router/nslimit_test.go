package router

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// labelProvider gives every file its namespace's labels tier=<namespace> (as the enricher
// would), so that policy overrides can select namespaces.
type labelProvider struct{ node string }

func (p labelProvider) Open(m filemeta.PathMeta) filemeta.Handle {
	k := &record.Kubernetes{NamespaceLabels: map[string]string{"tier": m.Namespace}}
	return filemeta.Static(filemeta.SnapshotFor(m, filemeta.Origin{Node: p.node}, k, false))
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startClocked starts a collector whose clock stands still until the test moves it, whose
// files' namespaces have the labels tier=<namespace>, and which reads nothing before st is
// applied. It stops at the test's end.
func startClocked(t *testing.T, cfg Config, st *pipeline.State) (*Collector, *fakeClock) {
	t.Helper()
	c, clock, stop := runClocked(t, cfg, st)
	t.Cleanup(func() { _ = stop() })
	return c, clock
}

// runClocked is startClocked with the stop left to the test: stop stops the collector cleanly
// (once; later calls return nil) and returns what Run returned.
func runClocked(t *testing.T, cfg Config, st *pipeline.State) (*Collector, *fakeClock, func() error) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	c, err := New(cfg, labelProvider{cfg.Node}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c.now = clock.now
	c.ExpectPipelines()
	c.Apply(st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	return c, clock, func() (err error) {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
}

// TestLimitIsolation: namespace flood writes 10x its limit (10 lines/s, burst 50) while two
// other namespaces without limits write too. The collector's clock stands still, then moves by
// one second: so the flooder gets exactly its burst, then exactly one second's worth, and its
// excess is counted (throttled: waited in the file, each line once when Kafka has it; drop: dropped, per
// namespace and per pipeline, both actions). No line of the other namespaces is throttled, dropped or lost;
// with throttle, no line of the flooder is lost either (the rest follows when the clock moves on).
func TestLimitIsolation(t *testing.T) {
	for _, action := range []v1alpha1.LimitAction{v1alpha1.LimitThrottle, v1alpha1.LimitDrop} {
		t.Run(string(action), func(t *testing.T) { limitIsolation(t, action) })
	}
}

func limitIsolation(t *testing.T, action v1alpha1.LimitAction) {
	const (
		flood, quiet = 500, 300
		rate, burst  = 10, 50
	)
	policy, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{Overrides: []v1alpha1.Override{{
		Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "flood"}},
		Limits:     &v1alpha1.Limits{LinesPerSecond: rate, BurstLines: burst, Action: action},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	set := compileSet(t, "flood", policy, map[string]v1alpha1.LogPipelineSpec{"all": {Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}}})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	f, _ := node.AddContainer("flood", "spam", "app", loadgen.CRI)
	q1, _ := node.AddContainer("quiet-1", "web", "app", loadgen.CRI)
	q2, _ := node.AddContainer("quiet-2", "web", "app", loadgen.Docker)
	for s := range flood {
		f.Write(time.Now(), "stdout", loadgen.SeqMessage("flood", s, 100))
		if s < quiet {
			q1.Write(time.Now(), "stdout", loadgen.SeqMessage("quiet-1", s, 100))
			q2.Write(time.Now(), "stdout", loadgen.SeqMessage("quiet-2", s, 100))
		}
	}
	c, clock := startClocked(t, testConfig(t, node, brokers), &pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{"flood": set}})

	fm := c.metrics.forNamespace("flood")
	excess := fm.limitThrottled
	if action == v1alpha1.LimitDrop {
		excess = fm.limitDropped
	}
	// The clock stands still: the burst and nothing more. Dropped lines count when Kafka has
	// the lines read with them; throttled ones when Kafka has them (none yet: they wait in the
	// file).
	got := consume(t, brokers, 2*quiet+burst, 30*time.Second)
	excessNow := float64(flood - burst)
	if action == v1alpha1.LimitThrottle {
		excessNow = 0
	}
	waitFor(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(excess) == excessNow
	})
	if n := testutil.ToFloat64(fm.linesAcked); n != burst {
		t.Fatalf("flood: %v lines acknowledged, want its burst %d", n, burst)
	}
	checkFlood := func(got []consumed, want int) {
		t.Helper()
		n := 0
		for _, g := range got {
			if g.rec.Namespace == "flood" {
				n++
			}
		}
		if n != want {
			t.Fatalf("flood namespace delivered %d lines, want %d", n, want)
		}
	}
	checkFlood(got, burst)
	if dups := checkSequences(t, got, map[string]int{"quiet-1": quiet, "quiet-2": quiet}); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	for _, ns := range []string{"quiet-1", "quiet-2"} {
		m := c.metrics.forNamespace(ns)
		if a, b := testutil.ToFloat64(m.limitThrottled), testutil.ToFloat64(m.limitDropped); a+b != 0 {
			t.Fatalf("%s: %v throttled, %v dropped", ns, a, b)
		}
	}
	pm := c.metrics.forKey(counters.Key{Namespace: "flood", Pipeline: "all"})
	perPipeline := pm.prom[outLimitThrottled]
	if action == v1alpha1.LimitDrop {
		perPipeline = pm.prom[outLimitDropped]
	}
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(perPipeline) == excessNow })
	// One second later: one second's worth more (throttle, counted as throttled once Kafka has
	// it), nothing more to send (drop).
	clock.add(time.Second)
	want := burst + rate
	if action == v1alpha1.LimitDrop {
		want = burst
	}
	got = consume(t, brokers, 2*quiet+want, 30*time.Second)
	checkFlood(got, want)
	if action == v1alpha1.LimitThrottle {
		waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(fm.linesAcked) == float64(want) })
		if n, p := testutil.ToFloat64(excess), testutil.ToFloat64(perPipeline); n != rate || p != rate {
			t.Fatalf("throttled after one second: namespace %v, pipeline %v, want the %d lines that waited and went", n, p, rate)
		}
	}
	if action == v1alpha1.LimitThrottle {
		// The rest waits in the file, none lost: as the clock moves on, all of it comes, in order.
		waitFor(t, 30*time.Second, func() bool {
			clock.add(5 * time.Second)
			return testutil.ToFloat64(fm.linesAcked) == flood
		})
		got = consume(t, brokers, 2*quiet+flood, 30*time.Second)
		if dups := checkSequences(t, got, map[string]int{"flood": flood, "quiet-1": quiet, "quiet-2": quiet}); dups != 0 {
			t.Fatalf("%d duplicates", dups)
		}
		if n, p := testutil.ToFloat64(excess), testutil.ToFloat64(perPipeline); n != flood-burst || p != flood-burst {
			t.Fatalf("throttled lines counted %v times (pipeline %v), want each once (%d)", n, p, flood-burst)
		}
	}
}
