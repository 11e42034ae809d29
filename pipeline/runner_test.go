package pipeline

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// panicStep panics after changing the record, as a buggy step would.
type panicStep struct{}

func (panicStep) apply(r *Runner, rec *Record) Verdict {
	r.setMessage(rec, append(r.messageBuf(), "changed"...))
	r.fieldsOf(rec)["half"] = "done"
	var m map[string]int
	m["x"]++ // nil map write
	return Emit
}

func TestPanicShipsRaw(t *testing.T) {
	p := mustCompile(t, S{JSON: &v1alpha1.JSONStep{}}, S{Keep: &v1alpha1.ConditionStep{If: "true"}})
	p.steps = append(p.steps, panicStep{})
	r := p.NewRunner()
	var got []out
	rec := &Record{Time: t0, Message: []byte(`{"a":1}`), Start: 5, End: 13, Lines: 1}
	oc := r.Process(rec, t0, func(rec *Record) { got = append(got, copyOut(rec)) })
	if !oc.Panicked || oc.Verdict != Emit {
		t.Errorf("outcome %+v", oc)
	}
	if len(got) != 1 || got[0].Message != `{"a":1}` || got[0].Fields != "" {
		t.Fatalf("emitted %+v, want the raw line without fields", got)
	}
	if want := "steps[2].step: internal error (recovered panic: assignment to entry in nil map); the line ships raw"; got[0].FieldsError != want {
		t.Errorf("FieldsError %q, want %q", got[0].FieldsError, want)
	}
	if c := r.TakeCounts(); c.Panicked != 1 || c.Emitted != 1 {
		t.Errorf("counts %+v", c)
	}
	// The runner goes on with the next line.
	rec = &Record{Time: t0, Message: []byte(`{"b":2}`)}
	r.Process(rec, t0, func(*Record) {})
	if c := r.TakeCounts(); c.Panicked != 1 {
		t.Errorf("second line: counts %+v", c)
	}
}

// TestPanicInEmitIsNotSwallowed: only steps are recovered; the caller's emit is its own.
func TestPanicInEmitIsNotSwallowed(t *testing.T) {
	p := mustCompile(t, S{JSON: &v1alpha1.JSONStep{}})
	defer func() {
		if recover() == nil {
			t.Error("emit's panic was recovered by the runner")
		}
	}()
	p.NewRunner().Process(&Record{Message: []byte("{}")}, t0, func(*Record) { panic("emit") })
}

func TestSampleDeterministic(t *testing.T) {
	p := mustCompile(t, S{Sample: &v1alpha1.SampleStep{OneIn: 10}})
	var lines []string
	for i := range 10000 {
		// Repeated identical lines on purpose: they must be sampled one by one, not all or none.
		lines = append(lines, fmt.Sprintf("GET /healthz %d", i%3))
	}
	first, oc1 := feed(t, p, lines...)
	second, oc2 := feed(t, p, lines...) // a replay: same file, same offsets
	if len(first) != len(second) {
		t.Fatalf("replay kept %d, first run %d", len(second), len(first))
	}
	for i := range oc1 {
		if oc1[i].Verdict != oc2[i].Verdict {
			t.Fatalf("line %d decided differently on replay", i)
		}
	}
	// 1 in 10 of 10,000 with a good hash: far from 0 and from all (binomial, sd ~30).
	if n := len(first); n < 800 || n > 1200 {
		t.Errorf("kept %d of 10000 with oneIn 10", n)
	}
	kept := map[string]int{}
	for _, o := range first {
		kept[o.Message]++
	}
	for i := range 3 {
		if k := kept[fmt.Sprintf("GET /healthz %d", i)]; k == 0 || k > 600 {
			t.Errorf("identical line %d kept %d times of ~3333", i, k)
		}
	}
	// The decision is a function of the message and offset only: a fresh pipeline agrees.
	p2 := mustCompile(t, S{Sample: &v1alpha1.SampleStep{OneIn: 10}})
	third, _ := feed(t, p2, lines...)
	if messages(third) != messages(first) {
		t.Error("another compilation of the same pipeline decided differently")
	}
}

// TestRunnersConcurrent: one compiled pipeline, many runners (one per file) at once.
func TestRunnersConcurrent(t *testing.T) {
	p := mustCompile(t,
		S{JSON: &v1alpha1.JSONStep{}},
		S{Regex: &v1alpha1.RegexStep{Source: "msg", Pattern: `(?P<verb>\w+)`}},
		S{Keep: &v1alpha1.ConditionStep{If: `record.fields.level != "debug"`}},
		S{Redact: &v1alpha1.RedactStep{Pattern: `\d+`, Hash: true}},
		S{Set: &v1alpha1.SetStep{Field: "pod", Value: "record.pod"}},
	)
	var wg sync.WaitGroup
	results := make([]string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b strings.Builder
			r := p.NewRunner()
			for i := range 500 {
				rec := &Record{Message: fmt.Appendf(nil, `{"level":%q,"msg":"get %d"}`, []string{"debug", "info"}[i%2], i), Meta: testMeta}
				r.Process(rec, t0, func(rec *Record) { b.Write(rec.Message); b.Write(AppendFieldsJSON(nil, rec.Fields)) })
			}
			results[g] = b.String()
		}()
	}
	wg.Wait()
	for g := 1; g < 8; g++ {
		if results[g] != results[0] {
			t.Fatalf("runner %d produced other records than runner 0", g)
		}
	}
}

// TestWithExtraStep: the step WithExtraStep adds runs after the spec's steps (it sees what
// they did) and its panic is recovered like any step's, named by its place.
func TestWithExtraStep(t *testing.T) {
	var seen []string
	p, err := Compile("team-a", "p", 1, &v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{Redact: &v1alpha1.RedactStep{Pattern: `secret`}}}}, nil,
		WithExtraStep(func(rec *Record) {
			seen = append(seen, string(rec.Message))
			if strings.Contains(string(rec.Message), "boom") {
				panic("boom")
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	r := p.NewRunner()
	var got []out
	emit := func(rec *Record) { got = append(got, copyOut(rec)) }
	r.Process(&Record{Time: t0, Message: []byte("a secret"), Lines: 1}, t0, emit)
	oc := r.Process(&Record{Time: t0, Message: []byte("secret boom"), Lines: 1}, t0, emit)
	if want := []string{"a [REDACTED]", "[REDACTED] boom"}; strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("the extra step saw %q, want %q", seen, want)
	}
	if !oc.Panicked || len(got) != 2 || got[1].Message != "secret boom" || got[1].FieldsError != "steps[1].step: internal error (recovered panic: boom); the line ships raw" {
		t.Errorf("outcome %+v, emitted %+v", oc, got)
	}
	// Without the option, the same spec has no such step.
	q, _ := Compile("team-a", "p", 1, &v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{Redact: &v1alpha1.RedactStep{Pattern: `secret`}}}}, nil)
	if len(q.steps) != 1 || len(p.steps) != 2 {
		t.Errorf("steps: %d without the option, %d with", len(q.steps), len(p.steps))
	}
}
