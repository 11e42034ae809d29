package crds

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/pipeline/load"
)

// docBlock is a fenced code block of a document.
type docBlock struct {
	doc, lang, text string
	line            int
}

// docFiles are the documents whose logrouter.io examples must decode strictly and be accepted
// by the API server: their ```yaml blocks (other languages, such as an outline of the resource,
// are not objects). A block whose first line is "# rejected" shows an error on purpose.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(docs, "../../README.md")
}

func codeBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docBlock
	var cur *docBlock
	for i, l := range strings.Split(string(b), "\n") {
		fence, ok := strings.CutPrefix(strings.TrimSpace(l), "```")
		if ok {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			} else {
				cur = &docBlock{doc: path, lang: fence, line: i + 2}
			}
			continue
		}
		if cur != nil {
			cur.text += l + "\n"
		}
	}
	return out
}

// documentedObjects returns every LogPipeline and LogRouterPolicy the docs show, decoded by
// pipeline/load (so a documented example that load refuses fails here).
func documentedObjects(t *testing.T) []load.Object {
	t.Helper()
	var objs []load.Object
	for _, d := range docFiles(t) {
		for _, b := range codeBlocks(t, d) {
			if b.lang != "yaml" || !strings.Contains(b.text, "apiVersion: logrouter.io/") || strings.HasPrefix(b.text, "# rejected") {
				continue
			}
			name := filepath.Base(d) + ":" + strconv.Itoa(b.line)
			o, err := load.Bytes(name, []byte(b.text))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			objs = append(objs, o...)
		}
	}
	t.Logf("%d documented objects", len(objs))
	if len(objs) < 2 {
		t.Fatalf("only %d documented objects: docs/helm.md shows a policy and a pipeline", len(objs))
	}
	return objs
}

var getHeader = regexp.MustCompile(`(?m)^\$ kubectl get (logpipelines|logrouterpolicies)\b.*\n(NAME .*)$`)

// documentedHeaders returns the header lines of the documented `kubectl get` outputs, by
// resource.
func documentedHeaders(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, d := range docFiles(t) {
		for _, b := range codeBlocks(t, d) {
			for _, m := range getHeader.FindAllStringSubmatch(b.text, -1) {
				out[m[1]] = append(out[m[1]], strings.Join(strings.Fields(m[2]), ","))
			}
		}
	}
	return out
}
