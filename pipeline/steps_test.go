package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

type S = v1alpha1.Step

// runaway is a condition of 10^6 iterations: it passes type-checking and hits the cost limit.
var runaway = func() string {
	e := "a+b+c+d+e+f >= 0"
	for _, v := range []string{"f", "e", "d", "c", "b", "a"} {
		e = "[0,1,2,3,4,5,6,7,8,9].all(" + v + ", " + e + ")"
	}
	return e
}()

func TestSteps(t *testing.T) {
	tests := []struct {
		name  string
		steps []S
		lines []string
		want  []out // Time zero means t0; Start/End/Lines are not compared
		oc    []Outcome
	}{
		{"json merges into fields", []S{{JSON: &v1alpha1.JSONStep{}}},
			[]string{`{"level":"info","n":3,"f":1.5,"ok":true,"z":null,"o":{"b":[1,"x"]},"s":"a\"\u00e9"}`},
			[]out{{Fields: `{"f":1.5,"level":"info","n":3,"o":{"b":[1,"x"]},"ok":true,"s":"a\"é","z":null}`}}, nil},
		{"json failure keeps the message and marks it", []S{{JSON: &v1alpha1.JSONStep{}}},
			[]string{`plain text`, `{"a":1`, `[1,2]`, `{"a":1} x`},
			[]out{
				{Message: "plain text", FieldsError: "steps[0].json: not a JSON object"},
				{Message: `{"a":1`, FieldsError: "steps[0].json: invalid JSON: expected ',' or '}' at offset 6, found end of input"},
				{Message: `[1,2]`, FieldsError: "steps[0].json: not a JSON object"},
				{Message: `{"a":1} x`, FieldsError: `steps[0].json: invalid JSON: unexpected 'x' after the object at offset 8`},
			},
			[]Outcome{{ParseFailed: true}, {ParseFailed: true}, {ParseFailed: true}, {ParseFailed: true}}},
		{"json from a field into a field", []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<lvl>\w+) (?P<payload>.*)$`}},
			{JSON: &v1alpha1.JSONStep{Source: "payload", Into: "p"}},
			{Remove: &v1alpha1.RemoveStep{Fields: []string{"payload"}}},
		}, []string{`INFO {"user":"u1"}`},
			[]out{{Fields: `{"lvl":"INFO","p":{"user":"u1"}}`}}, nil},
		{"json source missing or not a string", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{JSON: &v1alpha1.JSONStep{Source: "n"}},
			{JSON: &v1alpha1.JSONStep{Source: "missing"}},
		}, []string{`{"n":1}`},
			[]out{{Fields: `{"n":1}`, FieldsError: `steps[1].json: field "n" is a number, not a string`}},
			[]Outcome{{ParseFailed: true}}},
		{"failed merge keeps earlier fields", []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<a>\w)`}},
			{JSON: &v1alpha1.JSONStep{}},
		}, []string{`x {"b":1`},
			[]out{{Fields: `{"a":"x"}`, FieldsError: `steps[1].json: not a JSON object`}}, nil},
		{"logfmt", []S{{Logfmt: &v1alpha1.LogfmtStep{}}},
			[]string{`level=info msg="hello \"you\"" dur=3ms flag empty=`, `no pairs here`, `a="unterminated`},
			[]out{
				{Fields: `{"dur":"3ms","empty":"","flag":true,"level":"info","msg":"hello \"you\""}`},
				{Message: "no pairs here", FieldsError: "steps[0].logfmt: no key=value pairs"},
				{Message: `a="unterminated`, FieldsError: `steps[0].logfmt: invalid logfmt: unterminated quoted value of "a"`},
			}, nil},
		{"regex: named groups, optional group, no match", []S{{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<status>\d+))?`}}},
			[]string{`GET /x 200`, `POST /y`, `nothing`},
			[]out{
				{Fields: `{"method":"GET","path":"/x","status":"200"}`},
				{Fields: `{"method":"POST","path":"/y"}`},
				{Message: "nothing", FieldsError: "steps[0].regex: no match"},
			}, nil},
		{"timestamp layouts", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "t"}},
		}, []string{`{"t":"2026-01-02T03:04:05.123Z"}`, `{"t":"yesterday"}`, `{"x":1}`},
			[]out{
				{Fields: `{"t":"2026-01-02T03:04:05.123Z"}`, Time: time.Date(2026, 1, 2, 3, 4, 5, 123e6, time.UTC)},
				{Fields: `{"t":"yesterday"}`, FieldsError: `steps[1].timestamp: field "t": "yesterday" does not match layout "2006-01-02T15:04:05.999999999Z07:00"`},
				{Fields: `{"x":1}`, FieldsError: `steps[1].timestamp: field "t" is missing`},
			}, nil},
		{"timestamp Common", []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `\[(?P<t>[^\]]+)\]`}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "t", Layout: "Common"}},
			{Remove: &v1alpha1.RemoveStep{Fields: []string{"t"}}},
		}, []string{`1.2.3.4 - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200`},
			[]out{{Fields: `{}`, Time: time.Date(2026, 10, 10, 20, 55, 36, 0, time.UTC)}}, nil},
		{"timestamp Unix units", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "s", Layout: "Unix"}},
			{Remove: &v1alpha1.RemoveStep{Fields: []string{"s"}}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "ms", Layout: "UnixMilli"}},
		}, []string{`{"s":1700000000.5}`, `{"ms":"1700000000123"}`, `{"s":"1e300"}`},
			[]out{
				{Fields: `{}`, Time: time.Unix(1700000000, 5e8).UTC(), FieldsError: `steps[3].timestamp: field "ms" is missing`},
				{Fields: `{"ms":"1700000000123"}`, Time: time.UnixMilli(1700000000123).UTC(), FieldsError: `steps[1].timestamp: field "s" is missing`},
				{Fields: `{}`, FieldsError: `steps[1].timestamp: field "s": 1e+300 is out of range (layout Unix)`},
			}, nil},
		{"timestamp Go layout", []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<t>\S+ \S+)`}},
			{Timestamp: &v1alpha1.TimestampStep{Field: "t", Layout: "2006-01-02 15:04:05.000"}},
		}, []string{`2026-03-04 05:06:07.089 hello`},
			[]out{{Fields: `{"t":"2026-03-04 05:06:07.089"}`, Time: time.Date(2026, 3, 4, 5, 6, 7, 89e6, time.UTC)}}, nil},
		{"set, rename, remove", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Set: &v1alpha1.SetStep{Field: "app", Value: `record.labels["app"]`}},
			{Set: &v1alpha1.SetStep{Field: "where", Value: `{"ns": record.namespace, "pod": record.pod, "c": record.container, "node": record.node, "owner": record.owner_kind + "/" + record.owner_name, "stream": record.stream, "team": record.annotations["team"]}`}},
			{Set: &v1alpha1.SetStep{Field: "year", Value: `record.time.getFullYear()`}},
			{Set: &v1alpha1.SetStep{Field: "len", Value: `size(record.message)`}},
			{Set: &v1alpha1.SetStep{Field: "nope", Value: `record.fields.missing`}},
			{Rename: &v1alpha1.RenameStep{From: "msg", To: "text"}},
			{Rename: &v1alpha1.RenameStep{From: "absent", To: "x"}},
			{Remove: &v1alpha1.RemoveStep{Fields: []string{"level", "absent"}}},
		}, []string{`{"level":"info","msg":"hi"}`},
			[]out{{Fields: `{"app":"web","len":27,"text":"hi","where":{"c":"app","node":"node-1","ns":"team-a","owner":"ReplicaSet/web-5d4","pod":"web-1","stream":"stdout","team":"a"},"year":2026}`}},
			[]Outcome{{EvalErrors: 1}}},
		{"keep and drop", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Drop: &v1alpha1.ConditionStep{If: `record.fields.level == "debug"`}},
			{Keep: &v1alpha1.ConditionStep{If: `!record.message.contains("/healthz")`}},
			{Keep: &v1alpha1.ConditionStep{If: `record.labels["app"] == "web"`}},
		}, []string{`{"level":"debug"}`, `{"level":"info","path":"/healthz"}`, `{"level":"info"}`, `{"no":"level"}`},
			[]out{{Fields: `{"level":"info"}`}, {Fields: `{"no":"level"}`}},
			[]Outcome{{Verdict: Drop}, {Verdict: Drop}, {}, {EvalErrors: 1}}},
		{"a condition's error does nothing: keep keeps", []S{
			{Keep: &v1alpha1.ConditionStep{If: `record.fields.level == "error"`}},
			{Keep: &v1alpha1.ConditionStep{If: `has(record.fields.level) && record.fields.level == "error"`}},
		}, []string{`a`},
			nil,
			[]Outcome{{Verdict: Drop, EvalErrors: 1}}},
		{"CEL numbers from JSON compare with int literals", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Keep: &v1alpha1.ConditionStep{If: `record.fields.status >= 500 && record.fields.dur < 1.5`}},
		}, []string{`{"status":503,"dur":1}`, `{"status":200,"dur":1}`, `{"status":500.0,"dur":1.2}`},
			[]out{{Fields: `{"dur":1,"status":503}`}, {Fields: `{"dur":1.2,"status":500}`}}, nil},
		{"CEL cost limit stops a runaway expression", []S{
			{Keep: &v1alpha1.ConditionStep{If: runaway}},
		}, []string{`x`},
			[]out{{}}, []Outcome{{EvalErrors: 1}}},
		{"redact by pattern in message and string fields", []S{
			{Regex: &v1alpha1.RegexStep{Pattern: `user=(?P<user>\S+)`}},
			{Set: &v1alpha1.SetStep{Field: "nested", Value: `{"list": [record.fields.user, 1]}`}},
			{Redact: &v1alpha1.RedactStep{Pattern: `[a-z]+@[a-z.]+`}},
		}, []string{`login user=ann@example.org from bob@example.org`},
			[]out{{Message: `login user=[REDACTED] from [REDACTED]`, Fields: `{"nested":{"list":["[REDACTED]",1]},"user":"[REDACTED]"}`}}, nil},
		{"redact with hash: equal values correlate", []S{
			{Redact: &v1alpha1.RedactStep{Pattern: `[a-z]+@[a-z.]+`, Hash: true}},
			{Redact: &v1alpha1.RedactStep{Pattern: `tok-\d+`, Hash: true, Replacement: "<token>"}},
		}, []string{`a ann@example.org b bob@example.org c ann@example.org tok-1`},
			[]out{{Message: `a [REDACTED:sha256:` + hmac12("team-a", "ann@example.org") + `] b [REDACTED:sha256:` + hmac12("team-a", "bob@example.org") + `] c [REDACTED:sha256:` + hmac12("team-a", "ann@example.org") + `] <token>:sha256:` + hmac12("team-a", "tok-1")}}, nil},
		{"redact by field name", []S{
			{JSON: &v1alpha1.JSONStep{}},
			{Redact: &v1alpha1.RedactStep{Fields: []string{"password", "card", "absent"}, Hash: true}},
			{Redact: &v1alpha1.RedactStep{Fields: []string{"secret"}, Replacement: "***"}},
		}, []string{`{"password":"hunter2","card":{"n":4111},"secret":"s","ok":1}`},
			[]out{{Message: `{"password":"hunter2","card":{"n":4111},"secret":"s","ok":1}`, Fields: `{"card":"[REDACTED:sha256:` + hmac12("team-a", `{"n":4111}`) + `]","ok":1,"password":"[REDACTED:sha256:` + hmac12("team-a", "hunter2") + `]","secret":"***"}`}}, nil},
		{"sample 1 in 1 keeps all; its if limits it", []S{
			{Sample: &v1alpha1.SampleStep{OneIn: 1}},
			{Sample: &v1alpha1.SampleStep{OneIn: 1000000, If: `record.message.startsWith("debug")`}},
		}, []string{`info a`, `debug b`, `info c`},
			[]out{{Message: "info a"}, {Message: "info c"}},
			[]Outcome{{}, {Verdict: SampledOut}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.steps...)
			got, oc := feed(t, p, tt.lines...)
			if len(got) != len(tt.want) {
				t.Fatalf("emitted %d records, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if w.Message == "" {
					w.Message = g.Message // not compared
				}
				if w.Time.IsZero() {
					w.Time = t0
				}
				w.Start, w.End, w.Lines = g.Start, g.End, g.Lines
				if g != w {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
			if tt.oc != nil {
				for i := range tt.oc {
					if oc[i] != tt.oc[i] {
						t.Errorf("line %d: outcome %+v, want %+v", i, oc[i], tt.oc[i])
					}
				}
			}
		})
	}
}

