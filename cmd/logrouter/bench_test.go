package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
)

// TestMain lets this test binary stand in for logrouter: 'bench collect' runs the collector as a
// child process of its own executable, which in a test is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "collect" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestBenchCollectReportsDefaultsFirst: defaults are the product, so 'bench collect' measures the
// collector's default configuration before one with other flags, and reports for each the whole
// process's CPU (start to exit), the time until every line could be consumed from Kafka, and the
// live phase's latency.
func TestBenchCollectReportsDefaultsFirst(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "collect", "--lines", "300", "--files", "3", "--namespaces", "2", "--live-seconds", "1", "--live-rate", "200",
		"--dir", t.TempDir(), "--compression", "none", "--collector-flags", "--read-bytes 8192"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Log(out)
	def := strings.Index(out, "== default configuration (no collector flags)")
	other := strings.Index(out, "== collector flags: --compression none --read-bytes 8192")
	if def < 0 || other < 0 || def > other {
		t.Fatalf("want the default configuration reported first, then the one with flags:\n%s", out)
	}
	for _, section := range []string{out[def:other], out[other:]} {
		for _, want := range []string{"wall, start to all lines consumable", "collector CPU, start to exit", "lines per CPU-second", "peak RSS", "write-to-consume latency"} {
			if !strings.Contains(section, want) {
				t.Errorf("section without %q:\n%s", want, section)
			}
		}
	}
	if !strings.Contains(out, "collector defaults: --buffer-bytes 6291456, --compression zstd") {
		t.Errorf("the defaults measured are not named:\n%s", out)
	}
}

// TestPrecreateTopics: bench's --precreate-max-message-bytes creates every bench namespace's
// topic with the given limit, as docs/benchmarks.md runs it.
func TestPrecreateTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := precreateTopics(ctx, c.ListenAddrs()[0], 3, 1048588); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "logs.bench-0", "logs.bench-1", "logs.bench-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		got := ""
		for _, cfg := range rc.Configs {
			if cfg.Key == "max.message.bytes" && cfg.Value != nil {
				got = *cfg.Value
			}
		}
		if rc.Err != nil || got != "1048588" {
			t.Errorf("%s: max.message.bytes %q, err %v", rc.Name, got, rc.Err)
		}
	}
}

// TestBenchCollectTypicalPipelines runs docs/benchmarks.md's per-line cost command (scaled
// down): with --pipelines typical every namespace's lines go through the typical chain, so the
// records in Kafka carry its fields (the regex's api, the redacted src) and no line is dropped.
func TestBenchCollectTypicalPipelines(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "collect", "--lines", "200", "--files", "2", "--namespaces", "2", "--live-seconds", "0", "--pipelines", "typical", "--dir", dir}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "lines per CPU-second") || !strings.Contains(out, "backlog: 200 lines") {
		t.Fatalf("report:\n%s", out)
	}
	// The broker kept its data: read the records back.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(filepath.Join(dir, "run-0", "kafka")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("logs.bench-0", "logs.bench-1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for n < 200 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n++
			rec, err := record.Decode(r.Value)
			if err != nil {
				t.Fatalf("record %d: %v", n, err)
			}
			src, _ := rec.Fields["src"].(string)
			if rec.Fields["api"] != "v1" || rec.Fields["level"] != "info" || !strings.HasPrefix(src, "[REDACTED:sha256:") || rec.FieldsError != "" {
				t.Fatalf("record %d: fields %v, fields_error %q", n, rec.Fields, rec.FieldsError)
			}
		})
	}
	if n != 200 {
		t.Fatalf("%d records, want 200", n)
	}
}
