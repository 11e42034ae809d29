package router

import (
	"bytes"
	"fmt"
	"os"
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

// TestPanicInStepShipsRaw runs, through the real collector against kfake, a pipeline whose last
// step (injected with pipeline.WithExtraStep) mangles the record and then panics on some lines:
// the first, the last, two in a row and a few between. Each such line ships raw: its message as
// the file has it (not redacted by the earlier step, not mangled), no fields, fields_error naming
// the recovered panic, in order among the others, which carry their fields. Nothing is lost or
// duplicated, the checkpoint reaches the file's end, and the panics are counted per pipeline
// (logrouter_collector_pipeline_lines_total{outcome="panicked"}) while the status counters
// (PipelineTotals) count the lines as selected and emitted.
//
// With a multiline step first, the panicking records are joined ones: each ships as its joined
// lines, raw, and the checkpoint, held before the last group while it waits, reaches the end when
// the flush timeout emits it.
func TestPanicInStepShipsRaw(t *testing.T) {
	for _, multiline := range []bool{false, true} {
		name := "lines"
		if multiline {
			name = "joined"
		}
		t.Run(name, func(t *testing.T) { panicShipsRaw(t, multiline) })
	}
}

func panicShipsRaw(t *testing.T, multiline bool) {
	const lines = 60
	boom := map[int]bool{0: true, 7: true, 8: true, 30: true, 45: true, lines - 1: true}
	var msgs []string
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("a", "web", "app", loadgen.CRI)
	for s := range lines {
		m := loadgen.SeqMessage("a", s, 120)
		if boom[s] {
			m = strings.TrimSuffix(m, "}") + `,"boom":true}`
		}
		if err := c.Write(time.Now(), "stdout", m); err != nil {
			t.Fatal(err)
		}
		if multiline && (s%5 == 0 || s == lines-1) {
			// A continuation (every fifth group, and the last: it waits for the flush timeout).
			cont := fmt.Sprintf("\tat frame %d /api/v1/x", s)
			if err := c.Write(time.Now(), "stdout", cont); err != nil {
				t.Fatal(err)
			}
			m += "\n" + cont
		}
		msgs = append(msgs, m)
	}
	spec := v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{
		{JSON: &v1alpha1.JSONStep{}},
		{Redact: &v1alpha1.RedactStep{Pattern: `/api/v1/`}},
		{Set: &v1alpha1.SetStep{Field: "team", Value: `"a"`}},
	}}
	if multiline {
		flush := metav1.Duration{Duration: 200 * time.Millisecond}
		spec.Steps = append([]v1alpha1.Step{{Multiline: &v1alpha1.MultilineStep{Start: `^\{`, FlushTimeout: &flush}}}, spec.Steps...)
	}
	p, err := pipeline.Compile("a", "p", 1, &spec, nil, pipeline.WithExtraStep(func(rec *pipeline.Record) {
		if bytes.Contains(rec.Message, []byte(`"boom":true`)) {
			rec.Message = []byte("mangled")
			rec.Fields["mangled"] = true
			var m map[string]int
			m["x"]++ // a nil map write, as a buggy step would
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	set := pipeline.NewSet("a", []*pipeline.Pipeline{p})
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	cfg := testConfig(t, node, brokers)
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": set}})
	})
	got := consume(t, brokers, lines, 30*time.Second)
	if len(got) != lines {
		t.Fatalf("%d records, want %d", len(got), lines)
	}
	for i, g := range got {
		// In order, none lost or twice: record i starts with line i (a joined record's first line).
		first, _, _ := strings.Cut(g.rec.Message, "\n")
		if _, seq, ok := loadgen.ParseSeq(first); !ok || seq != i {
			t.Fatalf("record %d: message %q, want line %d", i, g.rec.Message, i)
		}
		if boom[i] {
			if g.rec.Message != msgs[i] || g.rec.Fields != nil || !strings.Contains(g.rec.FieldsError, "recovered panic: assignment to entry in nil map") {
				t.Errorf("line %d did not ship raw: message %q fields %v fields_error %q", i, g.rec.Message, g.rec.Fields, g.rec.FieldsError)
			}
			continue
		}
		// (A joined record is no JSON: its json step fails and marks it, the other steps run.)
		if g.rec.Fields["team"] != "a" || strings.Contains(g.rec.FieldsError, "panic") || strings.Contains(g.rec.Message, "/api/v1/") {
			t.Errorf("line %d: fields %v fields_error %q message %q, want the pipeline's record", i, g.rec.Fields, g.rec.FieldsError, g.rec.Message)
		}
	}
	fi, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		entries, _ := checkpointEntries(cfg.CheckpointDir)
		for _, e := range entries {
			if e.Offset == fi.Size() {
				return true
			}
		}
		return false
	})
	pm := r.c.metrics.forKey(counters.Key{Namespace: "a", Pipeline: "p"})
	waitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(pm.prom[outPanicked]) == float64(len(boom)) })
	if n := testutil.ToFloat64(pm.prom[outEmitted]); n != lines {
		t.Errorf("emitted %v, want %d (a panicked line is emitted raw)", n, lines)
	}
	physical := int64(strings.Count(strings.Join(msgs, "\n"), "\n") + 1)
	tot := pipelineTotals(r.c)[counters.Key{Namespace: "a", Pipeline: "p"}]
	if tot.Selected != physical || tot.Emitted != lines || tot.Dropped != 0 || tot.Panicked != int64(len(boom)) {
		t.Errorf("status counters %+v, want %d lines selected, %d records emitted, %d panicked", tot, physical, lines, len(boom))
	}
}
