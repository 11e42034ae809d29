package integration

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/archiver/archivetest"
)

// archiveUntil runs the real archiver (consumer group group, format "parquet" or "ndjson")
// from brokers into bucketURL until the claim chains in b reach want, then stops it cleanly.
func archiveUntil(t *testing.T, brokers []string, bucketURL, group, format string, b *blob.Bucket, want map[archivetest.Pos]int64) {
	t.Helper()
	cfg := archiver.DefaultConfig()
	cfg.Kafka.Brokers = strings.Join(brokers, ",")
	cfg.Bucket = bucketURL
	if group != "" {
		cfg.Group = group
	}
	if format != "" {
		cfg.Format = format
	}
	cfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
	cfg.MaxObjectAge = time.Second
	cfg.TopicRefresh = 200 * time.Millisecond
	cfg.MemoryBudget = 64 << 20
	a, err := archiver.New(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	werr := archivetest.WaitArchived(context.Background(), b, "", want, 60*time.Second)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatal(werr)
	}
}
