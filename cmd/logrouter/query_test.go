//go:build !collector

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/internal/syncbuf"
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
		var stdout, stderr syncbuf.Buffer
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

// TestQueryTopic: a namespace's suffix topics are archived into its partitions; --topic reads
// one topic, the default reads all, and a name that is no Kafka topic is refused.
func TestQueryTopic(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	b, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i, tp := range []string{"logs.shop", "logs.shop.audit"} {
		o := layout.Object{Namespace: "shop", Hour: at, Topic: tp, Partition: 0, Start: 0, End: int64(i), Format: layout.Parquet}
		var es []objectformat.Entry
		for j := 0; j <= i; j++ {
			l := archivetest.Line{Namespace: "shop", Pod: "web", Container: "app", Time: at.Add(time.Duration(j) * time.Second), KafkaTime: at, Message: tp}
			es = append(es, archivetest.Entry(l, tp, 0, int64(j)))
		}
		if _, err := archivetest.WriteObject(context.Background(), b, "", o, es, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		topic string
		want  []string
		code  int
	}{
		{"", []string{"logs.shop", "logs.shop.audit", "logs.shop.audit"}, 0},
		{"logs.shop", []string{"logs.shop"}, 0},
		{"logs.shop.audit", []string{"logs.shop.audit", "logs.shop.audit"}, 0},
		{"logs.shop.debug", nil, 0},
		{"logs/shop", nil, 1},
	} {
		var stdout, stderr syncbuf.Buffer
		args := []string{"query", "--bucket", url, "--namespace", "shop", "--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T10:05:00Z", "--output", "text"}
		if tt.topic != "" {
			args = append(args, "--topic", tt.topic)
		}
		code := run(context.Background(), args, &stdout, &stderr)
		var got []string
		for _, ln := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if f := strings.Fields(ln); len(f) > 0 {
				got = append(got, f[len(f)-1])
			}
		}
		slices.Sort(got)
		if code != tt.code || !slices.Equal(got, tt.want) {
			t.Errorf("--topic %q: exit %d, messages %q (stderr %s); want exit %d, %q", tt.topic, code, got, stderr.String(), tt.code, tt.want)
		}
	}
}
