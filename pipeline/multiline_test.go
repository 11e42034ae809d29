package pipeline

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func TestMultiline(t *testing.T) {
	javaStart := &v1alpha1.MultilineStep{Start: `^\d{4}-\d{2}-\d{2} `}
	tests := []struct {
		name      string
		ml        *v1alpha1.MultilineStep
		more      []S
		lines     []string
		want      []string // messages; "\n" joins lines
		wantLines []int    // Lines of each record
		oc        []Verdict
	}{
		{"start pattern joins a stack trace", javaStart, nil,
			[]string{"2026-01-01 ERROR boom", "java.lang.X: y", "\tat a.b(C.java:1)", "2026-01-01 INFO next"},
			[]string{"2026-01-01 ERROR boom\njava.lang.X: y\n\tat a.b(C.java:1)", "2026-01-01 INFO next"},
			[]int{3, 1}, []Verdict{Hold, Hold, Hold, Hold}},
		{"continue pattern", &v1alpha1.MultilineStep{Continue: `^\s`}, nil,
			[]string{"Traceback:", "  File x", "  File y", "Error: z", "ok"},
			[]string{"Traceback:\n  File x\n  File y", "Error: z", "ok"},
			[]int{3, 1, 1}, nil},
		{"a first line not matching start is a record of its own", javaStart, nil,
			[]string{"orphan", "\tcontinued", "2026-01-01 a"},
			[]string{"orphan\n\tcontinued", "2026-01-01 a"}, []int{2, 1}, nil},
		{"max lines emits at once", &v1alpha1.MultilineStep{Start: `^S`, MaxLines: 3}, nil,
			[]string{"S1", "a", "b", "c", "d", "S2"},
			[]string{"S1\na\nb", "c\nd", "S2"}, []int{3, 2, 1},
			[]Verdict{Hold, Hold, Emit, Hold, Hold, Hold}},
		{"max bytes", &v1alpha1.MultilineStep{Start: `^S`, MaxBytes: 256}, nil,
			[]string{"S" + strings.Repeat("x", 200), strings.Repeat("y", 54), strings.Repeat("z", 10), "S2", strings.Repeat("L", 300), "S3"},
			[]string{"S" + strings.Repeat("x", 200) + "\n" + strings.Repeat("y", 54), strings.Repeat("z", 10), "S2", strings.Repeat("L", 300), "S3"},
			[]int{2, 1, 1, 1, 1}, []Verdict{Hold, Emit, Hold, Hold, Emit, Hold}},
		{"steps after multiline see the joined record", javaStart, []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `^\S+ (?P<level>[A-Z]+)`}},
			{Drop: &v1alpha1.ConditionStep{If: `record.fields.level == "DEBUG"`}},
		},
			[]string{"2026-01-01 DEBUG a", " b", "2026-01-01 ERROR c", " d"},
			[]string{"2026-01-01 ERROR c\n d"}, []int{2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, append([]S{{Multiline: tt.ml}}, tt.more...)...)
			got, oc := feed(t, p, tt.lines...)
			var msgs []string
			var lines []int
			for _, o := range got {
				msgs = append(msgs, o.Message)
				lines = append(lines, o.Lines)
			}
			if strings.Join(msgs, "|") != strings.Join(tt.want, "|") {
				t.Errorf("records:\n%q\nwant\n%q", msgs, tt.want)
			}
			if tt.wantLines != nil && !equal(lines, tt.wantLines) {
				t.Errorf("lines %v, want %v", lines, tt.wantLines)
			}
			// Offsets: each record covers its input lines exactly, in order, without gaps.
			var end int64
			for _, o := range got {
				if o.Start < end {
					t.Errorf("record %+v starts before the previous one ended (%d)", o, end)
				}
				end = o.End
			}
			for i, v := range tt.oc {
				if oc[i].Verdict != v {
					t.Errorf("line %d: verdict %v, want %v", i, oc[i].Verdict, v)
				}
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMultilineHoldingTimeoutFlush(t *testing.T) {
	p := mustCompile(t, S{Multiline: &v1alpha1.MultilineStep{Start: `^S`, FlushTimeout: &metav1.Duration{Duration: 2 * time.Second}}})
	r := p.NewRunner()
	var got []out
	emit := func(rec *Record) { got = append(got, copyOut(rec)) }
	line := func(msg string, start int64, now time.Time) Outcome {
		b := []byte(msg)
		rec := &Record{Time: t0, Stream: "stdout", Message: b, Start: start, End: start + int64(len(msg)) + 1, Lines: 1}
		o := r.Process(rec, now, emit)
		copy(b, strings.Repeat("#", len(b))) // the caller reuses its buffer
		return o
	}
	if p.FlushTimeout() != 2*time.Second || mustCompile(t).FlushTimeout() != 0 {
		t.Errorf("FlushTimeout %s; without multiline %s", p.FlushTimeout(), mustCompile(t).FlushTimeout())
	}
	if _, ok := r.Holding(); ok || r.FlushDue(t0.Add(time.Hour)) {
		t.Fatal("a new runner holds something")
	}
	line("S1", 100, t0)
	if start, ok := r.Holding(); !ok || start != 100 {
		t.Fatalf("Holding = %d, %v; want 100, true", start, ok)
	}
	line(" a", 103, t0.Add(time.Second))
	if start, _ := r.Holding(); start != 100 {
		t.Errorf("Holding moved to %d with the first held line at 100", start)
	}
	if r.FlushDue(t0.Add(2900 * time.Millisecond)) {
		t.Error("flush due 1.9s after the last line")
	}
	if !r.FlushDue(t0.Add(3 * time.Second)) {
		t.Error("flush not due 2s after the last line")
	}
	if len(got) != 0 {
		t.Fatalf("emitted before the flush: %+v", got)
	}
	r.Flush(emit)
	if len(got) != 1 || got[0].Message != "S1\n a" || got[0].Start != 100 || got[0].End != 106 || got[0].Lines != 2 {
		t.Fatalf("flushed %+v", got)
	}
	if _, ok := r.Holding(); ok {
		t.Error("holding after Flush")
	}
	r.Flush(emit) // nothing held: nothing emitted
	if len(got) != 1 {
		t.Errorf("second Flush emitted %+v", got[1:])
	}
	c := r.TakeCounts()
	if c.Emitted != 1 || c.Joined != 1 || c.HeldFlushed != 1 {
		t.Errorf("counts %+v", c)
	}
	// A stream change ends the held record: stderr never continues stdout.
	line("S2", 200, t0)
	rec := &Record{Stream: "stderr", Message: []byte(" err"), Start: 203, End: 208, Lines: 1}
	r.Process(rec, t0, emit)
	r.Flush(emit)
	if len(got) != 3 || got[1].Message != "S2" || got[2].Message != " err" {
		t.Errorf("stream change: %+v", got[1:])
	}
}

// TestMultilineBounded feeds a long run of continuation lines: the held record never exceeds
// its bounds, and every line comes out exactly once, in order.
func TestMultilineBounded(t *testing.T) {
	p := mustCompile(t, S{Multiline: &v1alpha1.MultilineStep{Start: `^START`, MaxLines: 7, MaxBytes: 300}})
	var lines []string
	for i := range 1000 {
		l := strings.Repeat("c", i%97)
		if i%113 == 0 {
			l = "START" + l
		}
		lines = append(lines, l)
	}
	got, _ := feed(t, p, lines...)
	var back []string
	for _, o := range got {
		if o.Lines > 7 {
			t.Errorf("record of %d lines", o.Lines)
		}
		if len(o.Message) > 300 && o.Lines > 1 {
			t.Errorf("joined record of %d bytes", len(o.Message))
		}
		back = append(back, strings.Split(o.Message, "\n")...)
	}
	if strings.Join(back, "\n") != strings.Join(lines, "\n") {
		t.Error("lines lost, duplicated or reordered")
	}
}
