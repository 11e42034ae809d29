package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// The core of the package tests through the exported API only; each failed against the
// skeleton of the contract (commit 505b236).
func TestIssueMessage(t *testing.T) {
	_, err := pipeline.Compile("a", "p", 1, &v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}, {JSON: &v1alpha1.JSONStep{}}, {Regex: &v1alpha1.RegexStep{Pattern: `(?P<x>[a-z]`}}}}, nil)
	if err == nil || err.Error() != `steps[2].regex.pattern: missing closing ) for "(?P<x>" at offset 0: "(?P<x>[a-z]"` {
		t.Errorf("err %v", err)
	}
}

func TestJSONKeepMultiline(t *testing.T) {
	p, err := pipeline.Compile("a", "p", 1, &v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{
		{Multiline: &v1alpha1.MultilineStep{Start: `^\{`}},
		{JSON: &v1alpha1.JSONStep{}},
		{Drop: &v1alpha1.ConditionStep{If: `record.fields.level == "debug"`}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := p.NewRunner()
	var got []string
	for _, l := range []string{`{"level":"debug"}`, `{"level":`, `"info"}`, `{"x":1}`} {
		r.Process(&pipeline.Record{Message: []byte(l), Lines: 1}, time.Now(), func(rec *pipeline.Record) { got = append(got, string(rec.Message)) })
	}
	r.Flush(func(rec *pipeline.Record) { got = append(got, string(rec.Message)) })
	if strings.Join(got, "|") != "{\"level\":\n\"info\"}|{\"x\":1}" {
		t.Errorf("got %q", got)
	}
}

func TestSetFor(t *testing.T) {
	a, _ := pipeline.Compile("a", "b", 1, &v1alpha1.LogPipelineSpec{}, nil)
	b, _ := pipeline.Compile("a", "a", 1, &v1alpha1.LogPipelineSpec{}, nil)
	if a == nil || b == nil {
		t.Fatal("Compile failed")
	}
	if got := pipeline.NewSet("a", []*pipeline.Pipeline{a, b}).For(&pipeline.Meta{}, "stdout"); got != b {
		t.Errorf("For = %v, want the first by name", got)
	}
}
