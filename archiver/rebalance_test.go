package archiver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/logrouter/logrouter/archiver/archivetest"
)

// TestRebalanceWithoutLoss runs three archivers in one group while records are produced: B
// joins A, then A leaves, then C joins B. Every record must be archived exactly once.
func TestRebalanceWithoutLoss(t *testing.T) {
	kc, cl := newCluster(t, 4, "logs.red", "logs.blue")
	dir := t.TempDir()
	bucket := "file://" + dir
	ctx, cancelAll := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelAll()

	var mu sync.Mutex
	var produced []*kgo.Record
	prodDone := make(chan error, 1)
	go func() {
		kt := time.Now().Add(-time.Hour)
		for batch := 0; batch < 40; batch++ {
			var rs []*kgo.Record
			for i := 0; i < 100; i++ {
				ns := []string{"red", "blue"}[i%2]
				kt = kt.Add(50 * time.Millisecond)
				rs = append(rs, archivetest.Record(archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("p%d", i%5), Container: "c",
					Time: kt, KafkaTime: kt, Message: archivetest.Seq(ns, batch*100+i), Partition: int32(i % 4)}))
			}
			if err := archivetest.Produce(ctx, cl, rs); err != nil {
				prodDone <- err
				return
			}
			mu.Lock()
			produced = append(produced, rs...)
			mu.Unlock()
			time.Sleep(75 * time.Millisecond)
		}
		prodDone <- nil
	}()

	start := func(name string) (a *Archiver, stop func()) {
		cfg := testConfig(t, kc.ListenAddrs(), bucket)
		cfg.Group = "rebalance"
		cfg.MaxObjectBytes = 16 << 10
		cfg.MaxObjectAge = 400 * time.Millisecond
		cfg.SessionTimeout = 6 * time.Second
		a, err := New(cfg, prometheus.NewRegistry(), testLogger(t).With("archiver", name))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- a.Run(rctx) }()
		return a, func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	// sharing waits until both archivers own partitions (the group has rebalanced).
	sharing := func(x, y *Archiver) {
		deadline := time.Now().Add(15 * time.Second)
		for testutil.ToFloat64(x.m.partitions) == 0 || testutil.ToFloat64(y.m.partitions) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("partitions not shared: %v and %v", testutil.ToFloat64(x.m.partitions), testutil.ToFloat64(y.m.partitions))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a, stopA := start("a")
	time.Sleep(300 * time.Millisecond)
	b1, stopB := start("b")
	sharing(a, b1)
	stopA()
	c, stopC := start("c")
	sharing(b1, c)
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	b, err := blob.OpenBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := map[archivetest.Pos]int64{}
	mu.Lock()
	for _, r := range produced {
		p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
		want[p] = max(want[p], r.Offset+1)
	}
	mu.Unlock()
	waitArchived(t, b, "", want, 40*time.Second)
	stopB()
	stopC()
	audit, err := archivetest.Read(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range audit.Problems {
		t.Error(p)
	}
	missing, dup := 0, 0
	for _, r := range produced {
		switch audit.Count[archivetest.Pos{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing+dup > 0 || len(audit.Count) != len(produced) {
		t.Fatalf("%d produced, %d archived, %d missing, %d duplicated", len(produced), len(audit.Count), missing, dup)
	}
	t.Logf("%d records in %d objects", len(produced), len(audit.Objects))
}

// TestClaimWriteIfAbsentIsAtomic races writers for one claim key: exactly one may win, on
// file:// (link-based) and on an object store driver (memblob).
func TestClaimWriteIfAbsentIsAtomic(t *testing.T) {
	for _, url := range []string{"file://" + t.TempDir(), "mem://"} {
		cfg := testConfig(t, []string{"127.0.0.1:1"}, url)
		var opts []Option
		if url == "mem://" { // the Go API's way to an in-memory bucket (the URL is refused)
			mem := memblob.OpenBucket(nil)
			defer mem.Close()
			opts = append(opts, WithBucket(mem))
		}
		a, err := New(cfg, nil, nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 20; round++ {
			key := fmt.Sprintf("_claims/logs.x/0/%020d.json", round)
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins, exists := 0, 0
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := a.writeIfAbsent(context.Background(), key, []byte(fmt.Sprintf(`{"writer":%d}`, w)))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case errors.Is(err, errClaimExists):
						exists++
					default:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if wins != 1 || exists != 7 {
				t.Fatalf("%s round %d: %d writers won, %d saw the claim", url, round, wins, exists)
			}
		}
		a.bucket.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Bucket = "file:///tmp/x"
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults + bucket: %v", err)
	}
	bad := good
	bad.Bucket, bad.Format, bad.MaxObjectBytes, bad.Uploaders, bad.TopicsRegex, bad.Prefix = "bucket", "csv", 1, 0, "(", "/abs"
	err := bad.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"--bucket", "--format", "--max-object-bytes", "--uploaders", "--topics-regex", "--prefix"} {
		if !containsLine(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func containsLine(s, sub string) bool {
	for _, l := range splitLines(s) {
		if len(l) >= len(sub) && l[:len(sub)] == sub {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestConfigRefusesVolatileBuckets: the archive must refuse a bucket it would lose data in
// (mem://) or write somewhere else than typed (file://host/path), naming what to write instead.
func TestConfigRefusesVolatileBuckets(t *testing.T) {
	for _, tt := range []struct{ bucket, want string }{
		{"mem://", "s3, gs, azblob, file"},
		{"mem://x", "s3, gs, azblob, file"},
		{"bogus://x", "s3, gs, azblob, file"},
		{"file://relative/dir", "file:///abs/path"},
		{"file://name", "file:///abs/path"},
		{"file:relative", "file:///abs/path"},
		{"file:///ok", ""},
		{"file:///ok?create_dir=true", ""},
		{"s3://b?region=us-east-1", ""},
		{"gs://b", ""},
		{"azblob://b", ""},
	} {
		c := DefaultConfig()
		c.Bucket = tt.bucket
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.bucket, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--bucket")):
			t.Errorf("%s: error %v, want one about --bucket naming %q", tt.bucket, err, tt.want)
		}
	}
	// Tests reach memory through the Go API only.
	mem := memblob.OpenBucket(nil)
	defer mem.Close()
	c := testConfig(t, []string{"127.0.0.1:1"}, "")
	if _, err := New(c, nil, nil, WithBucket(mem)); err != nil {
		t.Fatalf("WithBucket: %v", err)
	}
}
