package archiver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/query"
	"github.com/logrouter/logrouter/internal/record"
)

// TestArchiveS3 archives into a real S3-compatible server (versitygw) through s3blob: the
// server must enforce write-if-absent for claims, and the archive must read back through the
// query engine.
func TestArchiveS3(t *testing.T) {
	url := archivetest.StartS3(t, "archive")
	ctx := context.Background()
	kc, cl := newCluster(t, 2, "logs.s3-team")
	base := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	var rs []*kgo.Record
	for i := 0; i < 300; i++ {
		kt := base.Add(time.Duration(i) * time.Second)
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "s3-team", Pod: fmt.Sprintf("p%d", i%2), Container: "c",
			Time: kt, KafkaTime: kt, Message: archivetest.Seq("s3", i), Partition: int32(i % 2)}))
	}
	if err := archivetest.Produce(ctx, cl, rs); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, kc.ListenAddrs(), url)
	cfg.Prefix = "logs/v1"
	a, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.localDir != "" {
		t.Fatal("s3 bucket taken for a local one")
	}
	// The server enforces If-None-Match: a second claim of the same key loses.
	key := "logs/v1/_claims/probe/0/00000000000000000000.json"
	if err := a.writeIfAbsent(ctx, key, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := a.writeIfAbsent(ctx, key, []byte("{}")); !errors.Is(err, errClaimExists) {
		t.Fatalf("second claim: %v, want errClaimExists", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(runCtx) }()
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitArchived(t, b, "logs/v1", map[archivetest.Pos]int64{{Topic: "logs.s3-team", Partition: 0}: 150, {Topic: "logs.s3-team", Partition: 1}: 150}, 30*time.Second)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	audit, err := archivetest.Read(ctx, b, "logs/v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(audit.Count) != len(rs) || len(audit.Problems) > 0 {
		t.Fatalf("%d of %d records archived; problems %v", len(audit.Count), len(rs), audit.Problems)
	}
	for p, n := range audit.Count {
		if n != 1 {
			t.Errorf("%v in %d objects", p, n)
		}
	}
	var got []record.Record
	st, err := query.New(b, "logs/v1").Run(ctx, query.Request{Namespace: "s3-team", Since: base, Until: base.Add(time.Hour), Pod: "p1"}, func(r record.Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 || got[0].Message != archivetest.Seq("s3", 1) || got[149].Message != archivetest.Seq("s3", 299) {
		t.Fatalf("query: %d records, stats %+v", len(got), st)
	}
}
