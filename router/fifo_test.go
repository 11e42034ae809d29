package router

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestReplacedByFIFOAfterScan: a log file the scan found regular and that is replaced by a FIFO
// before it is opened (the bad-input corpus's replaced-by-fifo, at the worst moment) must not
// block the open: a blocking open of a FIFO waits for a writer for ever, and discovery with it.
func TestReplacedByFIFOAfterScan(t *testing.T) {
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, node, "127.0.0.1:1")
	c, err := New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node}}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(node.PodsDir, "ns_pod_uid", "app", "0.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2026-12-01T10:00:00Z stdout F x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path) // what the scan saw
	if err != nil {
		t.Fatal(err)
	}
	id, err := fileid.Of(fi)
	if err != nil {
		t.Fatal(err)
	}
	cd := candidate{path: path, meta: filemeta.PathMeta{Namespace: "ns", Pod: "pod", PodUID: "uid", Container: "app", File: path},
		live: true, group: path, id: id, size: fi.Size(), mtime: fi.ModTime()}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.placeOne(context.Background(), &cd, false)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Unblock the open so the test can end.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("placeOne blocked opening a FIFO that replaced the scanned file")
	}
	c.mu.Lock()
	n := len(c.files)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("%d files open after the FIFO, want none", n)
	}
}
