package pipeline

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Fuzz targets: `go test -run '^$' -fuzz FuzzX -fuzztime 30s ./pipeline/`. Without -fuzz they
// run their seed corpus as tests.

// FuzzParseJSON checks the json step's parser against encoding/json: it accepts exactly the
// JSON objects encoding/json accepts (within its depth limit) and finds the same values.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[true,false,null],"c":{"d":"e\u00e9\ud83d\ude00"}}`, `{"a":-0.5e-3}`,
		`{"a":"\ud800"}`, `{"a":"x\xffy"}`, `[1]`, `{"a":1}x`, `{"a":12345678901234567890}`, `{"a":"\"\\"}`, ` {"a" : 1 } `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := map[string]any{}
		err := parseJSONInto(s, m)
		var want any
		stdErr := json.Unmarshal([]byte(s), &want)
		_, isObj := want.(map[string]any)
		if err == nil {
			if !json.Valid([]byte(s)) || (stdErr == nil && !isObj) {
				t.Fatalf("accepted %q, which encoding/json refuses or is not an object", s)
			}
			if stdErr != nil {
				return // e.g. 1e999: encoding/json cannot hold it; we keep its text
			}
			if got := normalize(m); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q:\n got %#v\nwant %#v", s, got, want)
			}
			// Our encoder writes valid JSON of it.
			if out := AppendFieldsJSON(nil, m); !json.Valid(out) {
				t.Fatalf("AppendFieldsJSON of %q: invalid %q", s, out)
			}
			return
		}
		if stdErr == nil && isObj && strings.Count(s, "{")+strings.Count(s, "[") < maxJSONDepth {
			t.Fatalf("refused %q (%v), which encoding/json accepts", s, err)
		}
	})
}

// normalize turns parsed values into encoding/json's: numbers float64, strings with invalid
// UTF-8 replaced.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[validUTF8(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int64:
		return float64(x)
	case string:
		return validUTF8(x)
	}
	return v
}

func FuzzLogfmt(f *testing.F) {
	for _, s := range []string{`a=1 b="x y" c`, `a="\"q\""`, `a="unterminated`, `=x`, `a"b=c`, `k=v=w`, `a="\xff"`, "a=\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := map[string]any{}
		if err := parseLogfmtInto(s, m); err != nil {
			return
		}
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, " =\"") {
				t.Fatalf("%q: key %q", s, k)
			}
			if _, ok := v.(string); !ok && v != true {
				t.Fatalf("%q: value %#v", s, v)
			}
		}
	})
}

func FuzzAppendFieldsJSON(f *testing.F) {
	f.Add("k", "v\xff\x00\"", 1.5, int64(-1))
	f.Fuzz(func(t *testing.T, k, v string, fl float64, n int64) {
		m := map[string]any{k: v, k + "2": []any{fl, n, map[string]any{v: k}}, "nan": math.NaN()}
		out := AppendFieldsJSON(nil, m)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	})
}

// FuzzCompile feeds arbitrary text to every place of a spec that Compile parses; it must
// return a pipeline or an error, never panic, and a pipeline it returns must run.
func FuzzCompile(f *testing.F) {
	f.Add(`(?P<x>[a-z]+)`, `record.fields.level == "debug"`, "RFC3339", "debug", uint16(0xffff), "app")
	f.Add(`(?P<x>[a-z`, `record.`, "2006", "a.b", uint16(1), "")
	f.Add(`^\s`, `record.fields.?x.orValue(1) > 0`, "Unix", "", uint16(0x0f0f), "!")
	f.Add(`a{1001}`, `size(record.labels) + record.time.getSeconds()`, "15:04 MST", "-x", uint16(0xaaaa), "k=v")
	f.Fuzz(func(t *testing.T, pattern, expr, layout, suffix string, mask uint16, label string) {
		all := []S{
			{Multiline: &v1alpha1.MultilineStep{Start: pattern}},
			{JSON: &v1alpha1.JSONStep{Into: label}},
			{Logfmt: &v1alpha1.LogfmtStep{Source: label}},
			{Regex: &v1alpha1.RegexStep{Pattern: pattern}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "x", Layout: layout}},
			{Set: &v1alpha1.SetStep{Field: "s", Value: expr}},
			{Rename: &v1alpha1.RenameStep{From: label, To: "x"}},
			{Remove: &v1alpha1.RemoveStep{Fields: []string{label}}},
			{Keep: &v1alpha1.ConditionStep{If: expr}},
			{Drop: &v1alpha1.ConditionStep{If: expr}},
			{Redact: &v1alpha1.RedactStep{Pattern: pattern, Fields: []string{label}, Hash: mask&1 != 0}},
			{Sample: &v1alpha1.SampleStep{OneIn: int32(mask % 7), If: expr}},
			{JSON: &v1alpha1.JSONStep{}, Keep: &v1alpha1.ConditionStep{If: expr}},
		}
		var steps []S
		for i, s := range all {
			if mask&(1<<i) != 0 {
				steps = append(steps, s)
			}
		}
		spec := &v1alpha1.LogPipelineSpec{
			Selector: v1alpha1.Selector{Pods: &metav1.LabelSelector{MatchLabels: map[string]string{label: label}}, Containers: []string{label}, Streams: []v1alpha1.Stream{v1alpha1.Stream(label)}},
			Steps:    steps,
			Output:   v1alpha1.Output{Suffix: suffix},
		}
		policy, _ := CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{suffix}, MaxStepsPerPipeline: 64})
		p, err := Compile("ns", "p", 1, spec, policy)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		r := p.NewRunner()
		for _, line := range []string{pattern, expr, `{"x":"` + layout + `","s":1}`, label + "=" + layout} {
			oc := r.Process(&Record{Message: []byte(line), Meta: testMeta}, t0, func(*Record) {})
			if oc.Panicked {
				t.Fatalf("a step panicked on %q", line)
			}
		}
		r.Flush(func(*Record) {})
	})
}

