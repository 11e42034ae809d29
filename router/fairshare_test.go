package router

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// TestNodeSourcesFairShare: a node file source and a tenant namespace share the one byte
// budget, each one participant of its fair share, in both directions. The storming side's
// backlog fills the budget while Kafka holds every produce (so the budget, not reading, is the
// bottleneck); the quiet side then writes and its reader waits for room. Once Kafka answers
// again, all the quiet side's lines are acknowledged while the storming side still has most of
// its backlog to ship, and then every line of both arrives once, in order.
func TestNodeSourcesFairShare(t *testing.T) {
	const (
		stormLines = 6000 // 1.2 MB: about 19 budgets
		quietLines = 100  // 20 kB: a third of one
		size       = 200
	)
	for _, tc := range []struct {
		name        string
		nodeStorms  bool
		storm, calm string // keys of the lines
	}{
		{name: "audit log storm, tenant writes", nodeStorms: true, storm: "audit", calm: "team-a"},
		{name: "tenant storm, audit log writes", storm: "team-a", calm: "audit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			hold, release := holdProduce(t, cl.ListenAddrs()[0], cl)
			hold.Store(true)
			brokers := cl.ListenAddrs()[0]
			dir := t.TempDir()
			cfg := nodeTestConfig(t, brokers, nodefiles.Source{Name: "audit", Paths: []string{filepath.Join(dir, "audit.log")}})
			cfg.ReadBytes = 4 << 10
			cfg.BufferBytes = 64 << 10
			node, err := loadgen.NewNode(filepath.Dir(cfg.LogDir))
			if err != nil {
				t.Fatal(err)
			}
			cfg.LogDir, cfg.PodsDir = node.LogDir, node.PodsDir
			ct, err := node.AddContainer("team-a", "web", "app", loadgen.CRI)
			if err != nil {
				t.Fatal(err)
			}
			audit := newNodeLog(t, dir, "audit.log")
			participant := map[string]string{"audit": "node-file:audit", "team-a": "team-a"}
			write := func(key string, n int) {
				for i := range n {
					msg := loadgen.SeqMessage(key, i, size)
					if key == "audit" {
						audit.write(msg)
					} else if err := ct.Write(time.Now(), "stdout", msg); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(tc.storm, stormLines)
			r := startCollector(t, cfg)
			b := r.c.Budget()
			// The storm fills the budget: its reader waits with the rest of its file unread.
			waitFor(t, 30*time.Second, func() bool { return b.Waiting(participant[tc.storm]) })
			if used, by := b.Used(), b.UsedBy(participant[tc.storm]); used != by || used < cfg.BufferBytes/2 {
				t.Fatalf("budget: %d bytes used, %d by the storm; want the storm to hold it all, over half of %d", used, by, cfg.BufferBytes)
			}
			write(tc.calm, quietLines)
			waitFor(t, 30*time.Second, func() bool { return b.Waiting(participant[tc.calm]) })
			hold.Store(false)
			close(release)
			waitFor(t, 60*time.Second, func() bool {
				return metricValue(r.c.metrics.linesAcked, participant[tc.calm]) >= quietLines
			})
			if acked := metricValue(r.c.metrics.linesAcked, participant[tc.storm]); acked > stormLines/2 {
				t.Errorf("the quiet side's %d lines were acknowledged only after %v of the storm's %d: it did not get its share", quietLines, acked, stormLines)
			}
			got := consume(t, brokers, stormLines+quietLines, 60*time.Second)
			if dups := checkSequences(t, got, map[string]int{tc.storm: stormLines, tc.calm: quietLines}); dups != 0 {
				t.Errorf("%d duplicates", dups)
			}
		})
	}
}
