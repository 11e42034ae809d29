package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/loadgen"
)

// killPoint is the state a kill -9 at one moment leaves: the saved checkpoints and what Kafka
// had (every record, with its partition and time).
type killPoint struct {
	ck   []byte
	recs []*kgo.Record
	size int64 // of the file at the kill
}

var lineID = regexp.MustCompile(`L\d+`)

// TestMultilineRestartFromEveryCheckpoint: a file of random multiline groups (stack traces:
// a start line and 0-6 continuation lines, with unselected stderr lines between) is written in
// random steps; after each step the collector's state (checkpoints + Kafka) is taken as a kill
// would leave it. Usually lines are held for joining then. A new collector started from each
// such state, against a broker holding exactly what the old one had, delivers every input
// line exactly once across the joined records: held lines are read again and joined again,
// and what was already in Kafka is not sent again.
func TestMultilineRestartFromEveryCheckpoint(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { multilineKill(t, seed) })
	}
}

func multilineKill(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	set := compileSet(t, "ml", nil, map[string]v1alpha1.LogPipelineSpec{"traces": {
		Selector: v1alpha1.Selector{Streams: []v1alpha1.Stream{"stdout"}},
		Steps: []v1alpha1.Step{{Multiline: &v1alpha1.MultilineStep{Start: `^\S`, MaxLines: 1000, MaxBytes: 1 << 20,
			FlushTimeout: &metav1.Duration{Duration: time.Minute}}}},
	}})
	// The collector's clock stands still: no flush timeout fires, groups end only by the
	// next group's start (or a flush at shutdown).
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	frozen := func() time.Time { return t0 }
	state := &pipeline.State{Namespaces: map[string]*pipeline.Set{"ml": set}}

	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("ml", "app", "java", loadgen.CRI)
	cfg := testConfig(t, node, brokers)
	cfg.CheckpointInterval = time.Hour // saved by the test at each kill point
	r := startCollectorWith(t, cfg, func(c *Collector) { c.now = frozen; c.ExpectPipelines(); c.Apply(state) })
	nsm := r.c.metrics.forNamespace("ml")

	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	id, written := 0, 0
	var points []killPoint
	next := func() string { id++; return fmt.Sprintf("L%d", id) }
	for range 12 {
		for range 1 + rng.IntN(4) {
			ts = ts.Add(time.Millisecond)
			switch k := rng.IntN(10); {
			case k < 2: // an unselected line between groups
				c.Write(ts, "stderr", "err "+next())
				written++
			default:
				c.Write(ts, "stdout", "Exception "+next())
				written++
				// Continuations, sometimes cut off by the step's end (held across it).
				for range rng.IntN(7) {
					c.Write(ts, "stdout", "\tat frame "+next())
					written++
				}
			}
		}
		waitFor(t, 20*time.Second, func() bool {
			return int(testutil.ToFloat64(nsm.linesRead)) == written && testutil.ToFloat64(r.c.metrics.inFlight) == 0
		})
		if err := r.c.saveCheckpoints(); err != nil {
			t.Fatal(err)
		}
		ck, err := os.ReadFile(r.c.store.Path())
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(c.Path())
		points = append(points, killPoint{ck: ck, recs: readAll(t, brokers), size: fi.Size()})
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, "uninterrupted run", readAll(t, brokers), id)

	holding := 0
	for i, p := range points {
		cl2 := newCluster(t)
		b2 := cl2.ListenAddrs()[0]
		restore(t, b2, p.recs)
		cfg2 := cfg
		cfg2.Sink.Kafka.Brokers = b2
		cfg2.CheckpointDir = t.TempDir()
		if err := os.WriteFile(filepath.Join(cfg2.CheckpointDir, checkpoint.FileName), p.ck, 0o644); err != nil {
			t.Fatal(err)
		}
		st, _ := checkpoint.Open(cfg2.CheckpointDir)
		entries, err := st.Load()
		if err != nil || len(entries) != 1 {
			t.Fatalf("kill point %d: checkpoints %v, %v", i, entries, err)
		}
		if entries[0].Offset < p.size {
			holding++ // lines were held for joining at the kill
		}
		data, _ := os.ReadFile(c.Path())
		after := strings.Count(string(data[entries[0].Offset:]), "\n")
		r2 := startCollectorWith(t, cfg2, func(c *Collector) { c.now = frozen; c.ExpectPipelines(); c.Apply(state) })
		m2 := r2.c.metrics.forNamespace("ml")
		// Everything after the checkpoint is read again; the last group stays held until stop.
		waitFor(t, 20*time.Second, func() bool {
			return int(testutil.ToFloat64(m2.linesRead)) == after && testutil.ToFloat64(r2.c.metrics.inFlight) == 0
		})
		if err := r2.stop(); err != nil {
			t.Fatal(err)
		}
		checkOnce(t, fmt.Sprintf("restart from kill point %d", i), readAll(t, b2), id)
	}
	if holding < len(points)/2 {
		t.Fatalf("only %d of %d kill points had lines held: the test does not test holding", holding, len(points))
	}
}

