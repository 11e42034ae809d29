package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LOGROUTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testConfig(t testing.TB, node *loadgen.Node, brokers string) Config {
	cfg := DefaultConfig()
	cfg.LogDir, cfg.PodsDir = node.LogDir, node.PodsDir
	cfg.CheckpointDir = t.TempDir()
	cfg.Node = "node-1"
	cfg.Sink.Kafka.Brokers = brokers
	cfg.Sink.Compression = "none"
	cfg.Sink.Partitions = 3
	cfg.PollInterval = 20 * time.Millisecond
	cfg.ScanInterval = 50 * time.Millisecond
	cfg.CheckpointInterval = 50 * time.Millisecond
	cfg.RotatedIdle = 200 * time.Millisecond
	cfg.ShutdownGrace = 10 * time.Second
	return cfg
}

type running struct {
	c    *Collector
	reg  *prometheus.Registry
	stop func() error
}

func startCollector(t testing.TB, cfg Config) *running {
	t.Helper()
	return startCollectorWith(t, cfg, nil)
}

// startCollectorWith is startCollector with hook (if not nil) run on the collector before Run.
func startCollectorWith(t testing.TB, cfg Config, hook func(*Collector)) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node, Cluster: cfg.Cluster}}, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(c)
	}
	return runCollector(t, c, reg)
}

// runCollector runs c until the test ends (or stop is called).
func runCollector(t testing.TB, c *Collector, reg *prometheus.Registry) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var err2 error
	stop := func() error {
		once.Do(func() { cancel(); err2 = <-errc })
		return err2
	}
	t.Cleanup(func() { stop() })
	return &running{c: c, reg: reg, stop: stop}
}

// consumed is what a test read back from Kafka.
type consumed struct {
	topic   string
	part    int32
	offset  int64
	headers map[string]string
	rec     record.Record
	value   []byte
	// kafkaTime is the record's Kafka timestamp (the collector's produce time).
	kafkaTime time.Time
}

// consume reads topics matching ^logs\. from the start until want records arrived or the
// deadline passed, then a little longer to catch duplicates.
func consume(t testing.TB, brokers string, want int, timeout time.Duration) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []consumed
	deadline := time.Now().Add(timeout)
	extra := time.Time{}
	for time.Now().Before(deadline) {
		if len(out) >= want && extra.IsZero() {
			extra = time.Now().Add(300 * time.Millisecond)
		}
		if !extra.IsZero() && time.Now().After(extra) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			rec, err := record.Decode(r.Value)
			if err != nil {
				t.Errorf("record at %s/%d/%d: %v: %s", r.Topic, r.Partition, r.Offset, err, r.Value)
				return
			}
			out = append(out, consumed{r.Topic, r.Partition, r.Offset, h, rec, append([]byte(nil), r.Value...), r.Timestamp})
		})
	}
	return out
}

// checkSequences verifies each container's seq numbers: every one of 0..want[key]-1 present,
// in order; it returns the number of duplicates.
func checkSequences(t testing.TB, got []consumed, want map[string]int) (dups int) {
	return checkSequencesOrder(t, got, want, nil)
}

// checkSequencesOrder is checkSequences with order not checked for the keys in unordered.
func checkSequencesOrder(t testing.TB, got []consumed, want map[string]int, unordered map[string]bool) (dups int) {
	t.Helper()
	seen := map[string]map[int]int{}
	last := map[string]int{}
	for _, c := range got {
		key, seq, ok := loadgen.ParseSeq(c.rec.Message)
		if !ok {
			continue
		}
		if seen[key] == nil {
			seen[key] = map[int]int{}
			last[key] = -1
		}
		seen[key][seq]++
		if seen[key][seq] > 1 {
			dups++
			if dups <= 3 {
				t.Logf("duplicate: %s seq %d (topic %s partition %d offset %d, file %s offset %d)", key, seq, c.topic, c.part, c.offset, c.rec.File, c.rec.Offset)
			}
		} else if seq < last[key] && !unordered[key] {
			t.Errorf("%s: seq %d after %d (out of order)", key, seq, last[key])
		}
		last[key] = max(last[key], seq)
	}
	for key, n := range want {
		var missing []int
		for s := 0; s < n; s++ {
			if seen[key][s] == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %d of %d seqs missing, from %v", key, len(missing), n, missing[:min(len(missing), 20)])
		}
		if len(seen[key]) > n {
			t.Errorf("%s: %d distinct seqs, want %d", key, len(seen[key]), n)
		}
	}
	return dups
}

