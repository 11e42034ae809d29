package router

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// TestCopyOfLetGoFile stages what duplicated whole copytruncate rounds in
// TestNodeFilesRotation and TestNodeFilesCopyTruncateSameSize (docs/reliability.md, finding 6):
// a scan between logrotate's copy and its truncation finds the copy the newest file of the glob,
// takes the original for rotated, and lets it go once read to its end; the copy, held because it
// started like the open original, then started like no open file and was read from its start,
// although the original's reader had read every line of it. A copy of a file let go is read
// from where that file was read to, and the original found truncated later ships the copy's
// tail before its new content: every line once, in order.
func TestCopyOfLetGoFile(t *testing.T) {
	lines := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(loadgen.SeqMessage("s", from+i, 100) + "\n")
		}
		return b.String()
	}
	old := lines(0, 50)
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// stage makes the copy of path (read to its end, inode ino) and waits for what the
		// case stages; the test then truncates path and writes new lines into it.
		stage func(t *testing.T, r *running, path string, ino uint64)
		extra int // records other than the numbered lines
	}{
		{name: "scans between the let-go and the truncation", stage: func(t *testing.T, r *running, path string, ino uint64) {
			write(t, path+".1", old)
			waitFor(t, 30*time.Second, func() bool { return isDoneFile(r.c, ino) })
			waitScans(t, r.c, 3)
		}},
		{name: "truncated right after the let-go", stage: func(t *testing.T, r *running, path string, ino uint64) {
			write(t, path+".1", old)
			waitFor(t, 30*time.Second, func() bool { return isDoneFile(r.c, ino) })
		}},
		{name: "copied and truncated after the let-go", extra: 1, stage: func(t *testing.T, r *running, path string, ino uint64) {
			// Another file of the glob, modified later than the original: it is the newest.
			write(t, path+".0", "another file of the glob, modified after the original was\n")
			waitFor(t, 30*time.Second, func() bool { return isDoneFile(r.c, ino) })
			write(t, path+".1", old)
		}},
		// A copy is created empty, then written: scans that see it in between must not take it
		// for a new file (TestNodeFilesRotation's duplicates of 01:11, docs/reliability.md).
		{name: "copy seen empty", stage: func(t *testing.T, r *running, path string, ino uint64) {
			write(t, path+".1", "")
			waitSeen(t, r.c, path+".1")
			write(t, path+".1", old)
		}},
		{name: "copy seen partly written", stage: func(t *testing.T, r *running, path string, ino uint64) {
			write(t, path+".1", old[:300])
			waitSeen(t, r.c, path+".1")
			write(t, path+".1", old)
		}},
		{name: "copy seen with a few bytes", stage: func(t *testing.T, r *running, path string, ino uint64) {
			write(t, path+".1", old[:20])
			waitSeen(t, r.c, path+".1")
			write(t, path+".1", old)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			dir := t.TempDir()
			cfg := nodeTestConfig(t, brokers, nodefiles.Source{Name: "auditd", Paths: []string{filepath.Join(dir, "audit.log*")}})
			path := filepath.Join(dir, "audit.log")
			write(t, path, old)
			log := &syncbuf.Buffer{}
			r := startLogged(t, cfg, log)
			consume(t, brokers, 50, 30*time.Second)
			ino := inode(t, path)
			// Older than anything written from now on: the copy (or another file) is the newest.
			past := time.Now().Add(-time.Minute)
			if err := os.Chtimes(path, past, past); err != nil {
				t.Fatal(err)
			}
			tc.stage(t, r, path, ino)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(lines(50, 50)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got := consume(t, brokers, 100+tc.extra, 30*time.Second)
			if dups := checkSequences(t, got, map[string]int{"s": 100}); dups != 0 {
				t.Errorf("%d lines sent twice (the copy read from its start)", dups)
			}
			if n := testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("truncate")); n != 1 {
				t.Errorf("rotations_total{kind=truncate} = %v, want 1", n)
			}
			if t.Failed() {
				t.Logf("collector log:\n%s", log.String())
			}
		})
	}
}

// isDoneFile reports whether the file of inode ino was let go (read to its end, closed).
func isDoneFile(c *Collector, ino uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.done {
		if id.Inode == ino {
			_, open := c.files[id]
			return !open
		}
	}
	return false
}

// waitSeen waits until a scan found path's file: held (as a copy) or read.
func waitSeen(t *testing.T, c *Collector, path string) {
	t.Helper()
	ino := inode(t, path)
	waitFor(t, 30*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.held {
			if id.Inode == ino {
				return true
			}
		}
		for id := range c.files {
			if id.Inode == ino {
				return true
			}
		}
		return false
	})
}

// waitScans waits until n more scans have completed.
func waitScans(t *testing.T, c *Collector, n int) {
	t.Helper()
	c.mu.Lock()
	from := c.scanGen
	c.mu.Unlock()
	// scanGen counts scans begun: n+1 begun means n ended.
	waitFor(t, 30*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.scanGen > from+uint64(n)
	})
}
