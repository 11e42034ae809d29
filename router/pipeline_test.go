package router

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/router/loadgen"
)

// compileSet compiles one namespace's pipelines (name -> spec) under policy.
func compileSet(t testing.TB, ns string, policy *pipeline.Policy, specs map[string]v1alpha1.LogPipelineSpec) *pipeline.Set {
	t.Helper()
	var ps []*pipeline.Pipeline
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		spec := specs[n]
		p, err := pipeline.Compile(ns, n, 1, &spec, policy)
		if err != nil {
			t.Fatalf("compile %s/%s: %v", ns, n, err)
		}
		ps = append(ps, p)
	}
	return pipeline.NewSet(ns, ps)
}

// rawRecord is a record as read from Kafka, value undecoded.
type rawRecord struct {
	topic string
	value []byte
	rec   record.Record
}

// consumeRaw reads every logs.* topic from the start until want records arrived (then a little
// longer, to see duplicates) or the timeout passed.
func consumeRaw(t testing.TB, brokers string, want int, timeout time.Duration) []rawRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []rawRecord
	deadline := time.Now().Add(timeout)
	var extra time.Time
	for time.Now().Before(deadline) {
		if len(out) >= want && extra.IsZero() {
			extra = time.Now().Add(300 * time.Millisecond)
		}
		if !extra.IsZero() && time.Now().After(extra) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := record.Decode(r.Value)
			if err != nil {
				t.Errorf("record at %s/%d/%d: %v: %s", r.Topic, r.Partition, r.Offset, err, r.Value)
				return
			}
			out = append(out, rawRecord{r.Topic, append([]byte(nil), r.Value...), rec})
		})
	}
	return out
}

// byKey indexes records by (namespace, container, file offset).
func byKey(recs []rawRecord) map[string]rawRecord {
	m := map[string]rawRecord{}
	for _, r := range recs {
		m[fmt.Sprintf("%s/%s/%s@%d", r.rec.Namespace, r.rec.Pod, r.rec.Container, r.rec.Offset)] = r
	}
	return m
}

// TestPipelinesRunOnTheirNamespaceOnly: namespace a's pipeline (json parse, then a set field)
// runs on a's app container only: its records carry the fields. Lines it does not select (a's
// other container, namespace b, whose Set is a's filed nowhere else) ship byte for byte as a
// collector without pipelines ships them. A collector told to expect pipelines reads nothing
// before the first apply.
func TestPipelinesRunOnTheirNamespaceOnly(t *testing.T) {
	const lines = 50
	node, _ := loadgen.NewNode(t.TempDir())
	a, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	aSide, _ := node.AddContainer("a", "web", "sidecar", loadgen.CRI)
	b, _ := node.AddContainer("b", "web", "app", loadgen.Docker)
	ts := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	for s := range lines {
		for _, c := range []*loadgen.Container{a, aSide, b} {
			c.Write(ts.Add(time.Duration(s)*time.Millisecond), "stdout", loadgen.SeqMessage(c.Namespace+"/"+c.Name, s, 120))
		}
	}
	set := compileSet(t, "a", nil, map[string]v1alpha1.LogPipelineSpec{"parse": {
		Selector: v1alpha1.Selector{Containers: []string{"app"}},
		Steps:    []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}, {Set: &v1alpha1.SetStep{Field: "team", Value: `"a"`}}},
	}})

	run := func(apply bool) map[string]rawRecord {
		cl := newCluster(t)
		brokers := cl.ListenAddrs()[0]
		cfg := testConfig(t, node, brokers)
		r := startCollectorWith(t, cfg, func(c *Collector) {
			if apply {
				c.ExpectPipelines()
			}
		})
		if apply {
			// Files wait for the first apply: nothing is read.
			time.Sleep(10 * cfg.PollInterval)
			if n := testutil.ToFloat64(r.c.metrics.forNamespace("a").linesRead); n != 0 {
				t.Fatalf("%v lines read before the first apply", n)
			}
			r.c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": set}})
		}
		got := consumeRaw(t, brokers, 3*lines, 30*time.Second)
		if len(got) != 3*lines {
			t.Fatalf("apply=%v: %d records, want %d", apply, len(got), 3*lines)
		}
		r.stop()
		return byKey(got)
	}
	plain, piped := run(false), run(true)
	for k, p := range piped {
		q, ok := plain[k]
		if !ok {
			t.Fatalf("%s: no such record without pipelines", k)
		}
		if p.rec.Namespace == "a" && p.rec.Container == "app" {
			if p.rec.Fields["team"] != "a" || p.rec.Fields["src"] != "a/app" {
				t.Errorf("%s: fields %v, want the json fields and team=a", k, p.rec.Fields)
			}
			if p.rec.Message != q.rec.Message || !p.rec.Time.Equal(q.rec.Time) {
				t.Errorf("%s: message or time changed by a pipeline without steps that change them", k)
			}
			continue
		}
		if !bytes.Equal(p.value, q.value) || p.topic != q.topic {
			t.Errorf("%s: unselected line changed:\n%s\n%s", k, p.value, q.value)
		}
	}
}
