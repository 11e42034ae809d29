package router

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/router/loadgen"
)

// BenchmarkApplyGap measures what an apply costs collection: 5,000 pipelines in 2,000
// namespaces are applied, one namespace's file is written at a steady rate, and the longest
// gap between two acknowledgements of its lines is taken over a window without an apply and
// over a window in which one pipeline among the 5,000 changes. It reports both gaps and how
// long Apply took (the new Set is used from the file's next chunk on).
//
//	go test -run '^$' -bench BenchmarkApplyGap -benchtime 1x ./router/
func BenchmarkApplyGap(b *testing.B) {
	const namespaces, pipelines, rate = 2000, 5000, 5000 // lines per second
	spec := func(v string) v1alpha1.LogPipelineSpec {
		return v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}, {Set: &v1alpha1.SetStep{Field: "v", Value: `"` + v + `"`}}}}
	}
	state := func(hot string) *pipeline.State {
		st := &pipeline.State{Namespaces: map[string]*pipeline.Set{}}
		per := map[string][]*pipeline.Pipeline{}
		for i := range pipelines {
			ns := fmt.Sprintf("ns-%d", i%namespaces)
			s := spec("1")
			if i == 0 {
				s = spec(hot)
			}
			p, err := pipeline.Compile(ns, fmt.Sprintf("p-%d", i), 1, &s, nil)
			if err != nil {
				b.Fatal(err)
			}
			per[ns] = append(per[ns], p)
		}
		for ns, ps := range per {
			st.Namespaces[ns] = pipeline.NewSet(ns, ps)
		}
		return st
	}
	before := state("1")
	after := state("2")
	// Unchanged namespaces keep their compiled pipelines (as sources do): only ns-0 changes.
	for ns, s := range before.Namespaces {
		if ns != "ns-0" {
			after.Namespaces[ns] = s
		}
	}
	cl := newCluster(b)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(b.TempDir())
	c, _ := node.AddContainer("ns-0", "hot", "app", loadgen.CRI)
	cfg := testConfig(b, node, brokers)
	cfg.PollInterval = 5 * time.Millisecond
	r := startCollectorWith(b, cfg, func(c *Collector) { c.ExpectPipelines(); c.Apply(before) })

	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for s := 0; ; s++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			for range rate / 1000 {
				c.Write(time.Now(), "stdout", loadgen.SeqMessage("hot", s, 120))
			}
		}
	}()
	defer close(stop)
	// gap samples the collector's last acknowledgement time and returns the longest gap
	// between two of them over d.
	gap := func(d time.Duration, during func()) time.Duration {
		var longest time.Duration
		last := r.c.lastAck.Load()
		done := make(chan struct{})
		var fired atomic.Bool
		go func() {
			defer close(done)
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				if !fired.Load() && time.Now().After(end.Add(-d/2)) && during != nil {
					fired.Store(true)
					during()
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		for {
			select {
			case <-done:
				return longest
			default:
			}
			now := r.c.lastAck.Load()
			if now != last {
				longest = max(longest, time.Duration(now-last))
				last = now
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	time.Sleep(time.Second) // warm up
	quiet := gap(3*time.Second, nil)
	var applyTook time.Duration
	var applied time.Time
	withApply := gap(3*time.Second, func() {
		applied = time.Now()
		r.c.Apply(after)
		applyTook = time.Since(applied)
	})
	b.ReportMetric(float64(quiet.Microseconds())/1000, "ms-gap-quiet")
	b.ReportMetric(float64(withApply.Microseconds())/1000, "ms-gap-apply")
	b.ReportMetric(float64(applyTook.Microseconds())/1000, "ms-apply")
}
