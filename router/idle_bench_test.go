package router

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/router/loadgen"
)

// BenchmarkIdleFiles measures what idle files cost the files that have lines: 20 namespaces of
// idleFilesPer idle files and one busy file each (1,620 files open, as the collector had in the
// rotation storm of docs/reliability.md, finding 2), polled every 20 ms. It reports the whole
// process's CPU time per second while every file is idle (the collector, kfake and an idle
// consumer: idle-cpu-ms/s), and, over 50 rounds, the time from writing one line into each busy
// file to Kafka having all 20 (round-p50-ms, round-p99-ms).
//
//	go test -run '^$' -bench BenchmarkIdleFiles -benchtime 1x -count 3 ./router/
func BenchmarkIdleFiles(b *testing.B) {
	const namespaces, idleFilesPer, rounds = 20, 80, 50
	for range b.N {
		cl := newCluster(b)
		brokers := cl.ListenAddrs()[0]
		node, err := loadgen.NewNode(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		var busy []*loadgen.Container
		line := func(c *loadgen.Container, seq int) {
			if err := c.WriteRaw(c.Line(time.Now(), "stdout", false, loadgen.SeqMessage(c.Namespace+"/"+c.Pod, seq, 200))); err != nil {
				b.Fatal(err)
			}
		}
		for n := range namespaces {
			ns := fmt.Sprintf("idle-%02d", n)
			for i := range idleFilesPer + 1 {
				pod := fmt.Sprintf("idle-%d", i)
				if i == idleFilesPer {
					pod = "busy"
				}
				c, err := node.AddContainer(ns, pod, "app", loadgen.CRI)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				line(c, 0)
				if i == idleFilesPer {
					busy = append(busy, c)
				}
			}
		}
		cfg := testConfig(b, node, brokers)
		cfg.ScanInterval = 100 * time.Millisecond // as the system tests' collector
		r := startCollector(b, cfg)
		cons, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		waitRecords := func(want int) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for got < want {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					b.Fatalf("%d of %d records", got, want)
				}
				got += fs.NumRecords()
			}
		}
		waitRecords(namespaces * (idleFilesPer + 1))
		time.Sleep(time.Second) // every file's first chunk acknowledged and idle
		cpu0 := processCPU(b)
		time.Sleep(5 * time.Second)
		idleCPU := processCPU(b) - cpu0
		var lat []time.Duration
		for k := range rounds {
			t0 := time.Now()
			for _, c := range busy {
				line(c, k+1)
			}
			waitRecords(got + len(busy))
			lat = append(lat, time.Since(t0))
		}
		cons.Close()
		if err := r.stop(); err != nil {
			b.Fatal(err)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(idleCPU.Milliseconds())/5, "idle-cpu-ms/s")
		b.ReportMetric(ms(lat[len(lat)/2]), "round-p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "round-p99-ms")
	}
}
