package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/internal/record"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ARCHIVER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newCluster(t *testing.T, partitions int32, topics ...string) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

func testConfig(t *testing.T, brokers []string, bucket string) Config {
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = strings.Join(brokers, ",")
	cfg.Bucket = bucket
	cfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
	cfg.MaxObjectAge = time.Second
	cfg.TopicRefresh = 200 * time.Millisecond
	cfg.DrainTimeout = 30 * time.Second
	cfg.MemoryBudget = 64 << 20
	return cfg
}

// waitArchived waits until the claim chains of the partitions reach want (next offsets).
func waitArchived(t *testing.T, b *blob.Bucket, prefix string, want map[archivetest.Pos]int64, timeout time.Duration) {
	t.Helper()
	if err := archivetest.WaitArchived(context.Background(), b, prefix, want, timeout); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveEveryRecordOnce(t *testing.T) {
	for _, format := range []string{"parquet", "ndjson"} {
		t.Run(format, func(t *testing.T) {
			kc, cl := newCluster(t, 2, "logs.team-a", "logs.team-b")
			dir := t.TempDir()
			bucket := "file://" + dir
			ctx := context.Background()
			base := time.Date(2026, 11, 21, 9, 58, 0, 0, time.UTC)
			var rs []*kgo.Record
			want := map[archivetest.Pos]int64{}
			for i := 0; i < 400; i++ {
				ns := []string{"team-a", "team-b"}[i%2]
				// Kafka time crosses 10:00, and a late line (older Kafka time) must not go back.
				kt := base.Add(time.Duration(i) * time.Second)
				if i%50 == 7 {
					kt = kt.Add(-10 * time.Minute)
				}
				rs = append(rs, archivetest.Record(archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("web-%d", i%3), Container: "app",
					Time: kt.Add(-time.Second), Message: archivetest.Seq(ns, i), KafkaTime: kt, Partition: int32(i / 2 % 2)}))
			}
			// One value that is not a record and one without a namespace header: archived anyway.
			bad := &kgo.Record{Topic: "logs.team-a", Partition: 0, Value: []byte("not json"), Timestamp: base}
			nohdr := archivetest.Record(archivetest.Line{Namespace: "team-a", Pod: "p", Container: "c", Time: base, Message: "x", KafkaTime: base, Partition: 1})
			nohdr.Headers = nil
			// A Kafka timestamp from a broken clock, two days ahead: bucketed at most an hour ahead.
			future := archivetest.Record(archivetest.Line{Namespace: "team-b", Pod: "p", Container: "c", Time: base, Message: "future",
				KafkaTime: time.Now().Add(48 * time.Hour), Partition: 0})
			rs = append(rs, bad, nohdr, future)
			if err := archivetest.Produce(ctx, cl, rs); err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
				want[p] = max(want[p], r.Offset+1)
			}
			reg := prometheus.NewRegistry()
			cfg := testConfig(t, kc.ListenAddrs(), bucket)
			cfg.Format = format
			a, err := New(cfg, reg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() { errc <- a.Run(runCtx) }()
			b, err := blob.OpenBucket(ctx, bucket)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			waitArchived(t, b, "", want, 30*time.Second)
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			audit, err := archivetest.Read(ctx, b, "")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d objects, %d records", len(audit.Objects), len(audit.Count))
			if len(audit.Problems) > 0 {
				t.Fatalf("problems: %v", audit.Problems)
			}
			for _, r := range rs {
				p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
				if audit.Count[p] != 1 {
					t.Errorf("%v archived %d times", p, audit.Count[p])
				}
			}
			if len(audit.Count) != len(rs) {
				t.Errorf("archive holds %d records, produced %d", len(audit.Count), len(rs))
			}
			// Bucketing never goes back: no object of the 09:00 hour starts after a 10:00 one
			// of the same partition.
			latest := map[archivetest.Pos]layout.Object{}
			for _, o := range audit.Objects {
				k := archivetest.Pos{Topic: o.Topic, Partition: o.Partition}
				if prev, ok := latest[k]; ok && prev.Start < o.Start && prev.Hour.After(o.Hour) {
					t.Errorf("bucket time went back: %s then %s", prev.Name(), o.Name())
				}
				if prev, ok := latest[k]; !ok || prev.Start < o.Start {
					latest[k] = o
				}
			}
			badRow := audit.Rows[archivetest.Pos{Topic: "logs.team-a", Partition: 0, Offset: bad.Offset}]
			if badRow.Message != "not json" || !strings.Contains(badRow.ParseError, "invalid record value") {
				t.Errorf("invalid value archived as %+v", badRow)
			}
			if n := testutil.ToFloat64(a.m.invalid.WithLabelValues("decode")); n != 1 {
				t.Errorf("invalid decode metric = %v", n)
			}
			if n := testutil.ToFloat64(a.m.invalid.WithLabelValues("no_namespace_header")); n != 0 {
				t.Errorf("no_namespace_header metric = %v (topic fallback is not invalid)", n)
			}
			if n := testutil.ToFloat64(a.m.invalid.WithLabelValues("future_timestamp")); n != 1 {
				t.Errorf("future_timestamp metric = %v", n)
			}
			for _, o := range audit.Objects {
				if o.Topic == "logs.team-b" && o.Partition == 0 && o.End == future.Offset && o.Hour.After(time.Now().Add(time.Hour)) {
					t.Errorf("future record bucketed in %v", o.Hour)
				}
			}
			good := audit.Rows[archivetest.Pos{Topic: "logs.team-b", Partition: 1, Offset: 0}]
			if good.Namespace != "team-b" || !strings.HasPrefix(good.Message, "team-b-seq-") || good.Labels["app"] == "" || good.Node != "node-1" {
				t.Errorf("row = %+v", good)
			}
			// Nothing is left in staging, and every claim's objects exist.
			var staged []string
			it := b.List(&blob.ListOptions{Prefix: "_staging/"})
			for {
				o, err := it.Next(ctx)
				if err != nil {
					break
				}
				staged = append(staged, o.Key)
			}
			if len(staged) > 0 {
				t.Errorf("staging not empty: %v", staged)
			}
			// ... not even the empty directories fileblob would leave for per-attempt keys.
			if ents, err := os.ReadDir(filepath.Join(dir, "_staging")); err != nil || len(ents) > 0 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("_staging directory holds %v (%v), want it empty", names, err)
			}
			for _, reason := range []string{"hour", "age"} {
				if testutil.ToFloat64(a.m.flushes.WithLabelValues(reason)) == 0 {
					t.Errorf("no %s flush", reason)
				}
			}
			if n := testutil.ToFloat64(a.m.records.WithLabelValues("logs.team-a")) + testutil.ToFloat64(a.m.records.WithLabelValues("logs.team-b")); int(n) != len(rs) {
				t.Errorf("records metric %v, produced %d", n, len(rs))
			}
			if n := testutil.ToFloat64(a.m.objects.WithLabelValues(string(a.format))); int(n) != len(audit.Objects) {
				t.Errorf("objects metric %v, objects %d", n, len(audit.Objects))
			}
		})
	}
}