func TestCollectorDeliversEveryLineExactlyOnce(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var conts []*loadgen.Container
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		for p := range 2 {
			for ci, name := range []string{"app", "sidecar"} {
				format := loadgen.CRI
				if ci == 1 && ns == "team-b" {
					format = loadgen.Docker
				}
				c, err := node.AddContainer(ns, fmt.Sprintf("web-%d", p), name, format)
				if err != nil {
					t.Fatal(err)
				}
				conts = append(conts, c)
			}
		}
	}
	const perFile = 600
	write := func(from, to int) {
		for _, c := range conts {
			key := c.Namespace + "/" + c.Pod + "/" + c.Name
			for s := from; s < to; s++ {
				if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage(key, s, 160)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	write(0, perFile/2) // a backlog before the collector starts
	cfg := testConfig(t, node, brokers)
	r := startCollector(t, cfg)
	write(perFile/2, perFile) // and lines while it runs

	want := map[string]int{}
	for _, c := range conts {
		want[c.Namespace+"/"+c.Pod+"/"+c.Name] = perFile
	}
	got := consume(t, brokers, len(conts)*perFile, 60*time.Second)
	if dups := checkSequences(t, got, want); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	byID := map[string]*loadgen.Container{}
	for _, c := range conts {
		byID[c.ID] = c
	}
	partOf := map[string]int32{}
	for _, g := range got {
		c := byID[g.rec.ContainerID]
		if c == nil {
			t.Fatalf("record with unknown container id: %+v", g.rec)
		}
		if g.topic != "logs."+c.Namespace || g.headers[record.HeaderNamespace] != c.Namespace || g.headers[record.HeaderPod] != c.Pod || g.headers[record.HeaderContainer] != c.Name || g.headers[record.HeaderSchema] != string(record.SchemaHeaderValue) {
			t.Fatalf("routing: topic %s headers %v for %s", g.topic, g.headers, c.Path())
		}
		if g.rec.Namespace != c.Namespace || g.rec.Pod != c.Pod || g.rec.PodUID != c.PodUID || g.rec.Container != c.Name || g.rec.Node != "node-1" || g.rec.Stream != "stdout" || g.rec.Time.IsZero() {
			t.Fatalf("record fields: %+v", g.rec)
		}
		if p, ok := partOf[c.ID]; ok && p != g.part {
			t.Fatalf("container %s spread over partitions %d and %d", c.ID, p, g.part)
		}
		partOf[c.ID] = g.part
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// Final checkpoints sit at every file's end.
	entries, err := checkpointEntries(cfg.CheckpointDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conts {
		fi, _ := os.Stat(c.Path())
		found := false
		for _, e := range entries {
			if e.Path == c.Path() {
				found = true
				if e.Offset != fi.Size() {
					t.Errorf("%s: checkpoint %d, size %d", c.Path(), e.Offset, fi.Size())
				}
			}
		}
		if !found {
			t.Errorf("%s: no checkpoint", c.Path())
		}
	}
	if v := testutil.ToFloat64(r.c.metrics.linesAcked.WithLabelValues("team-a")); v != 4*perFile {
		t.Errorf("lines_acked_total{team-a} = %v, want %d", v, 4*perFile)
	}
}

func checkpointEntries(dir string) ([]checkpoint.Entry, error) {
	s, err := checkpoint.Open(dir)
	if err != nil {
		return nil, err
	}
	return s.Load()
}

func TestCollectorBadInput(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, err := node.AddContainer("team-a", "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	long := strings.Repeat("L", 3000)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Write(ts, "stdout", "before"))
	must(c.WriteRaw([]byte("this is not CRI\n")))
	must(c.Write(ts, "stderr", "bad \xff\xfe utf8"))
	must(c.WriteRaw(c.Line(ts, "stdout", false, long)))
	must(c.Write(ts, "stdout", "after"))
	cfg := testConfig(t, node, brokers)
	cfg.MaxLineBytes = 1000
	r := startCollector(t, cfg)
	// The 3,000-byte line becomes 4 chunks of at most 1,000 bytes (the first carries the CRI prefix).
	got := consume(t, brokers, 8, 30*time.Second)
	var msgs []string
	for _, g := range got {
		msgs = append(msgs, g.rec.Message[:min(20, len(g.rec.Message))])
	}
	if len(got) != 8 {
		t.Fatalf("got %d records: %q", len(got), msgs)
	}
	if got[0].rec.Message != "before" || got[7].rec.Message != "after" {
		t.Errorf("order: %q", msgs)
	}
	if got[1].rec.ParseError == "" || got[1].rec.Message != "this is not CRI" {
		t.Errorf("malformed line: %+v", got[1].rec)
	}
	if string(got[2].rec.MessageBase64) != "bad \xff\xfe utf8" || got[2].rec.Message != "bad \ufffd\ufffd utf8" || got[2].rec.Stream != "stderr" {
		t.Errorf("invalid utf-8: %+v", got[2].rec)
	}
	var joined string
	for i, g := range got[3:7] {
		if len(g.rec.Message) > cfg.MaxLineBytes {
			t.Errorf("chunk %d: %d bytes > --max-line-bytes", i, len(g.rec.Message))
		}
		if g.rec.Split == nil || g.rec.Split.Index != i || g.rec.Split.Last != (i == 3) {
			t.Errorf("chunk %d: split %+v", i, g.rec.Split)
		}
		joined += g.rec.Message
	}
	if joined != long {
		t.Errorf("chunks rebuild %d bytes, want %d", len(joined), len(long))
	}
	m := r.c.metrics.forNamespace("team-a")
	for name, got := range map[string]float64{
		"parse_errors": testutil.ToFloat64(m.parseErrors), "invalid_utf8": testutil.ToFloat64(m.invalidUTF8), "truncated": testutil.ToFloat64(m.splitLines),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
}

// TestCollectorLineThatGrowsWhenEscaped: a line under --max-line-bytes whose JSON encoding is
// several times larger (quotes, control characters) must be accepted by Kafka as one record, not
// retried forever while the lines after it are sent again.
func TestCollectorLineThatGrowsWhenEscaped(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("esc", "web", "app", loadgen.CRI)
	quotes := strings.Repeat(`"`, 600<<10)
	ctrl := strings.Repeat("\x01", 300<<10)
	ts := time.Now()
	for _, m := range []string{"before", quotes, ctrl, "after"} {
		if err := c.WriteRaw(c.Line(ts, "stdout", false, m)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, node, brokers)
	r := startCollector(t, cfg)
	got := consume(t, brokers, 4, 30*time.Second)
	if len(got) != 4 || got[0].rec.Message != "before" || got[1].rec.Message != quotes || got[2].rec.Message != ctrl || got[3].rec.Message != "after" {
		t.Fatalf("got %d records", len(got))
	}
	if n := testutil.ToFloat64(r.c.metrics.forNamespace("esc").produceErrors); n != 0 {
		t.Errorf("produce_errors_total = %v", n)
	}
}

// A record's Kafka timestamp is when the collector produced it (what franz-go sets for a record
// without one), not the line's own time, whether the line was waiting before the collector
// started or written while it runs.
func TestRecordKafkaTimestampIsProduceTime(t *testing.T) {
	cl := newCluster(t)
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := node.AddContainer("team-a", "web-0", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	lineTime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for s := range 200 {
		if err := c.Write(lineTime, "stdout", loadgen.SeqMessage("k", s, 160)); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now().Truncate(time.Millisecond) // Kafka keeps milliseconds
	startCollector(t, testConfig(t, node, cl.ListenAddrs()[0]))
	for s := 200; s < 400; s++ {
		if err := c.Write(lineTime, "stdout", loadgen.SeqMessage("k", s, 160)); err != nil {
			t.Fatal(err)
		}
	}
	got := consume(t, cl.ListenAddrs()[0], 400, 30*time.Second)
	after := time.Now()
	if len(got) != 400 {
		t.Fatalf("%d records, want 400", len(got))
	}
	for _, r := range got {
		if !r.rec.Time.Equal(lineTime) {
			t.Fatalf("record %d: ts %s, want the line's %s", r.offset, r.rec.Time, lineTime)
		}
		if r.kafkaTime.Before(before) || r.kafkaTime.After(after) {
			t.Fatalf("record %s/%d/%d: Kafka timestamp %s, want the produce time, within [%s, %s]", r.topic, r.part, r.offset, r.kafkaTime, before, after)
		}
	}
}
