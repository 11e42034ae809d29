package router

import (
	"bytes"
	"compress/gzip"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// startLogged is startCollector with the collector's log kept for the test.
func startLogged(t *testing.T, cfg Config, log *syncbuf.Buffer) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node}}, reg, slog.New(slog.NewJSONHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return runCollector(t, c, reg)
}

// seqWriter writes sequence-numbered lines into one container and remembers each line's size.
type seqWriter struct {
	c     *loadgen.Container
	key   string
	sizes []int64
}

func (w *seqWriter) write(t *testing.T, n int) {
	t.Helper()
	for range n {
		b := w.c.Line(time.Now(), "stdout", false, loadgen.SeqMessage(w.key, len(w.sizes), 200))
		if err := w.c.WriteRaw(b); err != nil {
			t.Fatal(err)
		}
		w.sizes = append(w.sizes, int64(len(b)))
	}
}

// lostBytes sums the sizes of the lines not in got.
func (w *seqWriter) lostBytes(got []consumed) (lines int, n int64) {
	seen := map[int]bool{}
	for _, g := range got {
		if k, s, ok := loadgen.ParseSeq(g.rec.Message); ok && k == w.key {
			seen[s] = true
		}
	}
	for s, sz := range w.sizes {
		if !seen[s] {
			lines++
			n += sz
		}
	}
	return lines, n
}

// holdProduce makes the broker answer no Produce request while hold is set, as a slow broker
// does: the collector reads until its budget is full and then waits, with most of the file
// unread. Closing the returned channel lets the held requests through.
func holdProduce(t *testing.T, brokers string, cl interface {
	ControlKey(int16, func(kmsg.Request) (kmsg.Response, error, bool))
	KeepControl()
	SleepControl(func())
}) (hold *atomic.Bool, release chan struct{}) {
	hold, release = &atomic.Bool{}, make(chan struct{})
	cl.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if hold.Load() {
			cl.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	return hold, release
}

// behind is a collector over one container whose broker holds every produce request: its reader
// has read only the file's start (the budget is full) until release is closed.
type behind struct {
	brokers string
	hold    *atomic.Bool
	release chan struct{}
	cont    *loadgen.Container
	w       *seqWriter
	r       *running
	log     *syncbuf.Buffer
}

// startBehind writes n lines into a container of ns and starts the collector on it with produce
// held, once it read some of them.
func startBehind(t *testing.T, ns string, n int, opts ...func(*Config)) *behind {
	t.Helper()
	cl := newCluster(t)
	b := &behind{brokers: cl.ListenAddrs()[0], log: &syncbuf.Buffer{}}
	b.hold, b.release = holdProduce(t, b.brokers, cl)
	node, _ := loadgen.NewNode(t.TempDir())
	b.cont, _ = node.AddContainer(ns, "web", "app", loadgen.CRI)
	b.w = &seqWriter{c: b.cont, key: ns}
	b.w.write(t, n)
	cfg := testConfig(t, node, b.brokers)
	cfg.ReadBytes, cfg.BufferBytes = 4096, 256<<10 // a few reads fill it
	for _, o := range opts {
		o(&cfg)
	}
	b.hold.Store(true)
	b.r = startLogged(t, cfg, b.log)
	waitRead(t, b.r, ns)
	return b
}

// waitRead waits until the collector read lines of ns.
func waitRead(t *testing.T, r *running, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues(ns)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the collector read nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCopyTruncateTailFirst copytruncates a file while the collector has read only its start
// (the broker is slow, the budget full): the copy's remaining lines must reach Kafka before the
// lines written to the truncated file afterwards, in order, none lost and none twice. If the
// copy is compressed (deleted) before the collector could read its tail, exactly the tail's
// bytes are counted lost, with a LOST: line naming the namespace, and the new lines still go.
func TestCopyTruncateTailFirst(t *testing.T) {
	const before, after = 3000, 200
	for _, tc := range []struct {
		name       string
		deleteCopy bool
	}{
		{name: "copy kept: its tail goes first"},
		{name: "copy deleted: its tail is counted lost exactly", deleteCopy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ns = "ct"
			var opts []func(*Config)
			if tc.deleteCopy {
				// No scan after the first: one that saw the copy in the moment between its creation
				// and its deletion would hold it open for the original's reader, and nothing would
				// be lost (the better outcome, but not the case this subtest stages).
				opts = append(opts, func(c *Config) { c.ScanInterval = time.Hour })
			}
			b := startBehind(t, ns, before, opts...)
			brokers, hold, release, cont, w, r, log := b.brokers, b.hold, b.release, b.cont, b.w, b.r, b.log
			copyPath, err := cont.RotateCopyTruncate()
			if err != nil {
				t.Fatal(err)
			}
			if tc.deleteCopy {
				if err := os.Remove(copyPath); err != nil {
					t.Fatal(err)
				}
			}
			w.write(t, after)
			hold.Store(false)
			close(release)

			// The last line written arrives last (or the order is broken, which is checked).
			got := consumeUntil(t, brokers, ns, before+after-1, 2*time.Minute)
			if os.Getenv("LOGROUTER_TEST_LOG") != "" {
				t.Logf("collector log:\n%s", log.String())
			}
			lines, actual := w.lostBytes(got)
			counted := int64(testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
			files := testutil.ToFloat64(r.c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead))
			if !tc.deleteCopy {
				if dups := checkSequences(t, got, map[string]int{ns: before + after}); dups != 0 {
					t.Errorf("%d duplicates", dups)
				}
				if counted != 0 || files != 0 {
					t.Errorf("counted %d bytes (%v files) lost with the copy kept", counted, files)
				}
				if n := testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("copy")); n != 1 {
					t.Errorf("copies read: %v, want 1", n)
				}
				return
			}
			if lines == 0 {
				t.Fatal("nothing lost: the collector had read the whole file before the truncation; the test did not stage the loss")
			}
			// What did arrive is in order, once: the start of the file, then the new lines.
			checkInOrderOnce(t, got, ns)
			if counted != actual || files != 1 {
				t.Errorf("counted %d bytes in %v files, want exactly the %d bytes of the %d lines lost, in 1 file", counted, files, actual, lines)
			}
			if !strings.Contains(log.String(), `"msg":"LOST: the copy of a truncated file`) || !strings.Contains(log.String(), `"namespace":"ct"`) {
				t.Errorf("no LOST: line for the copy's tail:\n%s", log.String()[max(0, len(log.String())-3000):])
			}
			t.Logf("%d lines (%d bytes) lost and counted", lines, actual)
			if t.Failed() {
				t.Logf("collector log:\n%s", log.String())
			}
		})
	}
}

