package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/integration/collectortest"
)

// BenchmarkArchive measures the archiver subprocess archiving a backlog from kfake (in this
// process) to file://: input MB/s per CPU second of the archiver, its peak RSS, and objects per
// partition-hour. Size with ARCHIVE_BENCH_MB (default 256).
//
//	go test -run XXX -bench BenchmarkArchive -benchtime 1x ./integration/
func BenchmarkArchive(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("ARCHIVE_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	bin := collectortest.Binary(b)
	for _, parts := range []int32{1, 200} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			for b.Loop() {
				benchArchive(b, bin, parts, int64(mb)<<20)
			}
		})
	}
}

func benchArchive(b *testing.B, bin string, parts int32, inputBytes int64) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "logs.bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	// ~1 KiB JSON-in-message lines, the shape the collector produces.
	msg := `{"level":"info","ts":"2026-11-21T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items/` + strings.Repeat("a", 700) + `","status":200}`
	var produced, records int64
	now := time.Now()
	batch := make([]*kgo.Record, 0, 2000)
	for produced < inputBytes {
		batch = batch[:0]
		for i := 0; i < 2000 && produced < inputBytes; i++ {
			r := archivetest.Record(archivetest.Line{Namespace: "bench", Pod: fmt.Sprintf("web-%d", records%50), Container: "app",
				Time: now, KafkaTime: now, Message: msg, Partition: int32(records % int64(parts))})
			batch = append(batch, r)
			produced += int64(len(r.Value))
			records++
		}
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "bucket"), 0o755)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	maddr := ln.Addr().String()
	ln.Close()
	t0 := time.Now()
	p := startArchiver(b, bin, "--brokers", strings.Join(kc.ListenAddrs(), ","), "--bucket", "file://"+filepath.Join(dir, "bucket"),
		"--spool-dir", filepath.Join(dir, "spool"), "--metrics-addr", maddr, "--group", "bench",
		"--cpu-profile", os.Getenv("ARCHIVE_BENCH_CPUPROFILE"))
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	var maxSys, maxRSS, maxHeap float64
	for {
		if os.Getenv("ARCHIVE_BENCH_LOG") != "" {
			maxSys = max(maxSys, scrapeSum(maddr, "go_memstats_sys_bytes"))
			maxHeap = max(maxHeap, scrapeSum(maddr, "go_memstats_heap_inuse_bytes"))
			maxRSS = max(maxRSS, scrapeSum(maddr, "process_resident_memory_bytes"))
		}
		if n := scrapeSum(maddr, "logrouter_archiver_records_total"); n >= float64(records) {
			break
		}
		select {
		case err := <-exited:
			b.Fatalf("archiver exited: %v\n%s", err, tail(p.stderr.String(), 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
	consumed := time.Since(t0)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		b.Fatalf("archiver: %v\n%s", err, tail(p.stderr.String(), 3000))
	}
	wall := time.Since(t0)
	if os.Getenv("ARCHIVE_BENCH_LOG") != "" {
		fmt.Fprintln(os.Stderr, tail(p.stderr.String(), 12000))
		fmt.Fprintf(os.Stderr, "sampled max: go sys %.0f MiB, heap in use %.0f MiB, RSS %.0f MiB\n", maxSys/(1<<20), maxHeap/(1<<20), maxRSS/(1<<20))
	}
	ps := p.cmd.ProcessState
	cpu := ps.UserTime() + ps.SystemTime()
	// rusage's maxrss would include the test process (Go execs from a vfork sharing its
	// memory): the archiver reports its own VmHWM when it stops.
	rss := float64(-1)
	if _, after, ok := strings.Cut(p.stderr.String(), `"peak_rss_bytes":`); ok {
		v, _ := strconv.ParseFloat(strings.TrimRight(strings.SplitN(after, "}", 2)[0], " "), 64)
		rss = v / (1 << 20)
	}
	bk, err := blob.OpenBucket(ctx, "file://"+filepath.Join(dir, "bucket"))
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	objs, partHours := 0, map[string]bool{}
	it := bk.List(&blob.ListOptions{Prefix: "namespace="})
	for {
		o, err := it.Next(ctx)
		if err != nil {
			break
		}
		obj, err := layout.ParseKey("", o.Key)
		if err != nil {
			continue
		}
		objs++
		partHours[fmt.Sprintf("%s/%d/%s", obj.Topic, obj.Partition, obj.Hour)] = true
	}
	inMB := float64(produced) / (1 << 20)
	b.ReportMetric(inMB/cpu.Seconds(), "MB/s/core")
	b.ReportMetric(inMB/wall.Seconds(), "MB/s_wall")
	b.ReportMetric(rss, "peak_RSS_MiB")
	b.ReportMetric(float64(objs)/float64(len(partHours)), "objects/partition-hour")
	b.ReportMetric(inMB, "input_MB")
	b.ReportMetric(consumed.Seconds(), "s_to_consume")
}

// scrapeSum sums a metric's samples from a Prometheus text endpoint (0 if unreachable).
func scrapeSum(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}
