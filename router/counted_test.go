package router

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestPipelineCountsOnceAcrossProduceFailures: Kafka refuses some produce requests for good
// (a non-retriable error), so chunks fail and the file is read again from its checkpoint, which
// stays before lines held for joining: lines acknowledged before are read and run through the
// pipeline again. Every line's outcome is still counted exactly once: the totals (what
// status.counters sums) equal what the input decides, line for line.
func TestPipelineCountsOnceAcrossProduceFailures(t *testing.T) {
	set := compileSet(t, "once", nil, map[string]v1alpha1.LogPipelineSpec{"p": {
		Steps: []v1alpha1.Step{
			{Multiline: &v1alpha1.MultilineStep{Start: `^\S`, MaxLines: 1000, MaxBytes: 1 << 20,
				FlushTimeout: &metav1.Duration{Duration: time.Minute}}},
			{Drop: &v1alpha1.ConditionStep{If: `record.message.startsWith("drop")`}},
		},
	}})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	frozen := func() time.Time { return t0 } // no flush timeout fires
	cl := newCluster(t)
	var produces, refused atomic.Int64
	const refuse = 2
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		// (Only the collector produces here; newer requests name topics by ID.)
		if produces.Add(1)%2 != 0 || refused.Load() >= refuse {
			return nil, nil, false
		}
		refused.Add(1)
		return refusal(r), nil, true
	})
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("once", "app", "java", loadgen.CRI)
	cfg := testConfig(t, node, brokers)
	cfg.ReadBytes = 4096 // many chunks
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.now = frozen
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"once": set}})
	})

	var want counters.Counts
	ts := t0
	write := func(msg string) {
		ts = ts.Add(time.Millisecond)
		if err := c.Write(ts, "stdout", msg+" "+strings.Repeat("x", 200)); err != nil {
			t.Fatal(err)
		}
		want.Selected++
	}
	records := 0
	for i := range 60 {
		write(fmt.Sprintf("group %d starts", i))
		records++
		for j := range i % 4 {
			write(fmt.Sprintf("  at frame %d of group %d", j, i))
		}
		if i%5 == 0 {
			write(fmt.Sprintf("drop %d", i))
			want.Dropped++
		}
		if i%10 == 9 {
			time.Sleep(50 * time.Millisecond) // several reads, several produce requests
		}
	}
	// Under load the collector may have sent all of it in fewer requests than it takes to
	// refuse two: more groups until two were refused.
	for i, deadline := 60, time.Now().Add(60*time.Second); refused.Load() < refuse && time.Now().Before(deadline); i++ {
		write(fmt.Sprintf("group %d starts", i))
		records++
		write(fmt.Sprintf("  at frame 0 of group %d", i))
		time.Sleep(50 * time.Millisecond)
	}
	write("last group") // holds the one before it to its end: emitted at shutdown
	records++
	want.Emitted = int64(records)
	if refused.Load() < refuse {
		t.Fatalf("%d produce requests, %d refused, %v acked", produces.Load(), refused.Load(), testutil.ToFloat64(r.c.metrics.forNamespace("once").linesAcked))
	}
	nsm := r.c.metrics.forNamespace("once")
	waitFor(t, 60*time.Second, func() bool { return testutil.ToFloat64(nsm.linesAcked) >= float64(want.Selected-want.Dropped-1) })
	if err := r.stop(); err != nil { // flushes the last group
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(nsm.produceErrors); n == 0 {
		t.Fatal("no produce failed: the test did not test anything")
	}
	got := pipelineTotals(r.c)[counters.Key{Namespace: "once", Pipeline: "p"}]
	if got.Selected != want.Selected || got.Emitted != want.Emitted || got.Dropped != want.Dropped {
		t.Errorf("totals after %d refused produce requests: %+v, want selected %d, emitted %d, dropped %d (each line once)",
			refused.Load(), got, want.Selected, want.Emitted, want.Dropped)
	}
	recs := consume(t, brokers, records, 30*time.Second)
	if len(recs) != records {
		t.Errorf("%d records in Kafka, want %d", len(recs), records)
	}
}

// refusal answers a produce request with INVALID_RECORD for every partition: franz-go does not
// retry it, the collector reads the lines again from its checkpoint.
func refusal(r *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, tp := range r.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
		for _, p := range tp.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.InvalidRecord.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
