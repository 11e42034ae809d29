//go:build !collector

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

const testPipelineJSON = `apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  namespace: shop
  name: api
spec:
  selector:
    pods:
      matchLabels:
        app: api
  steps:
  - json: {}
  - drop:
      if: 'record.fields.level == "debug"'
`

func TestPipelineValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeTemp(t, dir, "good.yaml", testPipelineJSON)
	badDir := t.TempDir()
	writeTemp(t, badDir, "a.yaml", testPipelineJSON)
	writeTemp(t, badDir, "b.yaml", strings.NewReplacer("name: api", "name: regex", "- json: {}", "- regex:\n      pattern: '(?P<x>[a-z'").Replace(testPipelineJSON))
	writeTemp(t, badDir, "c.yaml", strings.NewReplacer("name: api", "name: cel", `record.fields.level == "debug"`, `record.fields.level ==`).Replace(testPipelineJSON))
	suffix := writeTemp(t, dir, "suffix.yaml", strings.Replace(testPipelineJSON, "  steps:", "  output:\n    suffix: audit\n  steps:", 1))
	policy := writeTemp(t, dir, "policy.yaml", "apiVersion: logrouter.io/v1alpha1\nkind: LogRouterPolicy\nmetadata:\n  name: default\nspec:\n  allowedSuffixes: [debug]\n")
	unknown := writeTemp(t, dir, "unknown.yaml", strings.Replace(testPipelineJSON, "  steps:", "  stepz: []\n  steps:", 1))

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // each must appear
		stderr []string
	}{
		{"valid", []string{"-f", good}, 0, []string{good + ":1: shop/api: ok"}, nil},
		{"directory with invalid regex and CEL", []string{"-f", badDir}, 1,
			[]string{"a.yaml:1: shop/api: ok", "b.yaml:1: shop/regex: steps[0].regex.pattern: missing closing ]", "c.yaml:1: shop/cel: steps[1].drop.if: 1:23: Syntax error"},
			[]string{"2 of 3 pipelines have problems"}},
		{"suffix not allowed by the policy", []string{"-f", suffix, "--policy", policy}, 1,
			[]string{"shop/api: output.suffix: ", `"audit"`}, nil},
		{"suffix without a policy", []string{"-f", suffix}, 1, []string{"output.suffix"}, nil},
		{"unknown field, and a good file still checked", []string{"-f", unknown, "-f", good}, 1,
			[]string{"unknown.yaml:", "stepz", good + ":1: shop/api: ok"}, []string{"0 of 1 pipelines have problems, and 1 documents do not decode"}},
		{"several -f", []string{"-f", good, "-f", filepath.Join(badDir, "b.yaml")}, 1, []string{"shop/api: ok", "shop/regex: steps[0].regex.pattern"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"pipeline", "validate"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		recs = append(recs, m)
	}
	return recs
}

// pipeline test runs the pipeline the collector would run on CRI, docker and raw samples,
// selected by the labels given; --explain says which step did what.
func TestPipelineTest(t *testing.T) {
	dir := t.TempDir()
	p := writeTemp(t, dir, "p.yaml", testPipelineJSON)
	cri := writeTemp(t, dir, "cri.log", `2026-01-02T03:04:05.000000001Z stdout F {"level":"info","msg":"hello"}
2026-01-02T03:04:05.000000002Z stdout F {"level":"debug","msg":"noise"}
2026-01-02T03:04:05.000000003Z stderr P not js
2026-01-02T03:04:05.000000004Z stderr F on
`)
	docker := writeTemp(t, dir, "docker.log", `{"log":"{\"level\":\"info\",\"msg\":\"hello\"}\n","stream":"stdout","time":"2026-01-02T03:04:05.000000001Z"}
{"log":"{\"level\":\"debug\",\"msg\":\"noise\"}\n","stream":"stdout","time":"2026-01-02T03:04:05.000000002Z"}
{"log":"not js","stream":"stderr","time":"2026-01-02T03:04:05.000000003Z"}
{"log":"on\n","stream":"stderr","time":"2026-01-02T03:04:05.000000004Z"}
`)
	raw := writeTemp(t, dir, "raw.log", "{\"level\":\"info\",\"msg\":\"hello\"}\n{\"level\":\"debug\",\"msg\":\"noise\"}\nnot json\n")

	for _, tc := range []struct {
		name, input string
		messages    []string // of the records, in order
		time        bool
	}{
		{"cri", cri, []string{`{"level":"info","msg":"hello"}`, "not json"}, true},
		{"docker", docker, []string{`{"level":"info","msg":"hello"}`, "not json"}, true},
		{"raw", raw, []string{`{"level":"info","msg":"hello"}`, "not json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "pipeline", "test", "-f", p, "--input", tc.input, "--labels", "app=api,tier=backend")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			recs := jsonLines(t, out)
			if len(recs) != len(tc.messages) {
				t.Fatalf("%d records, want %d (the debug line dropped):\n%s", len(recs), len(tc.messages), out)
			}
			for i, m := range tc.messages {
				if recs[i]["message"] != m {
					t.Errorf("record %d: message %q, want %q", i, recs[i]["message"], m)
				}
				if recs[i]["topic"] != "logs.shop" || recs[i]["pipeline"] != "api" {
					t.Errorf("record %d: topic %v pipeline %v, want logs.shop and api", i, recs[i]["topic"], recs[i]["pipeline"])
				}
				if _, ok := recs[i]["time"]; ok != tc.time {
					t.Errorf("record %d: time present %v, want %v", i, ok, tc.time)
				}
			}
			fields, _ := recs[0]["fields"].(map[string]any)
			if fields["level"] != "info" || fields["msg"] != "hello" {
				t.Errorf("record 0: fields %v, want level=info msg=hello", recs[0]["fields"])
			}
			if recs[1]["fields_error"] == nil || recs[1]["fields"] != nil {
				t.Errorf("record 1 (not JSON): want fields_error and no fields: %v", recs[1])
			}
		})
	}

	t.Run("not selected", func(t *testing.T) {
		code, out, errOut := runCmd(t, "pipeline", "test", "-f", p, "--input", cri, "--labels", "app=web", "--explain")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		recs := jsonLines(t, out)
		if len(recs) != 3 {
			t.Fatalf("%d records, want the 3 lines unchanged:\n%s", len(recs), out)
		}
		for _, r := range recs {
			if r["fields"] != nil || r["pipeline"] != nil {
				t.Errorf("a line no pipeline selects was changed: %v", r)
			}
		}
		if !strings.Contains(out, "# line 1: no pipeline selects it") {
			t.Errorf("--explain does not say the line is not selected:\n%s", out)
		}
	})

	t.Run("explain", func(t *testing.T) {
		code, out, errOut := runCmd(t, "pipeline", "test", "-f", p, "--input", cri, "--labels", "app=api", "--explain")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, w := range []string{
			`# line 1: api: steps[0].json: fields.level="info", fields.msg="hello"`,
			`# line 2: api: steps[0].json: fields.level="debug", fields.msg="noise"; steps[1].drop: dropped`,
			`# line 3: api: steps[0].json: fields_error`,
		} {
			if !strings.Contains(out, w) {
				t.Errorf("--explain lacks %q:\n%s", w, out)
			}
		}
	})
}

// sampleLines never panics, gives at most one logical line per physical line, and keeps raw
// lines' text (whatever the sample holds).
func FuzzSampleLines(f *testing.F) {
	f.Add([]byte("2026-01-02T03:04:05.000000001Z stdout F hello\n2026-01-02T03:04:05.000000001Z stderr P a\n"), "auto")
	f.Add([]byte(`{"log":"x\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}`+"\n"), "docker")
	f.Add([]byte("{not docker}\nplain\r\n\n"), "auto")
	f.Add([]byte("2026 garbage\n"), "cri")
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		switch format {
		case "auto", "cri", "docker", "raw":
		default:
			format = "raw"
		}
		lines, err := sampleLines(data, format)
		if err != nil {
			t.Fatal(err)
		}
		physical := bytes.Count(data, []byte("\n")) + 1
		if len(lines) > physical {
			t.Fatalf("%d lines from %d physical lines", len(lines), physical)
		}
		for _, l := range lines {
			if l.rec.Stream != "stdout" && l.rec.Stream != "stderr" {
				t.Fatalf("line %d: stream %q", l.n, l.rec.Stream)
			}
			if l.n < 1 || l.n > physical {
				t.Fatalf("line number %d of %d", l.n, physical)
			}
		}
		if format == "raw" {
			var want []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if l != "" {
					want = append(want, strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r"))
				}
			}
			if len(want) != len(lines) {
				t.Fatalf("raw: %d lines, want %d", len(lines), len(want))
			}
			for i := range want {
				if string(lines[i].rec.Message) != want[i] {
					t.Fatalf("raw line %d: %q, want %q", i, lines[i].rec.Message, want[i])
				}
			}
		}
	})
}
