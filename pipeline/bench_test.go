package pipeline

import (
	"fmt"
	"testing"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// typicalChain is the typical chain: json, one regex, one CEL keep, one redact.
var typicalChain = []S{
	{JSON: &v1alpha1.JSONStep{}},
	{Regex: &v1alpha1.RegexStep{Source: "msg", Pattern: `^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3})`}},
	{Keep: &v1alpha1.ConditionStep{If: `record.fields.level != "debug"`}},
	{Redact: &v1alpha1.RedactStep{Pattern: `[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}`, Hash: true}},
}

// typicalLines are JSON application lines of about 200 bytes, one in four with an email.
func typicalLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		user := fmt.Sprintf("u%06d", i)
		if i%4 == 0 {
			user = fmt.Sprintf("user%d@example.org", i%100)
		}
		lines[i] = fmt.Appendf(nil, `{"time":"2026-12-01T10:00:%02d.123Z","level":"%s","msg":"GET /api/v1/orders/%d 200 %dms","user":"%s","trace_id":"4bf92f3577b34da6a3ce929d0e0e%04d"}`,
			i%60, []string{"info", "info", "warn", "debug"}[i%4], i, i%97, user, i%10000)
	}
	return lines
}

// BenchmarkTypicalChain: `go test -run '^$' -bench TypicalChain -benchmem ./pipeline/`.
func BenchmarkTypicalChain(b *testing.B) {
	p := mustCompile(b, typicalChain...)
	benchLines(b, p, typicalLines(1024))
}

// BenchmarkTypicalChainEncode adds what the collector does per record: the fields as JSON.
func BenchmarkTypicalChainEncode(b *testing.B) {
	p := mustCompile(b, typicalChain...)
	var buf []byte
	lines := typicalLines(1024)
	r := p.NewRunner()
	emit := func(rec *Record) { buf = AppendFieldsJSON(buf[:0], rec.Fields) }
	var rec Record
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec = Record{Time: t0, Stream: "stdout", Message: lines[i%len(lines)], Start: int64(i), Lines: 1, Meta: testMeta}
		r.Process(&rec, t0, emit)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
}

func BenchmarkStep(b *testing.B) {
	lines := typicalLines(1024)
	for _, bc := range []struct {
		name  string
		steps []S
	}{
		{"json", typicalChain[:1]},
		{"json+regex", typicalChain[:2]},
		{"json+regex+keep", typicalChain[:3]},
		{"keep-message", []S{{Keep: &v1alpha1.ConditionStep{If: `!record.message.contains("/healthz")`}}}},
		{"keep-label", []S{{Keep: &v1alpha1.ConditionStep{If: `record.labels["app"] == "web"`}}}},
		{"redact", typicalChain[3:]},
		{"logfmt", []S{{Logfmt: &v1alpha1.LogfmtStep{}}}},
		{"sample", []S{{Sample: &v1alpha1.SampleStep{OneIn: 10}}}},
		{"multiline", []S{{Multiline: &v1alpha1.MultilineStep{Start: `^\{`}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchLines(b, mustCompile(b, bc.steps...), lines)
		})
	}
}

func benchLines(b *testing.B, p *Pipeline, lines [][]byte) {
	r := p.NewRunner()
	emit := func(*Record) {}
	var rec Record // the collector reuses its record
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec = Record{Time: t0, Stream: "stdout", Message: lines[i%len(lines)], Start: int64(i), Lines: 1, Meta: testMeta}
		r.Process(&rec, t0, emit)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
}

func BenchmarkCompile(b *testing.B) {
	spec := &v1alpha1.LogPipelineSpec{Steps: typicalChain}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile("team-a", "p", 1, spec, nil); err != nil {
			b.Fatal(err)
		}
	}
}
