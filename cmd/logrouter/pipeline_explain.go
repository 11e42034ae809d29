//go:build !collector

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// tracedRunner runs one pipeline over the sample. With explain it also runs every prefix of
// the pipeline's steps (steps[:1], steps[:2], ...) on the same lines, each with its own state:
// what step k did to a line is the difference between the outputs of prefixes k and k+1.
// That uses only pipeline's public API, so what it shows is exactly what the collector runs.
type tracedRunner struct {
	p        *pipeline.Pipeline
	full     *pipeline.Runner
	prefixes []*pipeline.Runner // prefixes[k] runs steps[:k+1]; the last is full
	kinds    []string
}

func newTracedRunner(p *pipeline.Pipeline, spec *v1alpha1.LogPipelineSpec, policy *pipeline.Policy, explain bool) (*tracedRunner, error) {
	tr := &tracedRunner{p: p, full: p.NewRunner()}
	if !explain {
		return tr, nil
	}
	for k := range spec.Steps {
		tr.kinds = append(tr.kinds, stepKind(&spec.Steps[k]))
		if k == len(spec.Steps)-1 {
			tr.prefixes = append(tr.prefixes, tr.full)
			break
		}
		sub := spec.DeepCopy()
		sub.Steps = sub.Steps[:k+1]
		pp, err := pipeline.Compile(p.Namespace, p.Name, p.Generation, sub, policy)
		if err != nil {
			return nil, fmt.Errorf("--explain: the first %d steps of %s do not compile on their own: %w", k+1, p.Name, err)
		}
		tr.prefixes = append(tr.prefixes, pp.NewRunner())
	}
	return tr, nil
}

// stepOut is what one prefix did with one line (or with the flush at the end).
type stepOut struct {
	verdict pipeline.Verdict
	recs    []pipeline.Record
}

func (tr *tracedRunner) process(w io.Writer, l testLine, topicName string) {
	now := l.rec.Time
	if tr.prefixes == nil {
		r := cloneRecord(&l.rec)
		tr.full.Process(&r, now, func(out *pipeline.Record) { writeTestRecord(w, topicName, tr.p.Name, out) })
		return
	}
	outs := make([]stepOut, 0, len(tr.prefixes)+1)
	outs = append(outs, stepOut{verdict: pipeline.Emit, recs: []pipeline.Record{cloneRecord(&l.rec)}})
	for _, run := range tr.prefixes {
		r := cloneRecord(&l.rec)
		var o stepOut
		o.verdict = run.Process(&r, now, func(out *pipeline.Record) { o.recs = append(o.recs, cloneRecord(out)) }).Verdict
		outs = append(outs, o)
	}
	what := fmt.Sprintf("line %d", l.n)
	if l.parseE != "" {
		what += " (" + l.parseE + ")"
	}
	tr.explain(w, what, outs)
	for i := range outs[len(outs)-1].recs {
		writeTestRecord(w, topicName, tr.p.Name, &outs[len(outs)-1].recs[i])
	}
}

// flush emits what the pipeline holds at the end of the sample (as at rotation or shutdown).
func (tr *tracedRunner) flush(w io.Writer, topicName string) {
	if tr.prefixes == nil {
		tr.full.Flush(func(out *pipeline.Record) { writeTestRecord(w, topicName, tr.p.Name, out) })
		return
	}
	outs := []stepOut{{verdict: pipeline.Emit}}
	for _, run := range tr.prefixes {
		var o stepOut
		run.Flush(func(out *pipeline.Record) { o.recs = append(o.recs, cloneRecord(out)) })
		outs = append(outs, o)
	}
	last := outs[len(outs)-1].recs
	if len(last) == 0 {
		return
	}
	tr.explain(w, "end of input", outs)
	for i := range last {
		writeTestRecord(w, topicName, tr.p.Name, &last[i])
	}
}

// explain prints one "#" line: what each step changed.
func (tr *tracedRunner) explain(w io.Writer, what string, outs []stepOut) {
	var parts []string
	for k := 1; k < len(outs); k++ {
		a, b := outs[k-1], outs[k]
		if a.verdict == pipeline.Drop || a.verdict == pipeline.SampledOut {
			break
		}
		var ch []string
		if b.verdict != a.verdict {
			switch b.verdict {
			case pipeline.Drop:
				ch = append(ch, "dropped")
			case pipeline.SampledOut:
				ch = append(ch, "sampled out")
			case pipeline.Hold:
				ch = append(ch, "held (joined with the lines after it)")
			}
		}
		if len(a.recs) == len(b.recs) {
			for i := range a.recs {
				ch = append(ch, diffRecords(&a.recs[i], &b.recs[i])...)
			}
		} else {
			for i := range b.recs {
				ch = append(ch, fmt.Sprintf("emitted a record of %d lines", b.recs[i].Lines))
			}
		}
		if len(ch) > 0 {
			parts = append(parts, fmt.Sprintf("steps[%d].%s: %s", k-1, tr.kinds[k-1], strings.Join(ch, ", ")))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no step changed it")
	}
	fmt.Fprintf(w, "# %s: %s: %s\n", what, tr.p.Name, strings.Join(parts, "; "))
}

// diffRecords lists what changed from a to b.
func diffRecords(a, b *pipeline.Record) []string {
	var ch []string
	if !bytes.Equal(a.Message, b.Message) {
		ch = append(ch, fmt.Sprintf("message %s -> %s", short(string(a.Message)), short(string(b.Message))))
	}
	if !a.Time.Equal(b.Time) {
		ch = append(ch, "time "+b.Time.UTC().Format(time.RFC3339Nano))
	}
	if a.FieldsError != b.FieldsError && b.FieldsError != "" {
		ch = append(ch, "fields_error "+short(b.FieldsError))
	}
	if a.Lines != b.Lines {
		ch = append(ch, fmt.Sprintf("joined %d lines", b.Lines))
	}
	keys := map[string]bool{}
	for k := range a.Fields {
		keys[k] = true
	}
	for k := range b.Fields {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		av, inA := a.Fields[k]
		bv, inB := b.Fields[k]
		switch {
		case !inB:
			ch = append(ch, "removed fields."+k)
		case !inA || !reflect.DeepEqual(av, bv):
			js, _ := json.Marshal(bv)
			if len(js) > 60 {
				js = append(js[:60:60], "..."...)
			}
			ch = append(ch, "fields."+k+"="+string(js))
		}
	}
	return ch
}

// short quotes s, cut to a readable length.
func short(s string) string {
	const n = 60
	if len(s) > n {
		s = s[:n] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func stepKind(s *v1alpha1.Step) string {
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if !v.Field(i).IsNil() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return "step"
}

// cloneRecord copies r deeply: steps change records in place, and emit may not keep them.
func cloneRecord(r *pipeline.Record) pipeline.Record {
	c := *r
	c.Message = bytes.Clone(r.Message)
	if r.Fields != nil {
		c.Fields = cloneAny(r.Fields).(map[string]any)
	}
	return c
}

func cloneAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneAny(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = cloneAny(e)
		}
		return s
	case []byte:
		return bytes.Clone(x)
	}
	return v
}