var _ = errors.New
var _ = record.HeaderNamespace

// TestLagAndShutdownDrain checks that records spooled but not yet archived count as lag, and
// that SIGTERM-style cancellation seals, archives and commits them before Run returns.
func TestLagAndShutdownDrain(t *testing.T) {
	kc, cl := newCluster(t, 1, "logs.lag")
	ctx := context.Background()
	var rs []*kgo.Record
	now := time.Now()
	for i := 0; i < 50; i++ {
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "lag", Pod: "p", Container: "c", Time: now, KafkaTime: now, Message: archivetest.Seq("lag", i), Partition: 0}))
	}
	if err := archivetest.Produce(ctx, cl, rs); err != nil {
		t.Fatal(err)
	}
	bucket := "file://" + t.TempDir()
	cfg := testConfig(t, kc.ListenAddrs(), bucket)
	cfg.MaxObjectAge = time.Hour
	a, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(a.m.lag.WithLabelValues("logs.lag")) != 50 || testutil.ToFloat64(a.m.records.WithLabelValues("logs.lag")) != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %v, records %v", testutil.ToFloat64(a.m.lag.WithLabelValues("logs.lag")), testutil.ToFloat64(a.m.records.WithLabelValues("logs.lag")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := testutil.ToFloat64(a.m.objects.WithLabelValues("parquet")); n != 0 {
		t.Fatalf("%v objects before the age bound", n)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(a.m.flushes.WithLabelValues("shutdown")); n != 1 {
		t.Errorf("shutdown flushes %v", n)
	}
	b, err := blob.OpenBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitArchived(t, b, "", map[archivetest.Pos]int64{{Topic: "logs.lag", Partition: 0}: 50}, time.Second)
	// The drain committed the offset: the group's position is the archive's end.
	adm := kadm.NewClient(cl)
	offs, err := adm.FetchOffsets(ctx, cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("logs.lag", 0); !ok || o.At != 50 || o.Metadata != fmt.Sprint(now.UnixMilli()) {
		t.Fatalf("committed %+v, want offset 50 with the bucketing clock %d as metadata", o, now.UnixMilli())
	}
}
