package router

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/logpath"
)

// TestStartScanRotationRace: kubelet rotates while the collector starts, between the start
// scan's stat of a checkpointed file and its open (system proof finding 4: the restart's scan
// and the workload's first rotations). The checkpoint entry must be decided on the file it
// names, wherever the rotation moved it: resumed at its offset when it is still there (under its
// rotated name), counted as gone (its unread bytes, exactly) when the rotation removed it or when
// its inode now holds another file, whose lines are then read from its start. The old code
// dropped the entry at the failed open: the renamed file was read again from its start, a
// deleted one's loss was never counted.
func TestStartScanRotationRace(t *testing.T) {
	const ns = "race"
	cases := []struct {
		name string
		// lines written into the checkpointed inode's file before the start.
		lines int
		// entry makes the checkpoint entry of the inode from its file (fp: its real
		// fingerprint): what the stopped collector saved.
		entry func(e *checkpoint.Entry, lineEnds []int64)
		// fault runs between the scan's stat and the open (nil: no race).
		fault func(t *testing.T, cont *loadgen.Container)
		// wantRaced: the first placement found the candidate moved.
		wantRaced bool
		// resumedAt: the inode's reader starts there (-1: no reader, its file is gone).
		resumedAt func(e checkpoint.Entry) int64
		// lost: bytes counted lost for the entry.
		lost func(e checkpoint.Entry) int64
		// seqs: the lines that must reach Kafka, once each, in order (then the line written
		// after the start, seq lines).
		seqs []int
	}{
		{
			name:  "renamed between stat and open: resumed at its offset under its rotated name",
			lines: 20,
			entry: func(e *checkpoint.Entry, ends []int64) { e.Offset = ends[9] },
			fault: func(t *testing.T, c *loadgen.Container) {
				if _, err := c.RotateRename(); err != nil {
					t.Fatal(err)
				}
			},
			wantRaced: true,
			resumedAt: func(e checkpoint.Entry) int64 { return e.Offset },
			lost:      func(checkpoint.Entry) int64 { return 0 },
			seqs:      seqRange(10, 21),
		},
		{
			name:  "renamed and compressed between stat and open: its unread bytes are counted",
			lines: 20,
			entry: func(e *checkpoint.Entry, ends []int64) { e.Offset = ends[9] },
			fault: func(t *testing.T, c *loadgen.Container) {
				rotated, err := c.RotateRename()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(rotated); err != nil { // gzip: a new file, this one deleted
					t.Fatal(err)
				}
			},
			wantRaced: true,
			resumedAt: func(checkpoint.Entry) int64 { return -1 },
			lost:      func(e checkpoint.Entry) int64 { return e.Size - e.Offset },
			seqs:      []int{20},
		},
		{
			name:      "the inode holds a new, shorter file: the old one's unread bytes are counted, the new file is read from 0",
			lines:     5,
			entry:     otherFileEntry,
			resumedAt: func(checkpoint.Entry) int64 { return 0 },
			lost:      func(e checkpoint.Entry) int64 { return e.Size - e.Offset },
			seqs:      seqRange(0, 6),
		},
		{
			name:  "the inode holds a new, shorter file, renamed between stat and open: the same",
			lines: 5,
			entry: otherFileEntry,
			fault: func(t *testing.T, c *loadgen.Container) {
				if _, err := c.RotateRename(); err != nil {
					t.Fatal(err)
				}
			},
			wantRaced: true,
			resumedAt: func(checkpoint.Entry) int64 { return 0 },
			lost:      func(e checkpoint.Entry) int64 { return e.Size - e.Offset },
			seqs:      seqRange(0, 6),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, node, cont := brokerAndContainer(t, ns)
			brokers := cl.ListenAddrs()[0]
			var ends []int64
			var size int64
			for s := range tc.lines {
				b := cont.Line(time.Now(), "stdout", false, loadgen.SeqMessage(ns, s, 120))
				if err := cont.WriteRaw(b); err != nil {
					t.Fatal(err)
				}
				size += int64(len(b))
				ends = append(ends, size)
			}
			fi, err := os.Stat(cont.Path()) // what the start's scan saw
			if err != nil {
				t.Fatal(err)
			}
			id, err := fileid.Of(fi)
			if err != nil {
				t.Fatal(err)
			}
			fd, err := os.Open(cont.Path())
			if err != nil {
				t.Fatal(err)
			}
			fpLen, fp, err := fileid.Fingerprint(fd)
			fd.Close()
			if err != nil {
				t.Fatal(err)
			}
			e := checkpoint.Entry{Dev: id.Dev, Inode: id.Inode, FingerprintLen: fpLen, Fingerprint: fp, Path: cont.Path(),
				Size: size, Format: "cri", Namespace: ns, Updated: time.Now().UTC()}
			tc.entry(&e, ends)

			cfg := testConfig(t, node, brokers)
			reg := prometheus.NewRegistry()
			c, err := New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node}}, reg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(func() {
				cancel()
				c.wg.Wait()
				c.sink.Close()
			})
			// As Run starts: the saved entries, then the scan, the read-back and the count.
			c.startup[id] = e
			c.reconciling = make(chan struct{})
			meta, err := logpath.ParsePodLog(cont.Path())
			if err != nil {
				t.Fatal(err)
			}
			stale := candidate{path: cont.Path(), meta: meta, live: true, group: cont.Path(), id: id, size: fi.Size(), mtime: fi.ModTime()}
			if tc.fault != nil {
				tc.fault(t, cont)
			}
			c.place(ctx, []candidate{stale}, true) // the scan that raced the rotation
			c.mu.Lock()
			raced := c.raced
			c.mu.Unlock()
			if raced != tc.wantRaced {
				t.Errorf("first placement raced %v, want %v", raced, tc.wantRaced)
			}
			c.startupScan(ctx)
			c.mu.Lock()
			f := c.files[id]
			var gone []checkpoint.Entry
			for _, g := range c.gone {
				gone = append(gone, g.entry)
			}
			c.mu.Unlock()
			switch want := tc.resumedAt(e); {
			case want < 0 && f != nil:
				t.Errorf("a reader for the inode at %d, want none (its file is gone)", f.ackedOffset())
			case want >= 0 && f == nil:
				t.Errorf("no reader for the inode, want one at %d", want)
			case want >= 0 && f.ackedOffset() != want:
				t.Errorf("the inode's reader starts at %d, want %d", f.ackedOffset(), want)
			}
			if wantGone := tc.lost(e) > 0; wantGone != (len(gone) == 1) {
				t.Errorf("gone entries %+v, want the entry gone: %v", gone, wantGone)
			}
			c.reconcile(ctx)
			c.countGone()
			lost := int64(testutil.ToFloat64(c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
			if want := tc.lost(e); lost != want {
				t.Errorf("lost_bytes_total %d, want %d (entry offset %d, size %d)", lost, want, e.Offset, e.Size)
			}

			// The container writes on after the start; every line due reaches Kafka once, in order.
			if err := cont.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, tc.lines, 120)); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			c.startup = map[fileid.ID]checkpoint.Entry{}
			c.mu.Unlock()
			go func() {
				tk := time.NewTicker(cfg.ScanInterval)
				defer tk.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tk.C:
						c.scan(ctx, false)
					}
				}
			}()
			got := consume(t, brokers, len(tc.seqs), 30*time.Second)
			var seqs []int
			for _, r := range got {
				if k, s, ok := loadgen.ParseSeq(r.rec.Message); ok && k == ns {
					seqs = append(seqs, s)
				}
			}
			if !slices.Equal(seqs, tc.seqs) {
				t.Errorf("lines in Kafka %v, want %v", seqs, tc.seqs)
			}
		})
	}
}

