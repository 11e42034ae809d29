//go:build !collector

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
)

// TestQueryClockSkew: 1,000 lines stamped 10:00Z that reached Kafka at 08:27Z (a node clock
// 1h33m ahead). The default look-behind (1h) does not read their hour: the command must say so
// and name the flag value that finds them; with it, it returns all 1,000.
func TestQueryClockSkew(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	b, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stamp := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	written := time.Date(2026, 11, 21, 8, 27, 0, 0, time.UTC)
	o := layout.Object{Namespace: "shop", Hour: written.Truncate(time.Hour), Topic: "logs.shop", Partition: 0, Start: 0, End: 999, Format: layout.Parquet}
	var es []objectformat.Entry
	for i := 0; i < 1000; i++ {
		d := time.Duration(i) * 100 * time.Millisecond
		l := archivetest.Line{Namespace: "shop", Pod: "web", Container: "app", Time: stamp.Add(d), KafkaTime: written.Add(d), Message: fmt.Sprint("line ", i)}
		es = append(es, archivetest.Entry(l, o.Topic, 0, int64(i)))
	}
	if _, err := archivetest.WriteObject(context.Background(), b, "", o, es, true); err != nil {
		t.Fatal(err)
	}
	q := func(extra ...string) (int, string) {
		t.Helper()
		var stdout, stderr syncBuffer
		args := append([]string{"query", "--bucket", url, "--namespace", "shop", "--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T10:05:00Z"}, extra...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("query %q: exit %d: %s", extra, code, stderr.String())
		}
		return strings.Count(stdout.String(), "\n"), stderr.String()
	}
	// The line docs/archive.md shows.
	const warning = "warning: records of this range may be missing: 1 object(s) in the hour next to the hours read hold records of the range and were not read; lines run further ahead of their Kafka time than --clock-skew 1h0m0s covers: rerun with --clock-skew 2h0m0s\n"
	n, stderr := q()
	if n != 0 || stderr != warning {
		t.Errorf("default look-behind: %d lines, stderr %q; want 0 lines and the warning %q", n, stderr, warning)
	}
	n, stderr = q("--clock-skew", "2h")
	if n != 1000 || stderr != "" {
		t.Errorf("--clock-skew 2h: %d lines, stderr %q; want 1000 and no warning", n, stderr)
	}
}
