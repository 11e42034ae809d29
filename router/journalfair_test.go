package router

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/journal"
	"github.com/logrouter/logrouter/router/journal/journaltest"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestJournalFairShare is TestNodeSourcesFairShare for the systemd journal: a kubelet log storm
// in the journal cannot starve a tenant, and a tenant's storm cannot starve the journal. The
// journal source runs as `logrouter collect --journal` runs it, on the collector's producer and
// byte budget (journal.Participant), over a real journal file written by
// systemd-journal-remote. The storming side's backlog fills the budget while Kafka holds every
// produce; the quiet side then writes and waits for room. Once Kafka answers, all the quiet
// side's lines are acknowledged while the storm still has most of its backlog to ship, and
// every line of both arrives once, in order.
func TestJournalFairShare(t *testing.T) {
	journaltest.Skip(t)
	const (
		budgetBytes = 1 << 20 // four journal chunk reservations
		stormLines  = 24000   // about 7 MB of records: about 7 budgets
		quietLines  = 100
		size        = 200
	)
	for _, tc := range []struct {
		name          string
		journalStorms bool
		storm, calm   string // keys of the lines
	}{
		{name: "kubelet storm in the journal, tenant writes", journalStorms: true, storm: "kubelet", calm: "team-a"},
		{name: "tenant storm, kubelet writes to the journal", storm: "team-a", calm: "kubelet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			hold, release := holdProduce(t, brokers, cl)
			hold.Store(true)
			node, _ := loadgen.NewNode(t.TempDir())
			ct, err := node.AddContainer("team-a", "web", "app", loadgen.CRI)
			if err != nil {
				t.Fatal(err)
			}
			j := &journaltest.Journal{Dir: t.TempDir()}
			seq := 0
			write := func(key string, n int) {
				if key != "kubelet" {
					for i := range n {
						if err := ct.Write(time.Now(), "stdout", loadgen.SeqMessage(key, i, size)); err != nil {
							t.Fatal(err)
						}
					}
					return
				}
				es := make([]journaltest.Entry, 0, n)
				for i := range n {
					seq++
					es = append(es, journaltest.Entry{Realtime: 1_700_000_000_000_000 + uint64(seq), BootID: "0123456789abcdef0123456789abcdef", Fields: [][2]string{
						{"MESSAGE", loadgen.SeqMessage(key, i, size)}, {"PRIORITY", "6"}, {"_SYSTEMD_UNIT", "kubelet.service"}, {"_PID", "42"}, {"_COMM", "kubelet"},
					}})
				}
				if err := j.Append(es); err != nil {
					t.Fatal(err)
				}
			}
			write(tc.storm, stormLines)

			cfg := testConfig(t, node, brokers)
			cfg.ReadBytes, cfg.BufferBytes = 4<<10, budgetBytes
			jreg := prometheus.NewRegistry()
			ctx, cancel := context.WithCancel(context.Background())
			srcDone := make(chan error, 1)
			r := startCollectorWith(t, cfg, func(c *Collector) {
				jcfg := journal.DefaultConfig()
				jcfg.Enabled, jcfg.Dirs, jcfg.PollInterval = true, []string{j.Dir}, 20*time.Millisecond
				jt, err := c.Topic(topic.NodeSystem)
				if err != nil {
					t.Fatal(err)
				}
				src, err := journal.New(jcfg, journal.Deps{Sink: c.Sink(), Budget: c.Budget(), CheckpointDir: t.TempDir(), Node: cfg.Node,
					Topic: jt, Kafka: cfg.Sink.Kafka, MaxLineBytes: cfg.MaxLineBytes, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StallAfter: cfg.AckTimeout}, jreg)
				if err != nil {
					t.Fatal(err)
				}
				done := c.Attach()
				go func() { srcDone <- src.Run(ctx); done() }()
			})
			// Registered after the collector's cleanup, so it runs first: the collector's stop
			// waits for the source (Attach).
			t.Cleanup(func() {
				cancel()
				if err := <-srcDone; err != nil && ctx.Err() == nil {
					t.Errorf("journal source: %v", err)
				}
			})
			participant := map[string]string{"kubelet": journal.Participant, "team-a": "team-a"}
			acked := func(key string) float64 {
				if key == "kubelet" {
					v, _ := gathered(t, jreg, "journal_entries_acked_total", nil)
					return v
				}
				return metricValue(r.c.metrics.linesAcked, key)
			}
			b := r.c.Budget()
			// The storm holds the budget; with nothing acknowledged, its next read waits.
			waitFor(t, 60*time.Second, func() bool { return b.Waiting(participant[tc.storm]) })
			if used, by := b.Used(), b.UsedBy(participant[tc.storm]); used != by || used < budgetBytes/2 {
				t.Fatalf("budget: %d bytes used, %d by the storm; want the storm to hold it all, over half of %d", used, by, budgetBytes)
			}
			write(tc.calm, quietLines)
			// The quiet side either waits for room or, when what the storm left fits its lines
			// (the journal's chunks do not fill the budget to the byte), has read them all.
			read := func(key string) float64 {
				if key == "kubelet" {
					v, _ := gathered(t, jreg, "journal_entries_read_total", nil)
					return v
				}
				return metricValue(r.c.metrics.linesRead, key)
			}
			waitFor(t, 60*time.Second, func() bool { return b.Waiting(participant[tc.calm]) || read(tc.calm) >= quietLines })
			t.Logf("quiet side waiting: %v, read %v of %d; storm read %v of %d", b.Waiting(participant[tc.calm]), read(tc.calm), quietLines, read(tc.storm), stormLines)
			hold.Store(false)
			close(release)
			waitFor(t, 120*time.Second, func() bool { return acked(tc.calm) >= quietLines })
			if n := acked(tc.storm); n > stormLines/2 {
				t.Errorf("the quiet side's %d lines were acknowledged only after %v of the storm's %d: it did not get its share", quietLines, n, stormLines)
			}
			got := consume(t, brokers, stormLines+quietLines, 120*time.Second)
			if dups := checkSequences(t, got, map[string]int{tc.storm: stormLines, tc.calm: quietLines}); dups != 0 {
				t.Errorf("%d duplicates", dups)
			}
		})
	}
}
