package router

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// TestThrottledOnceAcrossRestartAndProduceFailures: a line counts as throttled once, when Kafka
// has it, however often it waited and was read. Namespace flood (10 lines/s, burst 50, throttle)
// has 300 lines. The first collector's clock stands still: its burst goes, the rest waits, and
// it stops cleanly (nothing it counted is counted again by anyone). The second resumes from the
// checkpoint with full buckets: 50 more go without waiting, 200 wait; as its clock moves on,
// two produce requests of the lines that waited are refused, so those lines are read (and
// limited) again from the checkpoint. Every line arrives once, and exactly the 200 lines the
// limit delayed in the process that shipped them are throttled, whatever the read sizes and
// clock steps: per namespace and for the pipeline, never more than the pipeline selected.
func TestThrottledOnceAcrossRestartAndProduceFailures(t *testing.T) {
	const (
		lines  = 300
		burst  = floodBurst
		refuse = 2
	)
	st := floodLimited(t, v1alpha1.LimitThrottle)
	key := counters.Key{Namespace: "flood", Pipeline: "all"}

	cl := newCluster(t)
	var armed atomic.Bool
	var produces, refused atomic.Int64
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if !armed.Load() || produces.Add(1)%2 != 0 || refused.Load() >= refuse {
			return nil, nil, false
		}
		refused.Add(1)
		return refusal(req.(*kmsg.ProduceRequest)), nil, true
	})
	brokers := cl.ListenAddrs()[0]
	node := writeFlood(t, lines)
	cfg := testConfig(t, node, brokers)
	cfg.ReadBytes = 8192 // several reads, several chunks and produce requests

	type outcome struct{ throttled, pipeThrottled float64 }
	var total outcome
	tally := func(c *Collector) counters.Counts {
		t.Helper()
		fm, pm := c.metrics.forNamespace("flood"), c.metrics.forKey(key)
		total.throttled += testutil.ToFloat64(fm.limitThrottled)
		total.pipeThrottled += testutil.ToFloat64(pm.prom[outLimitThrottled])
		got := pipelineTotals(c)[key]
		if got.Throttled > got.Selected {
			t.Errorf("throttled %d > selected %d", got.Throttled, got.Selected)
		}
		return got
	}

	// The first process: the burst goes, the rest waits; a clean stop.
	c1, _, stop1 := runClocked(t, cfg, st)
	fm1 := c1.metrics.forNamespace("flood")
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(fm1.linesAcked) == burst })
	// Still waiting after more polls than it takes to read the file: nothing more goes.
	for range 10 {
		time.Sleep(cfg.PollInterval)
	}
	if n := testutil.ToFloat64(fm1.linesAcked); n != burst {
		t.Fatalf("first process: %v lines acknowledged, want its burst %d", n, burst)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if got := tally(c1); got.Selected != burst || got.Throttled != 0 {
		t.Errorf("first process: %+v, want selected %d and throttled 0 (the lines that waited never went)", got, burst)
	}

	// The second: resumed from the checkpoint, full buckets.
	c2, clock, stop2 := runClocked(t, cfg, st)
	fm2 := c2.metrics.forNamespace("flood")
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(fm2.linesAcked) == burst })
	armed.Store(true)
	// The clock moves on until Kafka has every line. (Not linesAcked: the records of a chunk
	// that failed in part are in Kafka and skipped when read again, never counted there.)
	moving := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		for {
			select {
			case <-moving:
				return
			case <-time.After(10 * time.Millisecond):
				clock.add(time.Second)
			}
		}
	}()
	// (Refused records are sent again after later ones were acknowledged: order is not kept.)
	got := consume(t, brokers, lines, 60*time.Second)
	close(moving)
	<-clockDone
	if err := stop2(); err != nil { // drains: every chunk Kafka has is counted
		t.Fatal(err)
	}
	if dups := checkSequencesOrder(t, got, map[string]int{"flood": lines}, map[string]bool{"flood": true}); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	if n := testutil.ToFloat64(fm2.produceErrors); n == 0 || refused.Load() < refuse {
		t.Fatalf("%v produce errors, %d requests refused: the test did not test a re-read", n, refused.Load())
	}
	if got := tally(c2); got.Selected != lines-burst || got.Emitted != lines-burst {
		t.Errorf("second process: %+v, want selected and emitted %d", got, lines-burst)
	}
	want := float64(lines - 2*burst)
	if total.throttled != want || total.pipeThrottled != want {
		t.Errorf("throttled over both processes: namespace %v, pipeline %v, want %v (each line that waited in the process that shipped it, once)",
			total.throttled, total.pipeThrottled, want)
	}
}

// TestMarkWaited: the ranges of lines that waited stay sorted, disjoint and merged, whatever
// order reads (and reads again after a rewind) mark them in.
func TestMarkWaited(t *testing.T) {
	for _, tc := range []struct {
		name string
		mark [][2]int64
		want []waitSpan
	}{
		{"one", [][2]int64{{10, 20}}, []waitSpan{{10, 20}}},
		{"the same again", [][2]int64{{10, 20}, {10, 20}}, []waitSpan{{10, 20}}},
		{"growing at its end", [][2]int64{{10, 20}, {15, 30}}, []waitSpan{{10, 30}}},
		{"adjacent", [][2]int64{{10, 20}, {20, 30}}, []waitSpan{{10, 30}}},
		{"apart", [][2]int64{{10, 20}, {30, 40}}, []waitSpan{{10, 20}, {30, 40}}},
		{"before, after a rewind", [][2]int64{{30, 40}, {10, 20}}, []waitSpan{{10, 20}, {30, 40}}},
		{"bridging two", [][2]int64{{10, 20}, {30, 40}, {15, 35}}, []waitSpan{{10, 40}}},
		{"covering all", [][2]int64{{10, 20}, {30, 40}, {50, 60}, {0, 100}}, []waitSpan{{0, 100}}},
		{"inside one", [][2]int64{{10, 40}, {20, 30}}, []waitSpan{{10, 40}}},
		{"between two", [][2]int64{{10, 20}, {50, 60}, {30, 40}}, []waitSpan{{10, 20}, {30, 40}, {50, 60}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f file
			for _, m := range tc.mark {
				f.markWaited(m[0], m[1])
			}
			if !slices.Equal(f.waited, tc.want) {
				t.Errorf("%v, want %v", f.waited, tc.want)
			}
		})
	}
}
