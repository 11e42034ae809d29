package router

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestThrottledCountedPerPipeline follows throttled lines through the whole chain to the
// pipeline's status counters: namespace flood (limit 10 lines/s, burst 50, action throttle) has
// one pipeline for stdout and one for stderr, so each waiting line's stream decides whose it
// is. With the collector's clock standing still, the burst goes and every other line waits,
// not counted yet. When the clock moves on, every line arrives, and each that waited is counted
// once, when Kafka has it, per namespace (limit_lines_total) and for its own pipeline
// (pipeline_lines_total{outcome="limit_throttled"}); PipelineTotals carries it as Throttled, and a
// real counters.Publisher and counters.Fold through kfake deliver it as the sum the controller
// writes into status.counters.throttled. Both file formats: docker json-file lines carry their
// stream inside the JSON.
func TestThrottledCountedPerPipeline(t *testing.T) {
	for name, format := range map[string]loadgen.Format{"cri": loadgen.CRI, "docker": loadgen.Docker} {
		t.Run(name, func(t *testing.T) { throttledCountedPerPipeline(t, format) })
	}
}

func throttledCountedPerPipeline(t *testing.T, format loadgen.Format) {
	// The whole file fits one read (--read-bytes, 64 KiB): only lines read and held back wait
	// (a line not read yet is not counted as throttled).
	const (
		lines       = 300
		rate, burst = 10, 50
	)
	policy, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{Overrides: []v1alpha1.Override{{
		Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "flood"}},
		Limits:     &v1alpha1.Limits{LinesPerSecond: rate, BurstLines: burst, Action: v1alpha1.LimitThrottle},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	set := compileSet(t, "flood", policy, map[string]v1alpha1.LogPipelineSpec{
		"out": {Selector: v1alpha1.Selector{Streams: []v1alpha1.Stream{"stdout"}}},
		"err": {Selector: v1alpha1.Selector{Streams: []v1alpha1.Stream{"stderr"}}},
	})
	// As LogPipelines (with UIDs): the fold sums only those.
	var ps []*pipeline.Pipeline
	for _, p := range set.Pipelines {
		q := *p
		q.UID = "uid-" + p.Name
		ps = append(ps, &q)
	}
	set = pipeline.NewSet("flood", ps)
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	f, _ := node.AddContainer("flood", "spam", "app", format)
	// Streams in an irregular pattern (every third line and every seventh to stderr), so that a
	// count by position could not come out right by chance.
	want := map[string]int64{}
	waiting := map[string]int64{}
	for s := range lines {
		stream := "stdout"
		if s%3 == 0 || s%7 == 0 {
			stream = "stderr"
		}
		p := map[string]string{"stdout": "out", "stderr": "err"}[stream]
		want[p]++
		if s >= burst {
			waiting[p]++
		}
		if err := f.Write(time.Now(), stream, loadgen.SeqMessage("flood", s, 100)); err != nil {
			t.Fatal(err)
		}
	}
	c, clock := startClocked(t, testConfig(t, node, brokers), &pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{"flood": set}})

	fm := c.metrics.forNamespace("flood")
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(fm.linesAcked) == burst })
	// The waiting lines are in the file, not counted yet: a line counts as throttled once Kafka
	// has it, as every other outcome does.
	if n := testutil.ToFloat64(fm.limitThrottled); n != 0 {
		t.Errorf("namespace: %v throttled while every line that waited still waits, want 0", n)
	}
	totals := pipelineTotals(c)
	for _, p := range []string{"out", "err"} {
		got := totals[counters.Key{Namespace: "flood", Pipeline: p, UID: "uid-" + p}]
		if got.Throttled != 0 || got.Selected != want[p]-waiting[p] {
			t.Errorf("PipelineTotals %s while lines wait: %+v, want throttled 0, selected the %d lines that went", p, got, want[p]-waiting[p])
		}
	}
	sums := foldThroughKafka(t, brokers, c.PipelineCounters())

	// The clock moves on: every line arrives, in order; each that waited is counted once.
	waitFor(t, 60*time.Second, func() bool {
		clock.add(5 * time.Second)
		return testutil.ToFloat64(fm.linesAcked) == lines
	})
	got := consume(t, brokers, lines, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"flood": lines}); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(fm.limitThrottled) == lines-burst })
	for _, p := range []string{"out", "err"} {
		pm := c.metrics.forKey(counters.Key{Namespace: "flood", Pipeline: p, UID: "uid-" + p})
		waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(pm.prom[outLimitThrottled]) == float64(waiting[p]) })
	}
	totals = pipelineTotals(c)
	for _, p := range []string{"out", "err"} {
		got := totals[counters.Key{Namespace: "flood", Pipeline: p, UID: "uid-" + p}]
		if got.Throttled != waiting[p] || got.Selected != want[p] || got.Emitted != want[p] {
			t.Errorf("%s after the wait: %+v, want throttled %d, selected and emitted %d", p, got, waiting[p], want[p])
		}
	}
	// Through the counters topic to what the controller writes into status.counters.
	for _, p := range []string{"out", "err"} {
		k := counters.Key{Namespace: "flood", Pipeline: p, UID: "uid-" + p}
		waitFor(t, 20*time.Second, func() bool { return sums.get(k).Throttled == waiting[p] })
	}
}

// pipelineTotals is what the collector's counters publisher publishes (one place to change
// should that API move).
func pipelineTotals(c *Collector) map[counters.Key]counters.Counts {
	return c.PipelineCounters().Totals()
}

// foldedSums is what a counters.Fold wrote, per pipeline.
type foldedSums struct {
	mu sync.Mutex
	m  map[counters.Key]counters.Counts
}

func (s *foldedSums) get(k counters.Key) counters.Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

// foldThroughKafka publishes totals to the compacted counters topic (created as the controller
// creates it) every 20 ms with a counters.Publisher, as the collector command does, and folds the
// topic with a counters.Fold whose writes, the controller's status.counters patches, land in
// the returned sums.
func foldThroughKafka(t *testing.T, brokers string, src counters.Source) *foldedSums {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	opts := []kgo.Opt{kgo.SeedBrokers(brokers)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	compact := "compact"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	pub, err := counters.NewPublisher(counters.PublisherConfig{Node: "node-1", Topic: topic.CountersTopic, Interval: 20 * time.Millisecond}, opts, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sums := &foldedSums{m: map[counters.Key]counters.Counts{}}
	write := func(_ context.Context, k counters.Key, c counters.Counts, _ time.Time) error {
		sums.mu.Lock()
		sums.m[k] = c
		sums.mu.Unlock()
		return nil
	}
	fold, err := counters.NewFold(counters.FoldConfig{Topic: topic.CountersTopic, Interval: 20 * time.Millisecond, Writers: 1}, opts, write, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{pub.Run, fold.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	return sums
}