// hmac12 is the documented hash: the first 12 hex digits of HMAC-SHA256 keyed by
// "logrouter.redact.v1/<namespace>".
func hmac12(ns, v string) string {
	return hmacHex("logrouter.redact.v1/"+ns, v)[:12]
}

func TestRedactHashAcrossRunnersAndPipelines(t *testing.T) {
	mk := func(ns, name string) *Pipeline {
		p, err := Compile(ns, name, 1, &v1alpha1.LogPipelineSpec{Steps: []S{{Redact: &v1alpha1.RedactStep{Pattern: `\d{4}-\d{4}`, Hash: true}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(p *Pipeline, line string) string {
		var got string
		p.NewRunner().Process(&Record{Message: []byte(line)}, t0, func(r *Record) { got = string(r.Message) })
		return got
	}
	a := run(mk("team-a", "one"), "card 1234-5678")
	b := run(mk("team-a", "two"), "other 1234-5678")
	c := run(mk("team-b", "one"), "card 1234-5678")
	if strings.TrimPrefix(a, "card ") != strings.TrimPrefix(b, "other ") {
		t.Errorf("same value, same namespace, different hashes: %q %q", a, b)
	}
	if a == c {
		t.Errorf("same value in two namespaces has the same hash: %q", a)
	}
	if strings.Contains(a, "1234") {
		t.Errorf("not redacted: %q", a)
	}
}

func TestRequiredLiteral(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{`[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}`, "@"},
		{`\d{4}-\d{4}`, "-"},
		{`Bearer [A-Za-z0-9._-]+`, "Bearer "},
		{`(token|secret)=\S+`, "="},
		{`(?i)password=\S+`, ""},
		{`a|b`, ""},
		{`(ab)?c`, "c"},
		{`(?:xyz){2}`, "xyz"},
		{`x*`, ""},
	} {
		got := requiredLiteral(tt.pattern)
		if got != tt.want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}
