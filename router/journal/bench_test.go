package journal_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/journal"
	"github.com/logrouter/logrouter/router/journal/journaltest"
	"github.com/logrouter/logrouter/router/sink"
)

const benchEntries = 50_000

// benchJournal writes benchEntries kubelet-like entries (about 180 bytes of message, 12
// fields, every 50th long enough to be compressed) once per directory.
func benchJournal(b *testing.B) string {
	b.Helper()
	journaltest.Skip(b)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("logrouter-journal-bench-%d", benchEntries))
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return dir
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	j := &journaltest.Journal{Dir: dir}
	for first := 1; first <= benchEntries; first += 10_000 {
		var es []journaltest.Entry
		for i := first; i < first+10_000; i++ {
			msg := fmt.Sprintf(`I1201 10:%02d:%02d.%06d    2211 kubelet.go:2449] "SyncLoop (PLEG): event for pod" pod="team-%d/web-%d" event={"ID":"%08x","Type":"ContainerStarted"}`, i/60%60, i%60, i, i%40, i%7, i)
			if i%50 == 0 {
				msg += " " + strings.Repeat("detail ", 120)
			}
			es = append(es, journaltest.Entry{Realtime: 1_700_000_000_000_000 + uint64(i)*1000, BootID: boot, Fields: [][2]string{
				{"MESSAGE", msg}, {"PRIORITY", "6"}, {"SYSLOG_FACILITY", "3"}, {"SYSLOG_IDENTIFIER", "kubelet"}, {"_SYSTEMD_UNIT", "kubelet.service"},
				{"_PID", "2211"}, {"_UID", "0"}, {"_GID", "0"}, {"_COMM", "kubelet"}, {"_EXE", "/usr/bin/kubelet"}, {"_HOSTNAME", "node-a"}, {"_TRANSPORT", "stdout"},
			}})
		}
		if err := j.Append(es); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReader: reading and decoding entries (every field) from a journal file.
func BenchmarkReader(b *testing.B) {
	dir := benchJournal(b)
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		r := &journal.Reader{Dirs: []string{dir}, Fresh: true}
		if err := r.Poll(func(_ *journal.Stream, _ uint64, e *journal.Entry) bool { n++; return true }); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
	b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "entries/cpu-s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
}

// BenchmarkSource: the whole path, journal file to Kafka acknowledgement (records encoded,
// produced uncompressed to an in-process kfake, whose CPU is counted too).
func BenchmarkSource(b *testing.B) {
	dir := benchJournal(b)
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			b.Fatal(err)
		}
		scfg := sink.DefaultConfig()
		scfg.Kafka.Brokers, scfg.Compression = c.ListenAddrs()[0], "none"
		s, err := sink.New(scfg, 6<<20)
		if err != nil {
			b.Fatal(err)
		}
		cfg := journal.DefaultConfig()
		cfg.Enabled, cfg.Dirs, cfg.PollInterval = true, []string{dir}, 10*time.Millisecond
		reg := prometheus.NewRegistry()
		src, err := journal.New(cfg, journal.Deps{Sink: s, Budget: budget.New(6 << 20), CheckpointDir: b.TempDir(), Node: "node-a", Topic: testTopic, Kafka: scfg.Kafka,
			MaxLineBytes: 1 << 20, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, reg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- src.Run(ctx) }()
		for acked(reg) < benchEntries {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		s.Close()
		c.Close()
		n += benchEntries
	}
	b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "entries/cpu-s")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

func acked(reg *prometheus.Registry) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "logrouter_collector_journal_entries_acked_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