// checkOnce checks that every input line L1..Ln is in exactly one record.
func checkOnce(t *testing.T, what string, recs []*kgo.Record, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range recs {
		for _, m := range lineID.FindAllString(string(r.Value), -1) {
			seen[m]++
		}
	}
	var missing, dup []string
	for i := 1; i <= n; i++ {
		switch k := fmt.Sprintf("L%d", i); seen[k] {
		case 1:
		case 0:
			missing = append(missing, k)
		default:
			dup = append(dup, k)
		}
	}
	if len(missing)+len(dup) > 0 {
		t.Errorf("%s: %d lines, missing %v, duplicated %v", what, n, missing, dup)
	}
}

// readAll reads every logs.* record (to the end offsets at the call).
func readAll(t *testing.T, brokers string) []*kgo.Record {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]kgo.Offset{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if !strings.HasPrefix(o.Topic, "logs.") || o.Offset == 0 {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		total += o.Offset
	})
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumePartitions(want))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), total)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// restore produces recs to a fresh broker, each to its partition with its time, so that the
// broker holds what the old one had at the kill.
func restore(t *testing.T, brokers string, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := map[string]bool{}
	for _, r := range recs {
		topics[r.Topic] = true
	}
	for tp := range topics {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		nr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
		if err := cl.ProduceSync(ctx, nr).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMultilineFlush: a held group is emitted when no line came for its flush timeout (checked
// at every poll, without new data), and when its file is rotated away; the checkpoint passes
// it only then.
func TestMultilineFlush(t *testing.T) {
	set := compileSet(t, "ml", nil, map[string]v1alpha1.LogPipelineSpec{"traces": {
		Steps: []v1alpha1.Step{{Multiline: &v1alpha1.MultilineStep{Start: `^\S`, MaxLines: 100, MaxBytes: 1 << 20,
			FlushTimeout: &metav1.Duration{Duration: 2 * time.Second}}}},
	}})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("ml", "app", "java", loadgen.CRI)
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	cfg := testConfig(t, node, brokers)
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.now = clock.now
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"ml": set}})
	})
	nsm := r.c.metrics.forNamespace("ml")
	pm := r.c.metrics.forKey(counters.Key{Namespace: "ml", Pipeline: "traces"})
	c.Write(time.Now(), "stdout", "Exception L1")
	c.Write(time.Now(), "stdout", "\tat L2")
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(nsm.linesRead) == 2 })
	time.Sleep(10 * cfg.PollInterval)
	if n := testutil.ToFloat64(nsm.linesAcked); n != 0 {
		t.Fatalf("%v lines acknowledged before the flush timeout", n)
	}
	if e := onlyFile(t, r.c).entry(); e.Offset != 0 {
		t.Fatalf("checkpoint at %d while the group is held", e.Offset)
	}
	clock.add(3 * time.Second) // past the timeout, no new data
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(nsm.linesAcked) == 2 })
	if n := testutil.ToFloat64(pm.prom[outHeldFlushed]); n != 1 {
		t.Fatalf("held_flushed %v, want 1", n)
	}
	// Rotation: the held group of the rotated file is emitted when the file is let go.
	c.Write(time.Now(), "stdout", "Exception L3")
	c.Write(time.Now(), "stdout", "\tat L4")
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(nsm.linesRead) == 4 })
	if _, err := c.RotateRename(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(nsm.linesAcked) == 4 })
	got := consume(t, brokers, 2, 10*time.Second)
	if len(got) != 2 || got[0].rec.Message != "Exception L1\n\tat L2" || got[1].rec.Message != "Exception L3\n\tat L4" {
		t.Fatalf("records %+v", got)
	}
}

// onlyFile returns the collector's one open file.
func onlyFile(t *testing.T, c *Collector) *file {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		if len(c.files) == 1 {
			return f
		}
	}
	t.Fatalf("%d open files, want 1", len(c.files))
	return nil
}
