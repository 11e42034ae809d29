package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func steps(s ...v1alpha1.Step) []v1alpha1.Step { return s }

func TestCompileMessages(t *testing.T) {
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	policy, err := CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug"}, MaxStepsPerPipeline: 2})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		spec   v1alpha1.LogPipelineSpec
		policy *Policy
		want   []string // every line of the error, in order
	}{
		{"issue example: unclosed class in an unclosed group", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
			v1alpha1.Step{Regex: &v1alpha1.RegexStep{Pattern: `(?P<x>[a-z`}},
		)}, nil, []string{`steps[2].regex.pattern: missing closing ] for "[" at offset 6 and ) for "(?P<x>" at offset 0: "(?P<x>[a-z"`}},
		{"unclosed group", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Regex: &v1alpha1.RegexStep{Pattern: `(?P<x>[a-z]`}},
		)}, nil, []string{`steps[0].regex.pattern: missing closing ) for "(?P<x>" at offset 0: "(?P<x>[a-z]"`}},
		{"regex without named group", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Regex: &v1alpha1.RegexStep{Pattern: `[a-z]+`}},
		)}, nil, []string{`steps[0].regex.pattern: no named group: name what to extract with (?P<name>...)`}},
		{"empty regex", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Regex: &v1alpha1.RegexStep{}},
		)}, nil, []string{`steps[0].regex.pattern: empty pattern`}},
		{"suffix not allowed without policy", v1alpha1.LogPipelineSpec{Output: v1alpha1.Output{Suffix: "audit"}}, nil,
			[]string{`output.suffix: "audit" is not allowed by the LogRouterPolicy (allowed: none)`}},
		{"suffix not allowed by policy", v1alpha1.LogPipelineSpec{Output: v1alpha1.Output{Suffix: "audit"}}, policy,
			[]string{`output.suffix: "audit" is not allowed by the LogRouterPolicy (allowed: debug)`}},
		{"suffix with a dot", v1alpha1.LogPipelineSpec{Output: v1alpha1.Output{Suffix: "other.x"}}, policy,
			[]string{`output.suffix: "other.x": want a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit; no dots)`}},
		{"too many steps for the policy", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}}, v1alpha1.Step{JSON: &v1alpha1.JSONStep{}}, v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
		)}, policy, []string{`steps: 3 steps; the LogRouterPolicy allows at most 2 (maxStepsPerPipeline)`}},
		{"step with no member", v1alpha1.LogPipelineSpec{Steps: steps(v1alpha1.Step{})}, nil,
			[]string{`steps[0]: a step sets exactly one of json, logfmt, regex, multiline, timestamp, set, rename, remove, keep, drop, redact, sample (this one sets none)`}},
		{"step with two members", v1alpha1.LogPipelineSpec{Steps: steps(v1alpha1.Step{JSON: &v1alpha1.JSONStep{}, Keep: &v1alpha1.ConditionStep{If: "true"}})}, nil,
			[]string{`steps[0]: a step sets exactly one of json, logfmt, regex, multiline, timestamp, set, rename, remove, keep, drop, redact, sample (this one sets json, keep)`}},
		{"selector", v1alpha1.LogPipelineSpec{Selector: v1alpha1.Selector{
			Pods:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}},
			Containers: []string{""},
			Streams:    []v1alpha1.Stream{"stdin"},
		}}, nil, []string{
			`selector.pods: "Near" is not a valid label selector operator`,
			`selector.containers[0]: empty container name`,
			`selector.streams[0]: "stdin" is not a stream (want stdout or stderr)`,
		}},
		{"CEL: unknown member, with position", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
			v1alpha1.Step{Keep: &v1alpha1.ConditionStep{If: `record.mesage == "x"`}},
		)}, nil, []string{`steps[1].keep.if: 1:7: undefined field 'mesage'`}},
		{"CEL: syntax error on line 2", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Drop: &v1alpha1.ConditionStep{If: "true &&\n  record.fields.level ==="}},
		)}, nil, []string{`steps[0].drop.if: 2:25: Syntax error: token recognition error at: '='; 2:26: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`}},
		{"CEL: not a bool", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Keep: &v1alpha1.ConditionStep{If: `record.message`}},
		)}, nil, []string{`steps[0].keep.if: must be a bool expression, not string`}},
		{"CEL: sample if and set value", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Sample: &v1alpha1.SampleStep{OneIn: 0, If: `record.nope`}},
			v1alpha1.Step{Set: &v1alpha1.SetStep{Field: "", Value: `1 + "a"`}},
		)}, nil, []string{
			`steps[0].sample.oneIn: 0: must be at least 1`,
			`steps[0].sample.if: 1:7: undefined field 'nope'`,
			`steps[1].set.field: empty field name`,
			`steps[1].set.value: 1:3: found no matching overload for '_+_' applied to '(int, string)'`,
		}},
		{"multiline", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
			v1alpha1.Step{Multiline: &v1alpha1.MultilineStep{Start: `^\S`}},
		)}, nil, []string{`steps[1].multiline: must be the first step: lines are joined before they are processed`}},
		{"multiline bounds", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Multiline: &v1alpha1.MultilineStep{Start: `^\S`, Continue: `^\s`, MaxLines: 1, MaxBytes: 2 << 20, FlushTimeout: dur(-time.Second)}},
		)}, nil, []string{
			`steps[0].multiline: multiline sets exactly one of start and continue`,
			`steps[0].multiline.maxLines: 1: must be between 2 and 10000`,
			`steps[0].multiline.maxBytes: 2097152: must be between 256 and 1048576`,
			`steps[0].multiline.flushTimeout: -1s: must be more than 0 and at most 1m0s`,
		}},
		{"multiline bad pattern", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Multiline: &v1alpha1.MultilineStep{Continue: `^(\s`}},
		)}, nil, []string{`steps[0].multiline.continue: missing closing ) for "(" at offset 1: "^(\\s"`}},
		{"timestamp", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Timestamp: &v1alpha1.TimestampStep{Field: "", Layout: "yesterday"}},
		)}, nil, []string{
			`steps[0].timestamp.field: empty field name`,
			`steps[0].timestamp.layout: "yesterday" is not a time layout: write the reference time Mon Jan 2 15:04:05 MST 2006 in the wanted format, or use RFC3339, RFC3339Nano, Unix, UnixMilli, UnixMicro, UnixNano or Common`,
		}},
		{"field edits", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Rename: &v1alpha1.RenameStep{From: "a"}},
			v1alpha1.Step{Remove: &v1alpha1.RemoveStep{}},
			v1alpha1.Step{Remove: &v1alpha1.RemoveStep{Fields: []string{"ok", "\xff"}}},
		)}, nil, []string{
			`steps[0].rename.to: empty field name`,
			`steps[1].remove.fields: empty: name at least one field`,
			`steps[2].remove.fields[1]: field name is not valid UTF-8`,
		}},
		{"redact", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Redact: &v1alpha1.RedactStep{}},
			v1alpha1.Step{Redact: &v1alpha1.RedactStep{Pattern: `a**`}},
		)}, nil, []string{
			`steps[0].redact: redact needs a pattern or fields`,
			`steps[1].redact.pattern: invalid nested repetition operator: "**"`,
		}},
		{"parse steps' fields", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{Into: strings.Repeat("x", 300)}},
			v1alpha1.Step{Logfmt: &v1alpha1.LogfmtStep{Source: "\xfe"}},
		)}, nil, []string{
			`steps[0].json.into: field name is 300 bytes, at most 256 allowed`,
			`steps[1].logfmt.source: field name is not valid UTF-8`,
		}},
		{"long expression", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Keep: &v1alpha1.ConditionStep{If: strings.Repeat(" ", 5000) + "true"}},
		)}, nil, []string{`steps[0].keep.if: expression is 5004 bytes, at most 4096 allowed`}},
		{"empty expression", v1alpha1.LogPipelineSpec{Steps: steps(
			v1alpha1.Step{Keep: &v1alpha1.ConditionStep{If: "  "}},
		)}, nil, []string{`steps[0].keep.if: empty expression`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile("team-a", "p", 1, &tt.spec, tt.policy)
			if err == nil {
				t.Fatalf("Compile succeeded: %+v", p)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) is false for %v", err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestCompileValid(t *testing.T) {
	policy, err := CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug", "audit"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := &v1alpha1.LogPipelineSpec{
		Selector: v1alpha1.Selector{Pods: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Streams: []v1alpha1.Stream{"stdout"}},
		Steps: steps(
			v1alpha1.Step{Multiline: &v1alpha1.MultilineStep{Start: `^\d{4}-`}},
			v1alpha1.Step{JSON: &v1alpha1.JSONStep{}},
			v1alpha1.Step{Logfmt: &v1alpha1.LogfmtStep{Source: "msg", Into: "kv"}},
			v1alpha1.Step{Regex: &v1alpha1.RegexStep{Pattern: `(?P<method>[A-Z]+) (?P<path>\S+)`}},
			v1alpha1.Step{Timestamp: &v1alpha1.TimestampStep{Field: "ts", Layout: "Common"}},
			v1alpha1.Step{Set: &v1alpha1.SetStep{Field: "app", Value: `record.labels["app"]`}},
			v1alpha1.Step{Rename: &v1alpha1.RenameStep{From: "msg", To: "text"}},
			v1alpha1.Step{Remove: &v1alpha1.RemoveStep{Fields: []string{"x"}}},
			v1alpha1.Step{Keep: &v1alpha1.ConditionStep{If: `has(record.fields.level)`}},
			v1alpha1.Step{Drop: &v1alpha1.ConditionStep{If: `record.fields.?level.orValue("") == "debug"`}},
			v1alpha1.Step{Redact: &v1alpha1.RedactStep{Pattern: `\S+@\S+`, Hash: true}},
			v1alpha1.Step{Sample: &v1alpha1.SampleStep{OneIn: 10, If: `record.stream == "stdout"`}},
		),
		Output: v1alpha1.Output{Suffix: "debug"},
	}
	p, err := Compile("team-a", "web", 7, spec, policy)
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "team-a" || p.Name != "web" || p.Generation != 7 || p.Suffix != "debug" {
		t.Errorf("pipeline %+v", p)
	}
	// The defaults (nil policy) allow 20 steps.
	many := make([]v1alpha1.Step, 20)
	for i := range many {
		many[i] = v1alpha1.Step{JSON: &v1alpha1.JSONStep{}}
	}
	if _, err := Compile("team-a", "web", 1, &v1alpha1.LogPipelineSpec{Steps: many}, nil); err != nil {
		t.Errorf("20 steps: %v", err)
	}
	if _, err := Compile("team-a", "web", 1, &v1alpha1.LogPipelineSpec{Steps: append(many, many[0])}, nil); err == nil {
		t.Errorf("21 steps accepted without a policy")
	}
	if _, err := Compile("team-a", "web", 1, nil, nil); err == nil {
		t.Errorf("nil spec accepted")
	}
}