// TestCopyTruncateWhileStopped: the file was copytruncated while the collector was not running,
// with lines behind its checkpoint. The start reads the copy's tail before the new lines; if the
// copy is gone, the bytes between the checkpoint and the size it saved are counted lost.
func TestCopyTruncateWhileStopped(t *testing.T) {
	const shipped, behind, after = 100, 50, 30
	for _, deleteCopy := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy kept", true: "copy deleted"}[deleteCopy], func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			node, _ := loadgen.NewNode(t.TempDir())
			const ns = "cts"
			cont, _ := node.AddContainer(ns, "web", "app", loadgen.CRI)
			w := &seqWriter{c: cont, key: ns}
			w.write(t, shipped)
			cfg := testConfig(t, node, brokers)
			r := startCollector(t, cfg)
			consume(t, brokers, shipped, 30*time.Second)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			w.write(t, behind)
			// As a crash leaves it: the last save saw the lines behind, they were not sent.
			fi, _ := os.Stat(cont.Path())
			st, _ := checkpoint.Open(cfg.CheckpointDir)
			entries, err := st.Load()
			if err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				if entries[i].Namespace == ns {
					entries[i].Size = fi.Size()
				}
			}
			if err := st.Save(entries); err != nil {
				t.Fatal(err)
			}
			copyPath, err := cont.RotateCopyTruncate()
			if err != nil {
				t.Fatal(err)
			}
			if deleteCopy {
				os.Remove(copyPath)
			}
			w.write(t, after)
			var log syncbuf.Buffer
			r2 := startLogged(t, cfg, &log)
			got := consumeUntil(t, brokers, ns, shipped+behind+after-1, 2*time.Minute)
			counted := int64(testutil.ToFloat64(r2.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
			lines, actual := w.lostBytes(got)
			checkInOrderOnce(t, got, ns)
			switch {
			case !deleteCopy && (lines != 0 || counted != 0):
				t.Errorf("copy kept: %d lines lost, %d bytes counted", lines, counted)
			case deleteCopy && (lines != behind || counted != actual):
				t.Errorf("copy deleted: %d lines (%d bytes) lost, %d bytes counted; want the %d lines behind counted exactly", lines, actual, counted, behind)
			}
			if t.Failed() {
				t.Logf("collector log:\n%s", log.String())
			}
		})
	}
}

