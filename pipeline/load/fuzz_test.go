package load

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// FuzzBytes: Bytes never panics; every object and every error has a place inside the file;
// a decoded object, encoded again, decodes to itself without error.
func FuzzBytes(f *testing.F) {
	for _, s := range []string{
		web, pol, web + "---\n" + pol, "---\n--- # c\n", "kind: A\n---\n" + web,
		strings.Replace(web, "steps:", "stepz:", 1), web + "    - regex: {patern: x}\n",
		"apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: a}\nspec:\n  steps:\n    - regex: &r {pattern: x}\n    - regex: {<<: *r, source: y}\n",
		"a: &a [*a]\n", "{\"apiVersion\":\"logrouter.io/v1alpha1\",\"kind\":\"LogRouterPolicy\",\"metadata\":{\"name\":\"default\"}}",
		"\xef\xbb\xbf" + pol, web + "--- x\n", "\t\n", "- 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Bytes("f.yaml", data)
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, o := range objs {
			if (o.Pipeline == nil) == (o.Policy == nil) {
				t.Fatalf("object %v: want exactly one of Pipeline and Policy", o)
			}
			if o.File != "f.yaml" || o.Doc < 1 || o.Line < 1 || o.Line > lines {
				t.Fatalf("object %v at doc %d line %d of %d lines", o, o.Doc, o.Line, lines)
			}
			var v any = o.Pipeline
			if o.Policy != nil {
				v = o.Policy
			}
			b, merr := yaml.Marshal(v)
			if merr != nil {
				t.Fatalf("marshal %v: %v", o, merr)
			}
			again, err2 := Bytes("again.yaml", b)
			if err2 != nil || len(again) != 1 {
				t.Fatalf("re-decoding %v: %d objects, %v\n%s", o, len(again), err2, b)
			}
			a := again[0]
			if !equality.Semantic.DeepEqual(a.Pipeline, o.Pipeline) || !equality.Semantic.DeepEqual(a.Policy, o.Policy) {
				t.Fatalf("round trip changed %v:\n%s", o, b)
			}
		}
		if err == nil {
			return
		}
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			var de *Error
			if !errors.As(e, &de) {
				t.Fatalf("error %v is not an *Error", e)
			}
			if de.File != "f.yaml" || de.Doc < 1 || de.Line < 1 || de.Line > lines {
				t.Fatalf("error %v at doc %d line %d of %d lines", e, de.Doc, de.Line, lines)
			}
		}
	})
}
