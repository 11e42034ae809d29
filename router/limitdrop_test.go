package router

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestLimitDroppedOnceAcrossProduceFailures: namespace flood has a drop limit (burst 50, the
// collector's clock standing still) and Kafka refuses the first produce request, so the chunk
// fails and the file is read again from its checkpoint, through the limit again. Each line is
// counted dropped once, by the read that Kafka acknowledged: the namespace's
// limit_lines_total{action="dropped"} equals the pipeline's limit_dropped. Before, the
// namespace counted at the read, so the lines dropped by the failed read counted twice.
func TestLimitDroppedOnceAcrossProduceFailures(t *testing.T) {
	const lines = 300
	st := floodLimited(t, v1alpha1.LimitDrop)
	cl := newCluster(t)
	var refused atomic.Int64
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if refused.Load() > 0 {
			return nil, nil, false
		}
		refused.Add(1)
		return refusal(req.(*kmsg.ProduceRequest)), nil, true
	})
	brokers := cl.ListenAddrs()[0]
	node := writeFlood(t, lines) // one read (--read-bytes 64 KiB)
	c, _, stop := runClocked(t, testConfig(t, node, brokers), st)
	fm := c.metrics.forNamespace("flood")
	pm := c.metrics.forKey(counters.Key{Namespace: "flood", Pipeline: "all"})
	// The first read fed the burst and dropped the rest; its chunk failed. The read again finds
	// the buckets empty (the clock stands still) and drops every line: each of them counted
	// once, by that read.
	waitFor(t, 30*time.Second, func() bool { return testutil.ToFloat64(pm.prom[outLimitDropped]) == lines })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if refused.Load() == 0 || testutil.ToFloat64(fm.produceErrors) == 0 {
		t.Fatal("no produce failed: the test did not test anything")
	}
	if n := testutil.ToFloat64(fm.limitDropped); n != lines {
		t.Errorf("namespace: %v lines counted dropped, want %d (each once; the pipeline says %v)", n, lines, testutil.ToFloat64(pm.prom[outLimitDropped]))
	}
	if n := testutil.ToFloat64(fm.linesAcked); n != 0 {
		t.Errorf("%v lines acknowledged, want 0 (every line dropped by the read Kafka acknowledged)", n)
	}
}

// floodRate and floodBurst are floodLimited's limit.
const floodRate, floodBurst = 10, 50

// floodLimited is the state of the limit tests: namespace flood (labelled tier=flood, see
// labelProvider) limited to floodRate lines/s with floodBurst and action, with one pipeline,
// "all", that selects every line.
func floodLimited(t *testing.T, action v1alpha1.LimitAction) *pipeline.State {
	t.Helper()
	policy, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{Overrides: []v1alpha1.Override{{
		Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "flood"}},
		Limits:     &v1alpha1.Limits{LinesPerSecond: floodRate, BurstLines: floodBurst, Action: action},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	set := compileSet(t, "flood", policy, map[string]v1alpha1.LogPipelineSpec{"all": {}})
	return &pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{"flood": set}}
}

// writeFlood writes n sequence-numbered lines of 100 bytes into namespace flood's container
// and returns the node.
func writeFlood(t *testing.T, n int) *loadgen.Node {
	t.Helper()
	node, _ := loadgen.NewNode(t.TempDir())
	f, _ := node.AddContainer("flood", "spam", "app", loadgen.CRI)
	for s := range n {
		if err := f.Write(time.Now(), "stdout", loadgen.SeqMessage("flood", s, 100)); err != nil {
			t.Fatal(err)
		}
	}
	return node
}
