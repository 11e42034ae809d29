package router

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestCheckpointFingerprintsUnreadFile: a file opened empty and then written while its reader
// cannot read (Kafka holds every produce, the budget is full) is checkpointed with a fingerprint
// of its first bytes all the same. Without one, a restart after the file was rotated away and its
// inode reused by a new file would resume the new file as the old one, and never count the old
// one's lines as lost (docs/reliability.md, finding 4).
func TestCheckpointFingerprintsUnreadFile(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	hold, release := holdProduce(t, brokers, cl)
	hold.Store(true)
	defer close(release)
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, node, brokers)
	cfg.BufferBytes = 512 << 10
	cfg.ShutdownGrace = 100 * time.Millisecond
	big, err := node.AddContainer("team-a", "big-0", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1.7e9, 0)
	for i := range 20_000 { // 4 MiB: far more than the budget
		if err := big.Write(ts, "stdout", loadgen.SeqMessage("a", i, 200)); err != nil {
			t.Fatal(err)
		}
	}
	empty, err := node.AddContainer("team-b", "quiet-0", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	r := startCollector(t, cfg)
	waitRead(t, r, "team-a")
	// Both files are open (the empty one too) before it gets lines.
	for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(r.c.metrics.openFiles) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the empty file was never opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// 200 KiB: a read reserves for what the file holds, and this does not fit in what the full
	// budget has left (a few short lines would).
	for i := range 10 {
		if err := empty.Write(ts, "stdout", loadgen.SeqMessage("b", i, 20<<10)); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(empty.Path())
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	want := int(min(fi.Size(), fileid.FingerprintSize))
	store, err := checkpoint.Open(cfg.CheckpointDir)
	if err != nil {
		t.Fatal(err)
	}
	var last checkpoint.Entry
	for deadline := time.Now().Add(30 * time.Second); ; {
		entries, _ := store.Load()
		for _, e := range entries {
			if e.Inode == ino {
				last = e
			}
		}
		if last.FingerprintLen == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint of the unread file: fp_len %d, want %d (%+v)", last.FingerprintLen, want, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues("team-b")); got != 0 {
		t.Fatalf("the staging failed: team-b's reader read %v lines (it must be held back by the full budget)", got)
	}
	fd, err := os.Open(empty.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if ok, _ := fileid.Matches(fd, last.FingerprintLen, last.Fingerprint); !ok || last.Offset != 0 {
		t.Fatalf("entry %+v does not describe the file's first bytes at offset 0", last)
	}
}

// TestFingerprintLengthenedAfterStat: a checkpoint save lengthens a short fingerprint from the
// file's bytes at that moment (extendFingerprint), beside the reader. When that happened between
// a poll's stat and its checks, with a line written in between, the file looked shorter than its
// fingerprint: taken for truncated (copytruncate), its copy looked for and its tail "counted
// lost", and the file read again from its start (TestSystemFlood in CI: 4 duplicates, 68 bytes
// counted, nothing lost, rename rotation only). The seam stages exactly that interleaving.
func TestFingerprintLengthenedAfterStat(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	const ns = "lengthened"
	cont, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	w := &seqWriter{c: cont, key: ns}
	w.write(t, 1)
	cfg := testConfig(t, node, brokers)
	var armed, fired atomic.Bool
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.afterStat = func(f *file) {
			if armed.Load() && !fired.Swap(true) {
				w.write(t, 1) // the second line lands after the poll's stat
				f.extendFingerprint()
			}
		}
	})
	read := func() float64 { return testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues(ns)) }
	for deadline := time.Now().Add(30 * time.Second); read() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first line was not read")
		}
	}
	armed.Store(true)
	for deadline := time.Now().Add(30 * time.Second); !fired.Load() || read() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fired %v, %v lines read", fired.Load(), read())
		}
	}
	w.write(t, 1)
	got := consumeUntil(t, brokers, ns, 2, 30*time.Second) // a read from the start comes before it
	checkInOrderOnce(t, got, ns)
	if n := testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("truncate")); n != 0 {
		t.Errorf("%v truncations seen in a file only appended to", n)
	}
	if n := testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)); n != 0 {
		t.Errorf("%v bytes counted lost, nothing was", n)
	}
}

// TestFingerprintOfWhatWasRead: a file's fingerprint must be of the content its reader read,
// whatever the file holds when it is taken. A node file opened empty was read (a whole round),
// then copytruncated and refilled to the same size before its fingerprint was taken from the
// file's first bytes: it got the next round's fingerprint at the old round's end, and the reader
// took the refilled file for read (TestNodeFilesRotation, 300 lines missing and the copy of the
// old round read twice: docs/reliability.md, finding 6). Each case sets the file's fingerprint
// state, reads or rewrites as its reader and kubelet would, and checks what the fingerprint is.
func TestFingerprintOfWhatWasRead(t *testing.T) {
	a := []byte(strings.Repeat("a-round-line\n", 200)) // 2,600 bytes
	b := []byte(strings.Repeat("b-round-line\n", 200)) // the same size
	sum := func(p []byte) uint64 { return xxhash.Sum64(p[:min(len(p), fileid.FingerprintSize)]) }
	for _, tc := range []struct {
		name    string
		open    []byte // the file's content when opened (fingerprinted)
		read    bool   // the reader reads the content from offset 0 (marked before, printed after)
		rewrite []byte // the file's content after the read, before the save's extension
		want    uint64 // the fingerprint after the extension
		wantLen int
	}{
		{name: "opened empty, read, refilled before the save", open: nil, read: true, rewrite: b, want: sum(a), wantLen: fileid.FingerprintSize},
		{name: "opened empty, not read, written: the save fingerprints it", open: nil, rewrite: a, want: sum(a), wantLen: fileid.FingerprintSize},
		{name: "opened short, grown", open: a[:100], rewrite: a, want: sum(a), wantLen: fileid.FingerprintSize},
		{name: "opened short, truncated and refilled", open: a[:100], rewrite: b, want: xxhash.Sum64(a[:100]), wantLen: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(p, tc.open, 0o644); err != nil {
				t.Fatal(err)
			}
			fd, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			n, s, _ := fileid.Fingerprint(fd)
			f := &file{fd: fd, fpLen: n, fp: s}
			if tc.read {
				if err := os.WriteFile(p, a, 0o644); err != nil {
					t.Fatal(err)
				}
				f.mu.Lock()
				f.readUnprinted = f.fpLen == 0 // as step marks a read at offset 0
				f.mu.Unlock()
				data := make([]byte, len(a))
				k, _ := fd.ReadAt(data, 0)
				if err := os.WriteFile(p, tc.rewrite, 0o644); err != nil {
					t.Fatal(err)
				}
				f.extendFingerprint() // a checkpoint save, before the reader's own
				f.printRead(data[:k])
			} else if err := os.WriteFile(p, tc.rewrite, 0o644); err != nil {
				t.Fatal(err)
			}
			f.extendFingerprint()
			if f.fpLen != tc.wantLen || f.fp != tc.want {
				t.Errorf("fingerprint (%d, %x), want (%d, %x)", f.fpLen, f.fp, tc.wantLen, tc.want)
			}
			if tc.read && f.sameContent() {
				t.Error("the refilled file passes for the content read: its truncation would go unseen")
			}
		})
	}
}
