package router

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestUnseenCompressedCounted: a file created, rotated and compressed between two scans was
// never opened, and its lines are only in the .gz, which the collector does not read. The next
// scan counts exactly its bytes lost (once), with a LOST: line; the .gz files of files the
// collector has open or has read count nothing, and every other line arrives.
func TestUnseenCompressedCounted(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	const ns = "unseen"
	cont, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	w := &seqWriter{c: cont, key: ns}
	cfg := testConfig(t, node, brokers)
	cfg.ScanInterval = time.Hour // the test scans (c.scan): rotations between scans on purpose
	var log syncbuf.Buffer
	w.write(t, 5) // file 0
	r := startLogged(t, cfg, &log)
	// The test's scans start readers with this context: ended before the collector stops.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	waitLines := func(n float64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues(ns)) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%v lines read, want %v", testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues(ns)), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); !r.c.started.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the collector did not start")
		}
	}
	waitLines(5)
	if err := kubeletRotate(cont, 10); err != nil { // file 0 rotated, file 1 live
		t.Fatal(err)
	}
	w.write(t, 5)
	r.c.scan(ctx, false)
	waitLines(10)
	for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(r.c.metrics.openFiles) > 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rotated file 0 was never let go")
		}
	}
	// No scan from here: file 2 is created, written, rotated and compressed unseen. File 0's
	// .gz (read, let go) and file 1's (open) must not count.
	if err := kubeletRotate(cont, 10); err != nil { // file 1 rotated (file 0 gzipped), file 2 live
		t.Fatal(err)
	}
	unseenFrom := len(w.sizes)
	w.write(t, 4)
	var unseenBytes int64
	for _, n := range w.sizes[unseenFrom:] {
		unseenBytes += n
	}
	if err := kubeletRotate(cont, 10); err != nil { // file 2 rotated (file 1 gzipped), file 3 live
		t.Fatal(err)
	}
	w.write(t, 2)
	if err := kubeletRotate(cont, 10); err != nil { // file 3 rotated (file 2 gzipped), file 4 live
		t.Fatal(err)
	}
	w.write(t, 3)
	r.c.scan(ctx, false)
	r.c.scan(ctx, false) // counted once

	got := consumeUntil(t, brokers, ns, len(w.sizes)-1, time.Minute)
	lines, actual := w.lostBytes(got)
	if lines != 4 || actual != unseenBytes {
		t.Errorf("lost %d lines (%d bytes), want the unseen file's 4 (%d bytes)", lines, actual, unseenBytes)
	}
	counted := int64(testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
	files := testutil.ToFloat64(r.c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead))
	if counted != unseenBytes || files != 1 {
		t.Errorf("counted %d bytes in %v files, want %d in 1", counted, files, unseenBytes)
	}
	if n := strings.Count(log.String(), `"LOST: a rotated file was compressed before any scan saw it`); n != 1 {
		t.Errorf("%d LOST: lines for the unseen file, want 1:\n%s", n, log.String())
	}
}

// TestCompressedAfterInodeReuse: a rotated file read to its end and let go is compressed, and
// its inode is taken at once by a new file (on a busy node the next file created, often another
// container's, gets the inode just freed) before a scan lists the .gz. The let-go entry went
// with the inode's reuse; the .gz must still be known as read: nothing is counted lost
// (TestSystemFlood counted such a .gz, 1,671 bytes, with every line delivered).
func TestCompressedAfterInodeReuse(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	const ns = "reused"
	cont, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	w := &seqWriter{c: cont, key: ns}
	cfg := testConfig(t, node, brokers)
	cfg.ScanInterval = time.Hour // the test scans (c.scan)
	var log syncbuf.Buffer
	w.write(t, 5) // file 0
	r := startLogged(t, cfg, &log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for deadline := time.Now().Add(30 * time.Second); !r.c.started.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the collector did not start")
		}
	}
	fi, err := os.Stat(cont.Path())
	if err != nil {
		t.Fatal(err)
	}
	ino, err := fileid.Of(fi)
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeletRotate(cont, 10); err != nil { // file 0 rotated, file 1 live
		t.Fatal(err)
	}
	w.write(t, 5)
	r.c.scan(ctx, false)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.c.mu.Lock()
		_, done := r.c.done[ino]
		r.c.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotated file 0 was never let go")
		}
	}
	// A new file took file 0's inode once its compression removed it: placeOne drops the entry
	// of an inode whose file is no longer the one read. Which file gets a freed inode is the
	// filesystem's choice, so the drop is staged here as placeOne does it.
	if err := kubeletRotate(cont, 10); err != nil { // file 1 rotated, file 0 gzipped, file 2 live
		t.Fatal(err)
	}
	r.c.mu.Lock()
	delete(r.c.done, ino)
	r.c.mu.Unlock()
	w.write(t, 2)
	r.c.scan(ctx, false)

	got := consumeUntil(t, brokers, ns, len(w.sizes)-1, time.Minute)
	if lines, actual := w.lostBytes(got); lines != 0 {
		t.Fatalf("lost %d lines (%d bytes)", lines, actual)
	}
	if counted := testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)); counted != 0 {
		t.Errorf("counted %v bytes lost, nothing was:\n%s", counted, log.String())
	}
}
