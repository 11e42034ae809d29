package load

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

const web = `apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  name: web
  namespace: team-a
spec:
  steps:
    - json: {}
    - keep: {if: 'record.fields.level != "debug"'}
`

const pol = `apiVersion: logrouter.io/v1alpha1
kind: LogRouterPolicy
metadata: {name: default}
spec:
  limits: {linesPerSecond: 100, bytesPerSecond: 1Mi, action: drop}
  allowedSuffixes: [audit]
`

func TestBytes(t *testing.T) {
	type want struct {
		kinds string // one letter per object: p(ipeline) or P(olicy)
		errs  []string
	}
	for _, tt := range []struct {
		name, data string
		want
	}{
		{"one pipeline", web, want{kinds: "p"}},
		{"pipeline and policy", web + "---\n" + pol, want{kinds: "pP"}},
		{"separators, comments, empty documents", "# pipelines of team-a\n---\n" + web + "--- # the policy\n\n---\n" + pol + "---\n", want{kinds: "pP"}},
		{"CRLF", strings.ReplaceAll(web+"---\n"+pol, "\n", "\r\n"), want{kinds: "pP"}},
		{"byte order mark", "\xef\xbb\xbf" + web, want{kinds: "p"}},
		{"JSON", `{"apiVersion":"logrouter.io/v1alpha1","kind":"LogPipeline","metadata":{"name":"j","namespace":"x"},"spec":{"output":{"suffix":"audit"}}}`, want{kinds: "p"}},
		{"status is kept", web + "status: {observedGeneration: 3}\n", want{kinds: "p"}},
		{"anchors and merge keys", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: a}\nspec:\n  steps:\n    - regex: &r {pattern: x}\n    - regex: {<<: *r, source: y}\n", want{kinds: "p"}},
		{"empty file", "", want{}},
		{"only comments", "# nothing\n---\n# still nothing\n", want{}},

		{"unknown spec field", strings.Replace(web, "  steps:", "  stepz:", 1), want{errs: []string{"x.yaml:7: document 1: unknown field \"spec.stepz\""}}},
		{"unknown step field", web + "    - regex: {patern: x}\n", want{errs: []string{`x.yaml:10: document 1: unknown field "spec.steps[2].regex.patern"`}}},
		{"unknown step", web + "    - grok: {pattern: x}\n", want{errs: []string{`x.yaml:10: document 1: unknown field "spec.steps[2].grok"`}}},
		{"keys are case-sensitive", strings.Replace(web, "spec:", "Spec:", 1), want{errs: []string{`x.yaml:6: document 1: unknown field "Spec"`}}},
		{"unknown metadata field", strings.Replace(web, "  name: web", "  nmae: web", 1), want{errs: []string{`x.yaml:4: document 1: unknown field "metadata.nmae"`}}},
		{"unknown field in merged keys", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: a}\nspec:\n  steps:\n    - regex: &r {pattern: x}\n    - regex: {<<: {sauce: y}}\n", want{errs: []string{`unknown field "spec.steps[1].regex.sauce"`}}},
		{"unknown label selector field", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: a}\nspec:\n  selector:\n    pods: {matchLabel: {app: web}}\n", want{errs: []string{`x.yaml:6: document 1: unknown field "spec.selector.pods.matchLabel"`}}},
		{"duplicate key", web + "spec: {}\n", want{errs: []string{"x.yaml:10: document 1: ", `key "spec" already set`}}},
		{"wrong type", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: a}\nspec:\n  steps: [{sample: {oneIn: many}}]\n", want{errs: []string{"x.yaml:1: document 1: spec.steps.sample.oneIn: Invalid value: got a string, want integer"}}},
		{"syntax error", web + "  output: [\n", want{errs: []string{"x.yaml:10: document 1: did not find expected node content"}}},
		{"tab indentation", web + "\toutput: {}\n", want{errs: []string{"x.yaml:10: document 1: found character that cannot start any token"}}},
		{"not a mapping", "- a\n- b\n", want{errs: []string{"x.yaml:1: document 1: ", "cannot unmarshal"}}},
		{"scalar document", "hello\n", want{errs: []string{"x.yaml:1: document 1: "}}},
		{"apiVersion missing", "kind: LogPipeline\nmetadata: {name: a}\n", want{errs: []string{"x.yaml:1: document 1: not a LogPipeline or LogRouterPolicy: apiVersion is missing: want logrouter.io/v1alpha1"}}},
		{"old apiVersion", strings.Replace(web, "v1alpha1", "v1beta1", 1), want{errs: []string{`apiVersion "logrouter.io/v1beta1": want logrouter.io/v1alpha1`}}},
		{"kind missing", "apiVersion: logrouter.io/v1alpha1\nmetadata: {name: a}\n", want{errs: []string{"kind is missing"}}},
		{"other kind", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipelineList\nitems: []\n", want{errs: []string{`kind "LogPipelineList": want LogPipeline or LogRouterPolicy`}}},
		{"ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", want{errs: []string{`apiVersion "v1"`}}},
		{"content after separator", web + "--- kind: LogPipeline\n", want{errs: []string{"x.yaml:10: document 1: content after the document separator"}}},
		{"pipeline without name", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nspec: {}\n", want{errs: []string{"metadata.name: Required value"}}},
		{"pipeline bad name", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: Web_1}\nspec: {}\n", want{errs: []string{`metadata.name: Invalid value: "Web_1"`}}},
		{"pipeline bad namespace", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: w, namespace: team.a}\nspec: {}\n", want{errs: []string{`metadata.namespace: Invalid value: "team.a"`}}},
		{"policy not default", strings.Replace(pol, "name: default", "name: strict", 1), want{errs: []string{`metadata.name: Invalid value: "strict": the cluster has one LogRouterPolicy, named default`}}},
		{"policy in a namespace", strings.Replace(pol, "name: default", "name: default, namespace: x", 1), want{errs: []string{"LogRouterPolicy is cluster-scoped"}}},
		{"bad document among good ones", web + "---\n# second\nkind: Pipeline\n---\n" + pol, want{kinds: "pP", errs: []string{"x.yaml:11: document 2: "}}},
		{"two bad documents", "kind: A\n---\nkind: B\n---\n" + web, want{kinds: "p", errs: []string{"x.yaml:1: document 1: ", "x.yaml:3: document 2: "}}},
		{"too large", web + strings.Repeat("#", MaxFileBytes), want{errs: []string{"x.yaml:1: document 1: file too large"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Bytes("x.yaml", []byte(tt.data))
			var kinds strings.Builder
			for _, o := range objs {
				switch {
				case o.Pipeline != nil && o.Policy == nil:
					kinds.WriteByte('p')
				case o.Policy != nil && o.Pipeline == nil:
					kinds.WriteByte('P')
				default:
					t.Errorf("object %v: want exactly one of Pipeline and Policy", o)
				}
				if o.File != "x.yaml" || o.Doc < 1 || o.Line < 1 {
					t.Errorf("object %v: file %q doc %d line %d", o, o.File, o.Doc, o.Line)
				}
			}
			if kinds.String() != tt.kinds {
				t.Errorf("objects %q, want %q", kinds.String(), tt.kinds)
			}
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.errs)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Errorf("error %v is not an *Error", err)
			}
			for _, w := range tt.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBytesDecodes(t *testing.T) {
	objs, err := Bytes("p.yaml", []byte("# header\n---\n"+web+"---\n"+pol))
	if err != nil {
		t.Fatal(err)
	}
	p, q := objs[0], objs[1]
	if p.Doc != 2 || p.Line != 3 || q.Doc != 3 || q.Line != 13 {
		t.Errorf("positions: pipeline doc %d line %d, policy doc %d line %d; want 2:3, 3:13", p.Doc, p.Line, q.Doc, q.Line)
	}
	if got := p.String(); got != "p.yaml:3: LogPipeline team-a/web" {
		t.Errorf("String() = %q", got)
	}
	pl := p.Pipeline
	if pl.Name != "web" || pl.Namespace != "team-a" || len(pl.Spec.Steps) != 2 || pl.Spec.Steps[0].JSON == nil ||
		pl.Spec.Steps[1].Keep == nil || pl.Spec.Steps[1].Keep.If != `record.fields.level != "debug"` {
		t.Errorf("pipeline decoded as %+v", pl)
	}
	lim := q.Policy.Spec.Limits
	if q.Policy.Name != v1alpha1.PolicyName || lim.LinesPerSecond != 100 || lim.BytesPerSecond.Value() != 1<<20 || lim.Action != v1alpha1.LimitDrop {
		t.Errorf("policy decoded as %+v", q.Policy)
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-web.yaml", web)
	write("b-bad.yaml", strings.Replace(web, "steps:", "stepz:", 1))
	write("c-policy.yml", pol)
	write("d-mixed.json", `{"apiVersion":"logrouter.io/v1alpha1","kind":"LogPipeline","metadata":{"name":"j"},"spec":{}}`)
	write("README.md", "not yaml: [")
	write(".hidden.yaml", "not yaml: [")
	write("e.yaml~", "not yaml: [")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A ConfigMap mount: keys are links to ..data/.
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("..data/f-linked.yaml", web)
	if err := os.Symlink("..data/f-linked.yaml", filepath.Join(dir, "f-linked.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing.yaml", filepath.Join(dir, "g-dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		s := filepath.Base(r.Path)
		if r.Err != nil {
			s += "!"
		}
		for _, o := range r.Objects {
			if o.Pipeline != nil {
				s += " " + o.Pipeline.Name
			} else {
				s += " " + o.Policy.Name
			}
		}
		got = append(got, s)
	}
	if want := "a-web.yaml web|b-bad.yaml!|c-policy.yml default|d-mixed.json j|f-linked.yaml web|g-dangling.yaml!"; strings.Join(got, "|") != want {
		t.Errorf("Dir:\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
	if e := res[1].Err.Error(); !strings.Contains(e, filepath.Join(dir, "b-bad.yaml")+":7: document 1: unknown field \"spec.stepz\"") {
		t.Errorf("bad file's error %q", e)
	}
	if _, err := Dir(filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing directory is not an error")
	}
}

func TestFileTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(web+strings.Repeat("# padding\n", MaxFileBytes/5)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := File(p)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
}
