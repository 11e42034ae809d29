package archiver

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/archiver/archivetest"
)

// TestAgeSealWaitsForUpload: while a partition's sealed range cannot be uploaded, its newer
// records stay in one open range instead of one range per --max-object-age. Before, every
// partition sealed an object per age whatever the uploads could take: under a slow bucket
// (the system tests under -race: 120-240 partitions, 1 s age, several bucket requests and a
// commit per object) the queue grew for as long as the workload ran and its tail was archived
// minutes late (TestSystemPipelines: `logs.team-18[0] at 23 of 26` after 3 min).
func TestAgeSealWaitsForUpload(t *testing.T) {
	kc, cl := newCluster(t, 1, "logs.age")
	dir := t.TempDir() + "/bucket"
	bucket := "file://" + dir
	cfg := testConfig(t, kc.ListenAddrs(), bucket)
	cfg.MaxObjectAge = 100 * time.Millisecond
	a, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	b := openTestBucket(t, bucket)
	part := archivetest.Pos{Topic: "logs.age", Partition: 0}
	// One Kafka hour for every record: only age seals split them.
	kt := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	n := 0
	produce := func(count int) {
		t.Helper()
		var rs []*kgo.Record
		for range count {
			rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "age", Pod: "p", Container: "c", Time: kt, KafkaTime: kt,
				Message: archivetest.Seq("age", n), Partition: 0}))
			n++
		}
		if err := archivetest.Produce(context.Background(), cl, rs); err != nil {
			t.Fatal(err)
		}
	}
	consumed := func() {
		t.Helper()
		eventually(t, "records spooled", 20*time.Second, func() (bool, string) {
			a.mu.Lock()
			defer a.mu.Unlock()
			p := a.parts[tp{part.Topic, 0}]
			return p != nil && p.next == int64(n), "not yet"
		})
	}
	ageSeals := func() float64 { return testutil.ToFloat64(a.m.flushes.WithLabelValues("age")) }

	produce(5) // range 1, archived
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: int64(n)}, 20*time.Second)
	restore := breakDir(t, dir)
	produce(5) // range 2: sealed by age, its upload failing
	consumed()
	eventually(t, "range 2 sealed", 20*time.Second, func() (bool, string) { return ageSeals() == 2, "not yet" })
	for range 5 {
		// Each batch is older than the age when the next arrives: before the fix, each was
		// sealed as a range of its own behind range 2.
		produce(3)
		consumed()
		time.Sleep(3 * cfg.MaxObjectAge)
	}
	if got := ageSeals(); got != 2 {
		t.Errorf("%v age seals while range 2 could not be uploaded, want 2", got)
	}
	restore()
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: int64(n)}, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	audit, err := archivetest.Read(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	// Ranges 1 and 2, then the 15 records that waited behind range 2 in one range.
	if len(audit.Objects) != 3 {
		t.Errorf("%d objects, want 3: %v", len(audit.Objects), audit.Objects)
	}
	for off := range int64(n) {
		if c := audit.Count[archivetest.Pos{Topic: part.Topic, Offset: off}]; c != 1 {
			t.Errorf("offset %d in %d objects", off, c)
		}
	}
}
