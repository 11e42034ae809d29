package router

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/loadgen"
)

// kubeletRotate renames c's live file, gzips every rotated file but the newest and deletes the
// oldest beyond keep-1 rotated files (kubelet's containerLogMaxFiles = keep).
func kubeletRotate(c *loadgen.Container, keep int) error {
	if _, err := c.RotateRename(); err != nil {
		return err
	}
	rotated := c.Rotated()
	slices.Sort(rotated)
	for _, p := range rotated[:len(rotated)-1] {
		if !strings.HasSuffix(p, ".gz") {
			if err := loadgen.Gzip(p); err != nil {
				return err
			}
		}
	}
	rotated = c.Rotated()
	slices.Sort(rotated)
	for ; len(rotated) > keep-1; rotated = rotated[1:] {
		if err := os.Remove(rotated[0]); err != nil {
			return err
		}
	}
	return nil
}

// TestOutageWithRotation stops the broker while containers write and kubelet rotates, compresses
// and deletes their files many times over (far more rotations than it keeps): the running
// collector holds every rotated file open, so when the broker is back every line arrives, in
// order, and nothing is counted lost.
func TestOutageWithRotation(t *testing.T) {
	startBroker, brokers := restartableBroker(t)
	broker := startBroker()
	node, _ := loadgen.NewNode(t.TempDir())
	var ws []*seqWriter
	for _, ns := range []string{"rot-a", "rot-b", "rot-c"} {
		for p := range 4 {
			c, err := node.AddContainer(ns, fmt.Sprintf("web-%d", p), "app", loadgen.CRI)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, &seqWriter{c: c, key: ns + "/" + c.Pod})
		}
	}
	cfg := testConfig(t, node, brokers)
	cfg.BufferBytes = 1 << 20
	cfg.ReadBytes = 16 << 10
	r := startCollector(t, cfg)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				w.write(t, 2)
				if i%50 == 49 {
					if err := kubeletRotate(w.c, 5); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	broker.Close()
	time.Sleep(6 * time.Second) // 24 rotations of each container: 19 files deleted while held
	broker = startBroker()
	defer broker.Close()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	want := map[string]int{}
	total := 0
	for _, w := range ws {
		want[w.key] = len(w.sizes)
		total += len(w.sizes)
	}
	got := consume(t, brokers, total, 120*time.Second)
	dups := checkSequences(t, got, want)
	for _, ns := range []string{"rot-a", "rot-b", "rot-c"} {
		if v := testutil.ToFloat64(r.c.metrics.lostBytes.WithLabelValues(ns, "deleted_before_read")); v != 0 {
			t.Errorf("%s: %v bytes counted lost, want 0", ns, v)
		}
	}
	t.Logf("%d lines, %d duplicates", total, dups)
}

// TestIdlePollTakesNoBudget: while Kafka holds every produce and the budget is full, files at
// their end keep polling without waiting for the budget. They used to reserve a read's worth at
// every poll: after a long outage thousands of held rotated files waited in the budget, each
// release woke them all, and the scans starved until they missed files rotated and compressed
// in the meantime (docs/reliability.md, finding 5). A file with lines to read still waits.
func TestIdlePollTakesNoBudget(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	hold, release := holdProduce(t, brokers, cl)
	hold.Store(true)
	node, _ := loadgen.NewNode(t.TempDir())
	cfg := testConfig(t, node, brokers)
	cfg.ReadBytes, cfg.BufferBytes = 4096, 256<<10
	var idle []*seqWriter
	for i := range 4 {
		c, err := node.AddContainer(fmt.Sprintf("idle-%d", i), "web", "app", loadgen.CRI)
		if err != nil {
			t.Fatal(err)
		}
		w := &seqWriter{c: c, key: c.Namespace}
		w.write(t, 3)
		idle = append(idle, w)
	}
	busyC, err := node.AddContainer("busy", "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	busy := &seqWriter{c: busyC, key: "busy"}
	r := startCollector(t, cfg)
	for _, w := range idle {
		for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues(w.key)) < 3; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: its 3 lines were never read", w.key)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	busy.write(t, 5000) // 1.3 MB: far more than the budget
	for deadline := time.Now().Add(30 * time.Second); !r.c.budget.Waiting("busy"); {
		if time.Now().After(deadline) {
			t.Fatal("the busy file never waited for the budget: it is not full")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Many polls of the idle files with the budget full.
	for end := time.Now().Add(20 * cfg.PollInterval); time.Now().Before(end); time.Sleep(cfg.PollInterval / 4) {
		for _, w := range idle {
			if r.c.budget.Waiting(w.key) {
				t.Fatalf("%s: the reader of a file at its end waits for the budget", w.key)
			}
		}
	}
	hold.Store(false)
	close(release)
	want := map[string]int{busy.key: len(busy.sizes)}
	total := len(busy.sizes)
	for _, w := range idle {
		want[w.key] = len(w.sizes)
		total += len(w.sizes)
	}
	if dups := checkSequences(t, consume(t, brokers, total, 60*time.Second), want); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}
