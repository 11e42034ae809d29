package router

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestStartOrderWithReusedInode: at start, a container's rotated file with no checkpoint and its
// live file whose inode a checkpoint names (a gzipped older file's inode, reused at once by the
// next file: ext4 does) must be read in order, rotated file first. Found by the system proof
// (finding 1): the live file was placed first as "known", the rotated one then did not wait for
// it, and the two were read at once.
func TestStartOrderWithReusedInode(t *testing.T) {
	brokers, node, c, id := rotatedAndLive(t)
	cfg := testConfig(t, node, brokers)
	st, _ := checkpoint.Open(cfg.CheckpointDir)
	// The older file this inode belonged to: read to its end, then gzipped while stopped.
	old := checkpoint.Entry{Dev: id.Dev, Inode: id.Inode, FingerprintLen: fileid.FingerprintSize, Fingerprint: 1,
		Path: filepath.Join(filepath.Dir(c.Path()), "0.log.20251231-235959"), Offset: 4096, Size: 4096,
		Format: "cri", Rotated: true, Namespace: "ord", Updated: time.Now().Add(-time.Minute).UTC()}
	if err := st.Save([]checkpoint.Entry{old}); err != nil {
		t.Fatal(err)
	}
	startCollector(t, cfg)
	got := consume(t, brokers, ordRotated+ordLive, 30*time.Second)
	checkSequences(t, got, map[string]int{"ord": ordRotated + ordLive})
}

// TestTwoCheckpointsOfOneInode: a run that found a checkpointed file gone and its inode taken by
// a new file saves both entries (the gone one not counted yet, the new file's); killed before it
// counted, the next start must count the gone file and resume the new one, whatever their order
// in the file. Found by the system proof (finding 1): entries were kept by inode, one
// overwrote the other, and the gone file's loss was never counted.
func TestTwoCheckpointsOfOneInode(t *testing.T) {
	for _, goneFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "gone entry first", false: "gone entry last"}[goneFirst], func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			node, _ := loadgen.NewNode(t.TempDir())
			c, _ := node.AddContainer("same", "web", "app", loadgen.CRI)
			const key, n = "same", 100
			for s := range n {
				c.Write(time.Now(), "stdout", loadgen.SeqMessage(key, s, 120))
			}
			cfg := testConfig(t, node, brokers)
			r := startCollector(t, cfg)
			consume(t, brokers, n, 30*time.Second)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			st, _ := checkpoint.Open(cfg.CheckpointDir)
			saved, err := st.Load()
			if err != nil || len(saved) != 1 {
				t.Fatalf("checkpoints: %+v, %v", saved, err)
			}
			cur := saved[0]
			// The file the inode held before (another content), gone with 500 bytes unread.
			gone := cur
			gone.FingerprintLen, gone.Fingerprint = fileid.FingerprintSize, cur.Fingerprint^1
			gone.Path = filepath.Join(filepath.Dir(c.Path()), "0.log.20251231-235959")
			gone.Offset, gone.Size, gone.Rotated = 1000, 1500, true
			gone.Updated = cur.Updated.Add(-time.Minute)
			entries := []checkpoint.Entry{gone, cur}
			if !goneFirst {
				entries = []checkpoint.Entry{cur, gone}
			}
			if err := st.Save(entries); err != nil {
				t.Fatal(err)
			}
			r2 := startCollector(t, cfg)
			waitFor(t, 30*time.Second, func() bool { return r2.c.Ready() == nil })
			if got := testutil.ToFloat64(r2.c.metrics.lostBytes.WithLabelValues("same", LossDeletedBeforeRead)); got != 500 {
				t.Errorf("lost_bytes_total = %v, want 500 (the gone file's unread bytes)", got)
			}
			for s := n; s < n+10; s++ {
				c.Write(time.Now(), "stdout", loadgen.SeqMessage(key, s, 120))
			}
			got := consume(t, brokers, n+10, 30*time.Second)
			if dups := checkSequences(t, got, map[string]int{key: n + 10}); dups != 0 {
				t.Errorf("%d duplicates: the live file must be resumed from its checkpoint", dups)
			}
		})
	}
}

// TestDoneInodeReused: a running collector keeps the position of a file it let go (c.done) by
// inode; once that file is deleted, ext4 gives its inode at once to the next new file, of any
// container. A live file that took such an inode, found in the same scan as its container's
// older rotated file, must still be read after it. Found by TestRotationStress under load: the
// live file was placed first as "known", the rotated one then did not wait for it (taken for a
// copytruncate copy), and the two were read at once, out of order.
func TestDoneInodeReused(t *testing.T) {
	brokers, node, _, id := rotatedAndLive(t)
	cfg := testConfig(t, node, brokers)
	startCollectorWith(t, cfg, func(col *Collector) {
		// Another container's file, read to its end and let go, whose inode the live file took.
		other := checkpoint.Entry{Dev: id.Dev, Inode: id.Inode, FingerprintLen: fileid.FingerprintSize, Fingerprint: 1,
			Path: filepath.Join(node.PodsDir, "other_web_0000/app/0.log"), Offset: 4096, Size: 4096,
			Format: "cri", Namespace: "other"}
		col.done[id] = doneFile{entry: other, size: 4096, mtime: time.Now().Add(-time.Hour)}
	})
	got := consume(t, brokers, ordRotated+ordLive, 30*time.Second)
	checkSequences(t, got, map[string]int{"ord": ordRotated + ordLive})
}

// The container of the order tests: ordRotated lines in its rotated file, then ordLive in its
// live one.
const ordRotated, ordLive = 2000, 50

// rotatedAndLive makes a broker and container "ord" with a rotated file and a live file, and
// returns the live file's identity.
func rotatedAndLive(t *testing.T) (brokers string, node *loadgen.Node, c *loadgen.Container, id fileid.ID) {
	t.Helper()
	cl := newCluster(t)
	brokers = cl.ListenAddrs()[0]
	node, _ = loadgen.NewNode(t.TempDir())
	c, _ = node.AddContainer("ord", "web", "app", loadgen.CRI)
	for s := range ordRotated {
		c.Write(time.Now(), "stdout", loadgen.SeqMessage("ord", s, 120))
	}
	if _, err := c.RotateRename(); err != nil {
		t.Fatal(err)
	}
	for s := ordRotated; s < ordRotated+ordLive; s++ {
		c.Write(time.Now(), "stdout", loadgen.SeqMessage("ord", s, 120))
	}
	fi, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	id, err = fileid.Of(fi)
	if err != nil {
		t.Fatal(err)
	}
	return brokers, node, c, id
}
