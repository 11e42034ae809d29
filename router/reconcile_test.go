package router

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestRestartDoesNotResendWhatKafkaHas leaves the checkpoints where a crash right after a save
// would (before lines that Kafka then acknowledged): the restarted collector finds those lines'
// records in Kafka and does not send them again, and sends what is new.
func TestRestartDoesNotResendWhatKafkaHas(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	long := make([]byte, 3000)
	for i := range long {
		long[i] = 'L'
	}
	var conts []*loadgen.Container
	for _, ns := range []string{"re-a", "re-b"} {
		c, _ := node.AddContainer(ns, "web", "app", loadgen.Format(len(conts)%2))
		conts = append(conts, c)
		for s := range 300 {
			c.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, s, 120))
		}
		c.WriteRaw(c.Line(time.Now(), "stdout", false, string(long))) // cut into chunks
	}
	cfg := testConfig(t, node, brokers)
	cfg.MaxLineBytes = 1000
	r := startCollector(t, cfg)
	consume(t, brokers, 2*300, 30*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// Roll every checkpoint back to the start, as if the collector had died before saving.
	st, _ := checkpoint.Open(cfg.CheckpointDir)
	entries, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		entries[i].Offset = 0
		entries[i].Updated = time.Now().Add(-2 * time.Second)
	}
	if err := st.Save(entries); err != nil {
		t.Fatal(err)
	}
	for i, c := range conts {
		for s := 300; s < 400; s++ {
			c.Write(time.Now(), "stdout", loadgen.SeqMessage([]string{"re-a", "re-b"}[i], s, 120))
		}
	}
	r2 := startCollector(t, cfg)
	got := consume(t, brokers, 2*400, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"re-a": 400, "re-b": 400}); dups != 0 {
		t.Errorf("%d lines sent again although Kafka had them", dups)
	}
	// 300 lines and 4 chunks per file were found in Kafka.
	for _, ns := range []string{"re-a", "re-b"} {
		if n := testutil.ToFloat64(r2.c.metrics.forNamespace(ns).alreadyInKafka); n != 304 {
			t.Errorf("%s: lines_already_in_kafka_total = %v, want 304", ns, n)
		}
	}
}
