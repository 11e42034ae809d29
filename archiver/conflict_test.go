package archiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
)

// TestSplitBrainExactlyOnce runs two archivers in different consumer groups on the same archive:
// both own every partition, as a zombie and its successor would. They race for every claim;
// the losers must discard their uploads and continue after the winners' ranges, leaving every
// record in exactly one object.
func TestSplitBrainExactlyOnce(t *testing.T) {
	kc, cl := newCluster(t, 2, "logs.split")
	bucket := "file://" + t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var produced []*kgo.Record
	kt := time.Now().Add(-2 * time.Hour)
	for batch := 0; batch < 10; batch++ {
		var rs []*kgo.Record
		for i := 0; i < 100; i++ {
			kt = kt.Add(time.Second)
			rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "split", Pod: fmt.Sprintf("p%d", i%3), Container: "c",
				Time: kt, KafkaTime: kt, Message: archivetest.Seq("split", batch*100+i), Partition: int32(i % 2)}))
		}
		if err := archivetest.Produce(ctx, cl, rs); err != nil {
			t.Fatal(err)
		}
		produced = append(produced, rs...)
	}
	var archivers []*Archiver
	var stops []func()
	for _, group := range []string{"left", "right"} {
		cfg := testConfig(t, kc.ListenAddrs(), bucket)
		cfg.Group = group
		cfg.MaxObjectBytes = 8 << 10
		cfg.MaxObjectAge = 200 * time.Millisecond
		a, err := New(cfg, prometheus.NewRegistry(), testLogger(t).With("group", group))
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- a.Run(rctx) }()
		archivers = append(archivers, a)
		stops = append(stops, func() {
			stop()
			if err := <-errc; err != nil {
				t.Error(err)
			}
		})
	}
	b, err := blob.OpenBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := map[archivetest.Pos]int64{}
	for _, r := range produced {
		p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
		want[p] = max(want[p], r.Offset+1)
	}
	waitArchived(t, b, "", want, 40*time.Second)
	for _, stop := range stops {
		stop()
	}
	audit, err := archivetest.Read(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range audit.Problems {
		t.Error(p)
	}
	for _, r := range produced {
		if n := audit.Count[archivetest.Pos{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}]; n != 1 {
			t.Errorf("%s[%d]@%d in %d objects", r.Topic, r.Partition, r.Offset, n)
		}
	}
	conflicts := testutil.ToFloat64(archivers[0].m.conflicts) + testutil.ToFloat64(archivers[1].m.conflicts)
	won := testutil.ToFloat64(archivers[0].m.objects.WithLabelValues("parquet")) + testutil.ToFloat64(archivers[1].m.objects.WithLabelValues("parquet"))
	t.Logf("%d records in %d objects; %v claims lost, %v won", len(produced), len(audit.Objects), conflicts, won)
	if conflicts == 0 {
		t.Error("the two archivers never raced for a claim: the test did not exercise the conflict path")
	}
	if int(won) != len(audit.Objects) {
		t.Errorf("%v objects published by winners, %d in the archive", won, len(audit.Objects))
	}
}

