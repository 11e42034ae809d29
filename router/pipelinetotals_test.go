package router

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestDeletedPipelineForgotten: the collector's counters of a pipeline go to the counters
// topic through a real Publisher; once the pipeline is deleted, its record is tombstoned and
// its series (logrouter_collector_pipeline_lines_total) are deleted at the next publication.
// A pipeline that exists without running (here: an earlier process's record) keeps its
// record; one deleted while the collector was down is tombstoned at start.
func TestDeletedPipelineForgotten(t *testing.T) {
	const lines = 20
	node, _ := loadgen.NewNode(t.TempDir())
	app, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for s := range lines {
		app.Write(ts.Add(time.Duration(s)*time.Millisecond), "stdout", loadgen.SeqMessage("a/app", s, 80))
	}
	set := compileSet(t, "a", nil, map[string]v1alpha1.LogPipelineSpec{"parse": {Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}}})

	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	opts := []kgo.Opt{kgo.SeedBrokers(brokers)}
	kc := compactedCountersTopic(t, brokers)
	ctx := context.Background()
	// An earlier process on this node published a/stopped (which exists and does not run) and
	// a/removed (deleted while the collector was down).
	earlier := counters.Value{Counts: counters.Counts{Selected: 5, Emitted: 5}, Time: ts}
	for _, p := range []string{"stopped", "removed"} {
		r := &kgo.Record{Topic: topic.CountersTopic, Key: counters.RecordKey("node-1", counters.Key{Namespace: "a", Pipeline: p}), Value: counters.Encode(earlier)}
		if err := kc.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	r := startCollectorWith(t, testConfig(t, node, brokers), func(c *Collector) { c.ExpectPipelines() })
	pub := resumedPublisher(t, brokers, r.c.PipelineCounters())
	r.c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": set}, Known: map[string]map[string]string{"a": {"parse": "", "stopped": ""}}})
	if got := consume(t, brokers, lines, 30*time.Second); len(got) != lines {
		t.Fatalf("%d records, want %d", len(got), lines)
	}
	r.stop() // flushes every count into the series
	if n := testutil.CollectAndCount(r.c.metrics.pipeLines); n == 0 {
		t.Fatal("no pipeline series")
	}

	publish := func() {
		t.Helper()
		if _, err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	want := map[string]*counters.Counts{
		"node-1/a/parse/-":   {Selected: lines, Emitted: lines},
		"node-1/a/stopped/-": &earlier.Counts,
		"node-1/a/removed/-": nil,
	}
	checkTopic(t, opts, want)

	// parse is deleted: tombstoned now, its series deleted at the next publication.
	r.c.Apply(&pipeline.State{Known: map[string]map[string]string{"a": {"stopped": ""}}})
	publish()
	want["node-1/a/parse/-"] = nil
	checkTopic(t, opts, want)
	if n := testutil.CollectAndCount(r.c.metrics.pipeLines); n == 0 {
		t.Error("series deleted before the publication after the tombstone")
	}
	publish()
	if n := testutil.CollectAndCount(r.c.metrics.pipeLines); n != 0 {
		t.Errorf("%d series of the deleted pipeline left", n)
	}
	if got := r.c.PipelineCounters().Totals(); len(got) != 0 {
		t.Errorf("totals after the deletion: %v", got)
	}
}

// checkTopic reads the counters topic back and compares each key's latest value (nil: a
// tombstone) with want.
func checkTopic(t *testing.T, opts []kgo.Opt, want map[string]*counters.Counts) {
	t.Helper()
	got := map[string]*counters.Counts{}
	err := counters.ReadToEnd(context.Background(), opts, topic.CountersTopic, func(r *kgo.Record) {
		v, live, err := counters.Decode(r.Value)
		if err != nil {
			t.Errorf("record %s: %v", r.Key, err)
		}
		if live {
			got[string(r.Key)] = &v.Counts
		} else {
			got[string(r.Key)] = nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no record", k)
		case (g == nil) != (w == nil) || (g != nil && *g != *w):
			t.Errorf("%s = %+v, want %+v (nil: tombstone)", k, g, w)
		}
	}
}

// TestRecreatedPipelineStartsAtZero: a LogPipeline deleted and created again under its name
// (another UID) within one publication interval gets its own record, which counts only its own
// lines, and the old object's record is tombstoned; the Prometheus series (by name) go on.
func TestRecreatedPipelineStartsAtZero(t *testing.T) {
	const first, second = 12, 7
	node, _ := loadgen.NewNode(t.TempDir())
	app, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	write := func(from, n int) {
		for s := from; s < from+n; s++ {
			app.Write(ts.Add(time.Duration(s)*time.Millisecond), "stdout", loadgen.SeqMessage("a/app", s, 80))
		}
	}
	spec := v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}}
	compile := func(uid string) *pipeline.State {
		p, err := pipeline.Compile("a", "parse", 1, &spec, nil, pipeline.WithUID(uid))
		if err != nil {
			t.Fatal(err)
		}
		return &pipeline.State{Namespaces: map[string]*pipeline.Set{"a": pipeline.NewSet("a", []*pipeline.Pipeline{p})},
			Known: map[string]map[string]string{"a": {"parse": uid}}}
	}
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	opts := []kgo.Opt{kgo.SeedBrokers(brokers)}
	ctx := context.Background()
	compactedCountersTopic(t, brokers)
	r := startCollectorWith(t, testConfig(t, node, brokers), func(c *Collector) { c.ExpectPipelines() })
	pub := resumedPublisher(t, brokers, r.c.PipelineCounters())
	series := func() float64 {
		return testutil.ToFloat64(r.c.metrics.pipeLines.WithLabelValues("a", "parse", "emitted"))
	}
	r.c.Apply(compile("uid-1"))
	write(0, first)
	consume(t, brokers, first, 30*time.Second)
	waitFor(t, 10*time.Second, func() bool { return series() == first })
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	// Deleted and created again before the next publication.
	r.c.Apply(compile("uid-2"))
	write(first, second)
	consume(t, brokers, first+second, 30*time.Second)
	waitFor(t, 10*time.Second, func() bool { return series() == first+second })
	for range 2 { // the tombstone, then the old object's totals are forgotten
		if _, err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkTopic(t, opts, map[string]*counters.Counts{
		"node-1/a/parse/uid-1": nil,
		"node-1/a/parse/uid-2": {Selected: second, Emitted: second},
	})
	tot := r.c.PipelineCounters().Totals()
	if _, ok := tot[counters.Key{Namespace: "a", Pipeline: "parse", UID: "uid-1"}]; ok || len(tot) != 1 {
		t.Errorf("totals %v, want only uid-2's", tot)
	}
	if got := series(); got != first+second {
		t.Errorf("series by name %v, want %d (the same name's series go on)", got, first+second)
	}
}

// compactedCountersTopic creates the counters topic as the controller does and returns a
// client of brokers (closed at the end of the test).
func compactedCountersTopic(t *testing.T, brokers string) *kgo.Client {
	t.Helper()
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	compact := "compact"
	if _, err := kadm.NewClient(kc).CreateTopic(context.Background(), 1, -1, map[string]*string{"cleanup.policy": &compact}, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	return kc
}

// resumedPublisher is node-1's counters.Publisher of src, resumed, publishing only when the
// test calls Publish.
func resumedPublisher(t *testing.T, brokers string, src counters.Source) *counters.Publisher {
	t.Helper()
	pub, err := counters.NewPublisher(counters.PublisherConfig{Node: "node-1", Topic: topic.CountersTopic, Interval: time.Hour}, []kgo.Opt{kgo.SeedBrokers(brokers)}, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	if err := pub.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pub
}
