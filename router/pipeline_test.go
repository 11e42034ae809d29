package router

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
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

// byKey indexes records by (namespace, container, file offset).
func byKey(recs []consumed) map[string]consumed {
	m := map[string]consumed{}
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

	run := func(apply bool) map[string]consumed {
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
		got := consume(t, brokers, 3*lines, 30*time.Second)
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

// TestPipelineOutputs: a pipeline with an allowed suffix writes to logs.<ns>.<suffix>; its
// records carry the parsed fields, the time a timestamp step took from a field, and a failed
// parse keeps the line and marks it; a line longer than --max-line-bytes bypasses the pipeline
// and ships raw as split chunks, counted as bypassed.
func TestPipelineOutputs(t *testing.T) {
	policy, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"audit"}})
	if err != nil {
		t.Fatal(err)
	}
	set := compileSet(t, "a", policy, map[string]v1alpha1.LogPipelineSpec{"audit": {
		Steps:  []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}, {Timestamp: &v1alpha1.TimestampStep{Field: "at"}}},
		Output: v1alpha1.Output{Suffix: "audit"},
	}})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	now := time.Now()
	c.Write(now, "stdout", `{"at":"2020-01-02T03:04:05Z","user":"ann"}`)
	c.Write(now, "stdout", `not json`)
	long := strings.Repeat("x", 3000)
	c.Write(now, "stdout", long)
	cfg := testConfig(t, node, brokers)
	cfg.MaxLineBytes = 1024
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{"a": set}})
	})
	got := consume(t, brokers, 5, 30*time.Second)
	if len(got) != 5 {
		t.Fatalf("%d records, want 5", len(got))
	}
	var joined strings.Builder
	for i, g := range got {
		if g.topic != "logs.a.audit" {
			t.Errorf("record %d on topic %s", i, g.topic)
		}
		switch {
		case i == 0:
			if g.rec.Fields["user"] != "ann" || !g.rec.Time.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
				t.Errorf("parsed record: fields %v time %v", g.rec.Fields, g.rec.Time)
			}
		case i == 1:
			if g.rec.Message != "not json" || !strings.Contains(string(g.value), `"fields_error":"steps[0].json`) {
				t.Errorf("failed parse: %s", g.value)
			}
		default:
			if g.rec.Split == nil || g.rec.Fields != nil {
				t.Errorf("long line chunk %d not raw split: %s", i, g.value)
			}
			joined.WriteString(g.rec.Message)
		}
	}
	if joined.String() != long {
		t.Errorf("split chunks do not join to the line")
	}
	pm := r.c.metrics.forKey(counters.Key{Namespace: "a", Pipeline: "audit"})
	waitFor(t, 5*time.Second, func() bool { return testutil.ToFloat64(pm.prom[outBypassed]) == 3 })
	if n := testutil.ToFloat64(pm.prom[outParseFailed]); n != 1 {
		t.Errorf("parse_failed %v, want 1", n)
	}
}

// TestApplyWhileReading: a pipeline changed while its file is read takes effect from the next
// chunk on, without a restart: the lines held for joining by the old version are flushed
// (counted held_flushed), lines after the apply run the new version, and no line is lost or
// duplicated.
func TestApplyWhileReading(t *testing.T) {
	spec := func(v string) v1alpha1.LogPipelineSpec {
		return v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{
			{Multiline: &v1alpha1.MultilineStep{Start: `^\S`, MaxLines: 100, MaxBytes: 1 << 20, FlushTimeout: &metav1.Duration{Duration: time.Minute}}},
			{Set: &v1alpha1.SetStep{Field: "v", Value: `"` + v + `"`}},
		}}
	}
	v1 := compileSet(t, "a", nil, map[string]v1alpha1.LogPipelineSpec{"p": spec("1")})
	v2 := compileSet(t, "a", nil, map[string]v1alpha1.LogPipelineSpec{"p": spec("2")})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	cfg := testConfig(t, node, brokers)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.now = func() time.Time { return t0 }
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": v1}})
	})
	for i := range 10 {
		c.Write(time.Now(), "stdout", fmt.Sprintf("E%d", i))
		c.Write(time.Now(), "stdout", fmt.Sprintf("\tat %d", i))
	}
	nsm := r.c.metrics.forNamespace("a")
	// E0..E8 are joined and sent; E9 and its continuation are held.
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(nsm.linesAcked) == 18 })
	r.c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": v2}})
	for i := 10; i < 20; i++ {
		c.Write(time.Now(), "stdout", fmt.Sprintf("E%d", i))
		c.Write(time.Now(), "stdout", fmt.Sprintf("\tat %d", i))
	}
	got := consume(t, brokers, 19, 30*time.Second)
	if len(got) != 19 {
		t.Fatalf("%d records, want 19 (10 with v1, 9 with v2; the last group held)", len(got))
	}
	for i, g := range got {
		want := "1"
		if i >= 10 {
			want = "2"
		}
		if g.rec.Fields["v"] != want || g.rec.Message != fmt.Sprintf("E%d\n\tat %d", i, i) {
			t.Errorf("record %d: v=%v message %q", i, g.rec.Fields["v"], g.rec.Message)
		}
	}
	if n := testutil.ToFloat64(r.c.metrics.forKey(counters.Key{Namespace: "a", Pipeline: "p"}).prom[outHeldFlushed]); n != 1 {
		t.Errorf("held_flushed %v, want 1 (the group held at the apply)", n)
	}
}

// TestPipelineConditionsSeeFileMetadata: CEL in the collector reads the file's metadata
// (record.namespace, record.pod, record.container), not only the line: a keep on them keeps
// every line, and a set computes a field from them.
func TestPipelineConditionsSeeFileMetadata(t *testing.T) {
	const lines = 20
	set := compileSet(t, "a", nil, map[string]v1alpha1.LogPipelineSpec{"meta": {Steps: []v1alpha1.Step{
		{Keep: &v1alpha1.ConditionStep{If: `record.namespace == "a" && record.container == "app"`}},
		{Set: &v1alpha1.SetStep{Field: "who", Value: `record.pod + "/" + record.container`}},
	}}})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	for s := range lines {
		c.Write(time.Now(), "stdout", loadgen.SeqMessage("a/app", s, 80))
	}
	r := startCollectorWith(t, testConfig(t, node, brokers), func(c *Collector) {
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": set}})
	})
	defer r.stop()
	got := consume(t, brokers, lines, 30*time.Second)
	if len(got) != lines {
		t.Fatalf("%d records, want %d: the keep on the file's metadata dropped lines", len(got), lines)
	}
	for _, g := range got {
		if g.rec.Fields["who"] != g.rec.Pod+"/app" {
			t.Fatalf("fields %v: want who=%s/app", g.rec.Fields, g.rec.Pod)
		}
	}
}