// TestSweepDeletesOldStaging checks that abandoned uploads are deleted after the grace, and
// younger ones are kept; that staging objects in the layout of earlier versions
// (_staging/<attempt>/<namespace>+<name>) are swept too, with the per-attempt directories
// fileblob leaves behind, so an upgrade leaves no garbage; and that uploads leave no directory.
func TestSweepDeletesOldStaging(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, []string{"127.0.0.1:1"}, "file://"+dir)
	cfg.StagingGrace = time.Minute
	a, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.bucket.Close()
	ctx := context.Background()
	o := layout.Object{Namespace: "ns", Hour: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), Topic: "t", Format: layout.Parquet}
	local := func(key string) string { return filepath.Join(dir, filepath.FromSlash(key)) }
	age := func(key string, d time.Duration) {
		t.Helper()
		when := time.Now().Add(-d)
		if err := os.Chtimes(local(key), when, when); err != nil {
			t.Fatal(err)
		}
	}
	write := func(key string, old bool) {
		t.Helper()
		if err := a.bucket.WriteAll(ctx, key, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		if old {
			age(key, 2*cfg.StagingGrace)
		}
	}
	oldKey, youngKey := layout.StagingKey("", o, "old"), layout.StagingKey("", o, "young")
	write(oldKey, true)
	write(youngKey, false)
	// Earlier versions: one directory per attempt. One abandoned object, one young object, and
	// the empty directories their published uploads left (one old, one just emptied).
	legacyOld := "_staging/0123456789abcdef/ns+" + o.Name()
	legacyYoung := "_staging/1123456789abcdef/ns+" + o.Name()
	write(legacyOld, true)
	write(legacyYoung, false)
	for _, d := range []string{"_staging/2123456789abcdef", "_staging/3123456789abcdef"} {
		if err := os.Mkdir(local(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	age("_staging/2123456789abcdef", 2*cfg.StagingGrace)
	age("_staging/1123456789abcdef", 2*cfg.StagingGrace) // not empty: kept anyway

	a.sweep(ctx)
	for key, want := range map[string]bool{oldKey: false, youngKey: true, legacyOld: false, legacyYoung: true} {
		if ok, _ := a.bucket.Exists(ctx, key); ok != want {
			t.Errorf("staging object %s exists: %v, want %v", key, ok, want)
		}
	}
	for d, want := range map[string]bool{
		"_staging/0123456789abcdef": false, // emptied by this sweep
		"_staging/1123456789abcdef": true,  // still holds a young object
		"_staging/2123456789abcdef": false, // empty for longer than the grace
		"_staging/3123456789abcdef": true,  // empty only just now: an earlier version may be using it
		"_staging":                  true,
	} {
		if _, err := os.Stat(local(d)); (err == nil) != want {
			t.Errorf("directory %s exists: %v, want %v", d, err == nil, want)
		}
	}
	if n := testutil.ToFloat64(a.m.stagingSwept); n != 2 {
		t.Errorf("swept metric %v, want 2", n)
	}
	// New staging objects are flat: nothing but files directly in _staging/.
	ents, err := os.ReadDir(local("_staging"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), layout.StagingExt) && !strings.HasSuffix(e.Name(), ".attrs") {
			t.Errorf("unexpected staging file %s", e.Name())
		}
	}
}

// TestFollowClaimsPublishes checks recovery: from a committed offset, the claim chain is walked
// with one read per claim, a claim whose writer died before publishing is published, and the
// chain's end and bucketing clock are returned.
func TestFollowClaimsPublishes(t *testing.T) {
	cfg := testConfig(t, []string{"127.0.0.1:1"}, "file://"+t.TempDir())
	a, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.bucket.Close()
	ctx := context.Background()
	hour := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	o1 := layout.Object{Namespace: "x", Hour: hour, Topic: "logs.x", Partition: 0, Start: 0, End: 9, Format: layout.Parquet}
	o2 := layout.Object{Namespace: "x", Hour: hour, Topic: "logs.x", Partition: 0, Start: 10, End: 19, Format: layout.Parquet}
	s1 := layout.StagingKey("", o1, "dead")
	if err := a.bucket.WriteAll(ctx, s1, []byte("object one"), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.bucket.WriteAll(ctx, o2.Key(""), []byte("object two"), nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []layout.Claim{
		{Topic: "logs.x", Partition: 0, Start: 0, End: 9, BucketTimeMs: 100, Records: 10, Objects: []layout.ClaimObject{{Key: o1.Key(""), Staging: s1, Namespace: "x", Records: 10}}},
		{Topic: "logs.x", Partition: 0, Start: 10, End: 19, BucketTimeMs: 200, Records: 10, Objects: []layout.ClaimObject{{Key: o2.Key(""), Staging: layout.StagingKey("", o2, "gone"), Namespace: "x", Records: 10}}},
	} {
		if err := a.writeIfAbsent(ctx, layout.ClaimKey("", c.Topic, c.Partition, c.Start), c.Encode()); err != nil {
			t.Fatal(err)
		}
	}
	next, bms, err := a.followClaims(ctx, "logs.x", 0, 0, 7)
	if err != nil || next != 20 || bms != 200 {
		t.Fatalf("followClaims = %d, %d, %v; want 20, 200", next, bms, err)
	}
	if got, err := a.bucket.ReadAll(ctx, o1.Key("")); err != nil || string(got) != "object one" {
		t.Fatalf("claimed object not published: %q %v", got, err)
	}
	if ok, _ := a.bucket.Exists(ctx, s1); ok {
		t.Error("staging object kept after publishing")
	}
	// From the chain's end nothing more is claimed: the position and clock stay.
	if next, bms, err := a.followClaims(ctx, "logs.x", 0, 20, 200); err != nil || next != 20 || bms != 200 {
		t.Fatalf("at the end: %d %d %v", next, bms, err)
	}
	// A claim that points at a missing staging object and no final object is an error, not a skip.
	bad := layout.Claim{Topic: "logs.x", Partition: 0, Start: 20, End: 29, Objects: []layout.ClaimObject{{Key: "namespace=x/dt=2026-11-21/hour=10/lost.parquet", Staging: "_staging/lost", Namespace: "x"}}}
	a.writeIfAbsent(ctx, layout.ClaimKey("", "logs.x", 0, 20), bad.Encode())
	if _, _, err := a.followClaims(ctx, "logs.x", 0, 20, 0); err == nil {
		t.Fatal("unpublishable claim accepted")
	}
}
