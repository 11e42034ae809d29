package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
)

// TestArchiveQueryCLI runs `logrouter query` against a small archive: NDJSON and text output in
// time order, filters, statistics, and precise errors for bad flags.
func TestArchiveQueryCLI(t *testing.T) {
	bin := collectortest.Binary(t)
	dir := t.TempDir()
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hour := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for part := int32(0); part < 2; part++ {
		var es []objectformat.Entry
		for i := 0; i < 10; i++ {
			ts := hour.Add(time.Duration(i*2+int(part)) * time.Minute) // partitions interleave in time
			es = append(es, archivetest.Entry(archivetest.Line{Namespace: "team-a", Pod: fmt.Sprintf("web-%d", part), Container: "app",
				Time: ts, KafkaTime: ts, Message: fmt.Sprintf("GET /%d status=%d", i*2+int(part), 200+300*(i%2))}, "logs.team-a", part, int64(i)))
		}
		o := layout.Object{Namespace: "team-a", Hour: hour, Topic: "logs.team-a", Partition: part, Start: 0, End: 9, Format: layout.Parquet}
		if _, err := archivetest.WriteObject(ctx, b, "arch", o, es, true); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, append([]string{"query", "--bucket", "file://" + dir, "--prefix", "arch"}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, stderr, err := run("--namespace", "team-a", "--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T11:00:00Z", "--stats")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 20 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	var prev time.Time
	for i, l := range lines {
		var r record.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if r.Time.Before(prev) || r.Message != fmt.Sprintf("GET /%d status=%d", i, 200+300*(i/2%2)) {
			t.Fatalf("line %d out of order or wrong: %s", i, l)
		}
		prev = r.Time
	}
	if !strings.Contains(stderr, "objects listed 2, opened 2; records scanned 20, matched 20") {
		t.Errorf("stats: %s", stderr)
	}
	out, stderr, err = run("--namespace", "team-a", "--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T11:00:00Z",
		"--pod", "web-1", "--grep", "status=5", "--output", "text", "--stats")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	want := "2026-11-21T10:03:00Z web-1/app stdout GET /3 status=500\n"
	if !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 5 || !strings.Contains(stderr, "opened 1;") {
		t.Errorf("text output:\n%s\nstats: %s", out, stderr)
	}
	_, stderr, err = run("--since", "yesterday", "--output", "csv", "--grep", "(")
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, w := range []string{"--since", "--output", "--grep"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("error does not name %s: %s", w, stderr)
		}
	}
	_, stderr, err = run("--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T11:00:00Z")
	if err == nil || !strings.Contains(stderr, "namespace is required") {
		t.Errorf("missing namespace: %v %s", err, stderr)
	}
}
