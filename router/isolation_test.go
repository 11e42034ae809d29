package router

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/router/loadgen"
)

// TestNamespaceFailureIsolated denies one namespace's topic (the broker answers
// TOPIC_AUTHORIZATION_FAILED, as Kafka does without a matching ACL): the other namespaces keep
// flowing, the failure shows in metrics, and once the broker allows it the held-back lines
// arrive, none lost.
func TestNamespaceFailureIsolated(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	var deny atomic.Bool
	deny.Store(true)
	cl.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		r := req.(*kmsg.CreateTopicsRequest)
		if !deny.Load() {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
		denied := false
		for _, tp := range r.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = tp.Topic
			if tp.Topic == "logs.denied" {
				rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				denied = true
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if !denied {
			return nil, nil, false
		}
		return resp, nil, true
	})
	node, _ := loadgen.NewNode(t.TempDir())
	ok, _ := node.AddContainer("allowed", "web", "app", loadgen.CRI)
	bad, _ := node.AddContainer("denied", "web", "app", loadgen.CRI)
	for s := range 200 {
		ok.Write(time.Now(), "stdout", loadgen.SeqMessage("allowed", s, 100))
		bad.Write(time.Now(), "stdout", loadgen.SeqMessage("denied", s, 100))
	}
	cfg := testConfig(t, node, brokers)
	cfg.Sink.TopicBackoff = 200 * time.Millisecond
	r := startCollector(t, cfg)

	got := consume(t, brokers, 200, 30*time.Second)
	checkSequences(t, got, map[string]int{"allowed": 200})
	m := r.c.metrics.forNamespace("denied")
	if testutil.ToFloat64(m.topicErrors) == 0 {
		t.Error("topic_errors_total{namespace=denied} is 0 while its topic is denied")
	}
	if testutil.ToFloat64(m.linesAcked) != 0 {
		t.Error("denied namespace reported acknowledged lines")
	}
	// The broker allows it again: its lines, held back in the file, arrive.
	deny.Store(false)
	got = consume(t, brokers, 400, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"allowed": 200, "denied": 200}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}
