//go:build !collector

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/internal/syncbuf"
)

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pollHTTP waits until url answers code with a body containing want.
func pollHTTP(t *testing.T, url string, code int, want string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, body := get(url)
		if got == code && strings.Contains(body, want) {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("GET %s: %d %q after %v, want %d with %q", url, got, body, timeout, code, want)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestArchiveReadinessAndExitCode runs the archive command against a bucket that stops being
// writable: /readyz turns 503 with the reason while /healthz stays ok, /metrics shows the
// failures, and a shutdown that abandons records exits non-zero saying how many were left.
func TestArchiveReadinessAndExitCode(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "logs.shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, n int) {
		t.Helper()
		var rs []*kgo.Record
		for i := from; i < from+n; i++ {
			rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "shop", Pod: "p", Container: "c", Time: time.Now(), Message: archivetest.Seq("shop", i), Partition: 0}))
		}
		if err := archivetest.Produce(context.Background(), cl, rs); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "bucket")
	maddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"archive", "--brokers", kc.ListenAddrs()[0], "--bucket", "file://" + dir, "--spool-dir", t.TempDir(),
			"--metrics-addr", maddr, "--max-object-age", "200ms", "--drain-timeout", "1s", "--session-timeout", "6s"}, &stdout, &stderr)
	}()
	base := "http://" + maddr

	pollHTTP(t, base+"/readyz", 200, "ok", 20*time.Second)
	produce(0, 10)
	// Claimed and published (the objects counter counts published objects).
	if !pollHTTP(t, base+"/metrics", 200, `logrouter_archiver_objects_written_total{format="parquet"} 1`, 20*time.Second) {
		t.Fatalf("nothing archived: %s", stderr.String())
	}

	// The bucket's directory becomes a regular file: every upload fails.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	produce(10, 10)
	pollHTTP(t, base+"/readyz", 503, "consecutive upload failures", 30*time.Second)
	if c, _ := get(base + "/healthz"); c != 200 {
		t.Errorf("/healthz %d while the bucket fails: liveness is about the process", c)
	}
	if _, m := get(base + "/metrics"); !strings.Contains(m, "logrouter_archiver_upload_consecutive_failures") ||
		!strings.Contains(m, "logrouter_archiver_oldest_unarchived_record_age_seconds") {
		t.Errorf("/metrics lacks the upload health gauges")
	}

	cancel()
	if c := <-code; c == 0 || !strings.Contains(stderr.String(), `"records_left":10`) {
		t.Errorf("archive exited %d after abandoning 10 records; want non-zero and a log line with records_left:\n%s", c, tail(stderr.String(), 2000))
	}
	// Nothing abandoned was committed: the archive still ends at offset 10.
	b, err := blob.OpenBucket(context.Background(), "file://"+dir+".away")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ok, _ := b.Exists(context.Background(), layout.ClaimKey("", "logs.shop", 0, 10)); ok {
		t.Errorf("a claim from offset 10 exists: %s", fmt.Sprint(ok))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