// FuzzRunner runs a pipeline of every step kind over arbitrary lines (input split at
// newlines, multiline bounds from the fuzzer): no step panics, fields encode to valid JSON,
// no line is lost or duplicated (each comes out once, joined or not, unless a condition or
// the sample removed its record), and the held record stays within its bounds.
func FuzzRunner(f *testing.F) {
	f.Add([]byte("2026-01-01 {\"level\":\"info\",\"ts\":\"2026-01-01T00:00:00Z\",\"user\":\"a@b.c\"}\n\tat x\n2026 level=debug msg=\"hi\"\n"), uint16(500), uint16(300))
	f.Add([]byte("\xff\xfe\n\n\n{\"a\":[[[[[]]]]]}\nGET /healthz 200"), uint16(2), uint16(256))
	f.Fuzz(func(t *testing.T, input []byte, maxLines, maxBytes uint16) {
		ml := int32(maxLines%50) + 2
		mb := int32(maxBytes%2000) + 256
		p := mustCompile(t,
			S{Multiline: &v1alpha1.MultilineStep{Start: `^\d{4}`, MaxLines: ml, MaxBytes: mb}},
			S{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<date>\d{4}\S*) (?P<rest>.*)`}},
			S{JSON: &v1alpha1.JSONStep{Source: "rest"}},
			S{Logfmt: &v1alpha1.LogfmtStep{Source: "rest", Into: "kv"}},
			S{Timestamp: &v1alpha1.TimestampStep{Field: "ts"}},
			S{Set: &v1alpha1.SetStep{Field: "n", Value: `size(record.message) + size(record.fields)`}},
			S{Rename: &v1alpha1.RenameStep{From: "user", To: "who"}},
			S{Redact: &v1alpha1.RedactStep{Pattern: `[a-z]+@[a-z.]+`, Fields: []string{"kv"}, Hash: true}},
			S{Drop: &v1alpha1.ConditionStep{If: `record.fields.?level.orValue("") == "debug"`}},
			S{Keep: &v1alpha1.ConditionStep{If: `!record.message.contains("/healthz")`}},
			S{Sample: &v1alpha1.SampleStep{OneIn: 2, If: `record.fields.?level.orValue("") == "trace"`}},
		)
		r := p.NewRunner()
		lines := bytes.Split(input, []byte("\n"))
		emitted, removed := 0, 0
		var off int64
		now := t0
		emit := func(rec *Record) {
			emitted += rec.Lines
			if rec.Lines > int(ml) || (rec.Lines > 1 && len(rec.Message) > int(mb)) {
				t.Fatalf("record of %d lines, %d bytes beyond bounds %d, %d", rec.Lines, len(rec.Message), ml, mb)
			}
			if rec.Fields != nil && !json.Valid(AppendFieldsJSON(nil, rec.Fields)) {
				t.Fatalf("invalid fields JSON")
			}
		}
		for _, l := range lines {
			rec := &Record{Time: t0, Stream: "stdout", Message: l, Start: off, End: off + int64(len(l)) + 1, Lines: 1, Meta: testMeta}
			off = rec.End
			now = now.Add(time.Second)
			if oc := r.Process(rec, now, emit); oc.Panicked {
				t.Fatalf("a step panicked on %q", l)
			}
			if r.FlushDue(now.Add(time.Hour)) {
				r.Flush(emit)
			}
		}
		r.Flush(emit)
		c := r.TakeCounts()
		removed = int(c.Dropped + c.SampledOut)
		// Lines of removed records are not counted by emit; the records are.
		if emitted+removed > len(lines) || int64(emitted) < c.Emitted {
			t.Fatalf("%d lines in, %d out in emitted records, %d records removed (counts %+v)", len(lines), emitted, removed, c)
		}
		if c.Emitted+c.Dropped+c.SampledOut == 0 && len(lines) > 0 {
			t.Fatal("no record came out")
		}
	})
}

// validUTF8 replaces each invalid byte with U+FFFD, as encoding/json does when decoding.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// FuzzMatcher checks redact's fast search against regexp's own FindAllIndex.
func FuzzMatcher(f *testing.F) {
	for _, s := range [][2]string{
		{`[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}`, `{"u":"ann@example.org","v":"x@y.z b@c.de"} @ a@b.cc`},
		{`\d{4}-\d{4}`, "card 1234-5678-9012 and 1111-2222"},
		{`tok=\S+`, "a tok=1 tok=tok=2\ttok="},
		{`\bpass=\w+`, "xpass=1 pass=2"},
		{`(?i)key=[a-z]+`, "KEY=abc key=Def"},
		{`é+x`, "ééx \xffx éx"},
		{`a.b`, "a\nb axb a\xffb"},
		{`(?s)a.b`, "a\nb"},
		{`x[^y]*z`, "x  z xyz x\xffz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		m := newMatcher(re, pattern)
		got := m.find([]byte(text), nil)
		want := re.FindAllIndex([]byte(text), -1)
		if len(got) != len(want) {
			t.Fatalf("%q on %q: %v, want %v", pattern, text, got, want)
		}
		for i := range got {
			if got[i][0] != want[i][0] || got[i][1] != want[i][1] {
				t.Fatalf("%q on %q: %v, want %v", pattern, text, got, want)
			}
		}
	})
}