// otherFileEntry makes the entry of an older file that had the inode: longer than the new one
// (its offset past the new file's end), with other first bytes.
func otherFileEntry(e *checkpoint.Entry, ends []int64) {
	old := strings.Repeat("an older file of the container\n", 100)
	e.FingerprintLen, e.Fingerprint = fileid.FingerprintSize, xxhash.Sum64String(old[:fileid.FingerprintSize])
	e.Offset = ends[len(ends)-1] + 1
	e.Size = e.Offset + 45381
}

func seqRange(from, to int) []int {
	var out []int
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

// TestScanDuringReadBack: the start's read-back waits for Kafka (up to 15 s, longer for the
// pipelines); files that appear meanwhile must be found by scans as at any other time, not
// after it: a file created and compressed during that wait would otherwise be lost with no
// run having seen it (system proof finding 4: under load, a namespace's first files were
// created, rotated and compressed while the start's read-back waited for a broker that had
// gone down, and nothing counted them).
func TestScanDuringReadBack(t *testing.T) {
	cases := []struct {
		name string
		// appear makes a file appear during the read-back and returns its path and the
		// lines (key, count) due in Kafka besides the resumed container's.
		appear func(t *testing.T, node *loadgen.Node, resumed *loadgen.Container) (string, map[string]int)
	}{
		{
			name: "a new container",
			appear: func(t *testing.T, node *loadgen.Node, _ *loadgen.Container) (string, map[string]int) {
				c, err := node.AddContainer("late", "web", "app", loadgen.CRI)
				if err != nil {
					t.Fatal(err)
				}
				for s := range 3 {
					c.Write(time.Now(), "stdout", loadgen.SeqMessage("late", s, 120))
				}
				return c.Path(), map[string]int{"late": 3}
			},
		},
		{
			name: "the resumed container rotated",
			appear: func(t *testing.T, _ *loadgen.Node, c *loadgen.Container) (string, map[string]int) {
				if _, err := c.RotateRename(); err != nil {
					t.Fatal(err)
				}
				for s := 3; s < 6; s++ {
					c.Write(time.Now(), "stdout", loadgen.SeqMessage("early", s, 120))
				}
				return c.Path(), map[string]int{"early": 6}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, node, early := brokerAndContainer(t, "early")
			brokers := cl.ListenAddrs()[0]
			for s := range 3 {
				early.Write(time.Now(), "stdout", loadgen.SeqMessage("early", s, 120))
			}
			// The read-back lists offsets first: held, it waits as for a broker gone down.
			var held atomic.Int32
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock)
			cl.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
				cl.KeepControl()
				held.Add(1)
				cl.SleepControl(func() { <-release })
				return nil, nil, false
			})
			cfg := testConfig(t, node, brokers)
			r := startCollector(t, cfg)
			// A file found at start with lines and no checkpoint is read back (a run whose
			// checkpoints were never saved may have sent it): the read-back starts.
			for deadline := time.Now().Add(30 * time.Second); held.Load() == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the start's read-back never listed offsets")
				}
			}
			path, want := tc.appear(t, node, early)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			id, err := fileid.Of(fi)
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				r.c.mu.Lock()
				found := r.c.files[id] != nil
				r.c.mu.Unlock()
				if found {
					break
				}
				if r.c.started.Load() || time.Now().After(deadline) {
					t.Fatal("the file that appeared during the read-back was not found while it waited")
				}
			}
			if r.c.started.Load() {
				t.Fatal("the read-back ended before the check")
			}
			unblock()
			if _, ok := want["early"]; !ok {
				want["early"] = 3
			}
			total := 0
			for _, n := range want {
				total += n
			}
			got := consume(t, brokers, total, 30*time.Second)
			if dups := checkSequencesOrder(t, got, want, nil); dups != 0 {
				t.Errorf("%d duplicates", dups)
			}
		})
	}
}

// brokerAndContainer starts a broker and a node with one CRI container in namespace ns.
func brokerAndContainer(t *testing.T, ns string) (*kfake.Cluster, *loadgen.Node, *loadgen.Container) {
	t.Helper()
	cl := newCluster(t)
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cont, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	return cl, node, cont
}