// consumeUntil reads until key's line seq arrived.
func consumeUntil(t *testing.T, brokers, key string, seq int, timeout time.Duration) []consumed {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := consume(t, brokers, 1<<30, 2*time.Second)
		for _, g := range got {
			if k, s, ok := loadgen.ParseSeq(g.rec.Message); ok && k == key && s == seq {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s seq %d never arrived", key, seq)
		}
	}
}

// checkInOrderOnce fails for a line of key that arrives twice or after a later one.
func checkInOrderOnce(t *testing.T, got []consumed, key string) {
	t.Helper()
	last := -1
	seen := map[int]bool{}
	for _, g := range got {
		k, s, ok := loadgen.ParseSeq(g.rec.Message)
		if !ok || k != key {
			continue
		}
		if seen[s] {
			t.Errorf("%s seq %d twice", key, s)
		} else if s < last {
			t.Errorf("%s seq %d after %d (out of order)", key, s, last)
		}
		seen[s] = true
		last = max(last, s)
	}
}

// TestCopyCompressedBeforeTruncationSeen: the collector is behind (the broker slow, the budget
// full, its reader waiting) when the file grows, is copied and truncated, and the copy is
// compressed before the reader noticed the truncation (a rotation storm on a loaded node).
// The copy's tail is counted lost exactly: to the copy's uncompressed size, not to the size
// the waiting reader last saw (that counted the lines written meanwhile as nothing), and once,
// also when a scan checked the .gz before the truncation was noticed (it was counted as a file
// no scan saw, whole, and then its tail again).
func TestCopyCompressedBeforeTruncationSeen(t *testing.T) {
	const before, more, after = 3000, 300, 100
	for _, tc := range []struct {
		name  string
		scans bool
	}{
		{name: "no scan meanwhile"},
		{name: "a scan checks the compressed copy first", scans: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const ns = "cz"
			var opts []func(*Config)
			if !tc.scans {
				opts = append(opts, func(c *Config) { c.ScanInterval = time.Hour })
			}
			b := startBehind(t, ns, before, opts...)
			w, r, log := b.w, b.r, b.log
			w.write(t, more) // the reader waits for the budget: it does not see these
			// Copied straight into its compressed form: no scan can hold an uncompressed copy.
			data, err := os.ReadFile(b.cont.Path())
			if err != nil {
				t.Fatal(err)
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(data)
			zw.Close()
			if err := os.WriteFile(b.cont.Path()+".20260101-000001.gz", gz.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(b.cont.Path(), 0); err != nil {
				t.Fatal(err)
			}
			w.write(t, after)
			if tc.scans {
				waitScans(t, r.c, 3)
			}
			b.hold.Store(false)
			close(b.release)

			got := consumeUntil(t, b.brokers, ns, len(w.sizes)-1, 2*time.Minute)
			lines, actual := w.lostBytes(got)
			if lines == 0 {
				t.Fatal("nothing lost: the test did not stage the loss")
			}
			checkInOrderOnce(t, got, ns)
			waitFor(t, 10*time.Second, func() bool {
				return testutil.ToFloat64(r.c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead)) > 0
			})
			counted := int64(testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
			files := testutil.ToFloat64(r.c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead))
			if counted != actual || files != 1 {
				t.Errorf("counted %d bytes in %v files, want exactly the %d bytes of the %d lines lost, in 1 file", counted, files, actual, lines)
				t.Logf("collector log:\n%s", log.String())
			}
		})
	}
}
