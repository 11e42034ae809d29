package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/pipeline"
)

const validRegex = `(?P<method>[A-Z]+) (?P<path>\S+)`

// pipelineYAML is a LogPipeline with one regex step.
func pipelineYAML(ns, name, pattern string) string {
	return fmt.Sprintf(`apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  namespace: %s
  name: %s
spec:
  steps:
  - regex:
      pattern: '%s'
`, ns, name, pattern)
}

type dirTest struct {
	t    *testing.T
	dir  string
	d    *Dir
	rec  *recorder
	tick chan time.Time
	logs *syncbuf.Buffer
	reg  *prometheus.Registry
}

func startDir(t *testing.T, dir string) *dirTest {
	t.Helper()
	dt := &dirTest{t: t, dir: dir, rec: newRecorder(), tick: make(chan time.Time), logs: &syncbuf.Buffer{}, reg: prometheus.NewRegistry()}
	cfg := DefaultDirConfig()
	cfg.Dir = dir
	d, err := NewDir(cfg, dt.rec, dt.reg, testLogger(dt.logs))
	if err != nil {
		t.Fatal(err)
	}
	d.tick = dt.tick
	dt.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return dt
}

// poll makes the source read the directory twice (a changed file is used when two reads
// agree), completely: the third tick is received only after the second read has finished.
func (dt *dirTest) poll() {
	dt.tick <- time.Now()
	dt.tick <- time.Now()
	dt.tick <- time.Now()
}

func (dt *dirTest) write(name, content string) {
	dt.t.Helper()
	if err := os.WriteFile(filepath.Join(dt.dir, name), []byte(content), 0o644); err != nil {
		dt.t.Fatal(err)
	}
}

func (dt *dirTest) gauge(state string) float64 {
	return testutil.ToFloat64(dt.d.m.pipelines.WithLabelValues(state))
}

// A file edited from valid to invalid keeps the valid version running (logged with the file
// and the message, counted); fixed again, the new version runs; a file that no longer decodes
// keeps its pipelines; a deleted file stops its pipelines.
func TestDirLastKnownGood(t *testing.T) {
	dir := t.TempDir()
	dt := startDir(t, dir)
	dt.rec.waitCount(t, 1)
	dt.write("web.yaml", pipelineYAML("web", "access", validRegex))
	dt.poll()
	st := dt.rec.waitCount(t, 2) // the first read (empty directory), then the file
	p := running(st, "web", "access")
	if p == nil || p.Generation != 1 {
		t.Fatalf("web/access not running at generation 1: %s", describe(st))
	}
	if n := dt.rec.count(); n != 2 {
		t.Fatalf("%d applies, want 2", n)
	}

	// valid -> invalid: generation 1 keeps running.
	dt.write("web.yaml", pipelineYAML("web", "access", `(?P<x>[a-z`))
	dt.poll()
	st = dt.rec.waitCount(t, 3)
	if p := running(st, "web", "access"); p == nil || p.Generation != 1 {
		t.Fatalf("after an invalid edit, want generation 1 running: %s", describe(st))
	}
	if v := testutil.ToFloat64(dt.d.m.invalid.WithLabelValues("web", "access")); v != 1 {
		t.Errorf("invalid_total = %v, want 1", v)
	}
	if dt.gauge("previous") != 1 || dt.gauge("current") != 0 {
		t.Errorf("pipelines gauge: previous %v current %v, want 1 and 0", dt.gauge("previous"), dt.gauge("current"))
	}
	logs := dt.logs.String()
	for _, want := range []string{"web.yaml:1", "steps[0].regex", "missing closing", "last valid version keeps running"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// invalid -> valid: the new version runs.
	dt.write("web.yaml", pipelineYAML("web", "access", `(?P<verb>[A-Z]+)`))
	dt.poll()
	st = dt.rec.waitCount(t, 4)
	if p := running(st, "web", "access"); p == nil || p.Generation != 3 {
		t.Fatalf("after the fix, want generation 3 running: %s", describe(st))
	}
	if dt.gauge("current") != 1 || dt.gauge("previous") != 0 {
		t.Errorf("pipelines gauge: current %v previous %v, want 1 and 0", dt.gauge("current"), dt.gauge("previous"))
	}

	// A file that does not decode keeps its pipelines; logged with file and line, counted.
	dt.write("web.yaml", pipelineYAML("web", "access", `(?P<verb>[A-Z]+)`)+"  bogus: [\n")
	dt.poll()
	st = dt.rec.waitCount(t, 5)
	if p := running(st, "web", "access"); p == nil || p.Generation != 3 {
		t.Fatalf("after a broken file, want generation 3 running: %s", describe(st))
	}
	if v := testutil.ToFloat64(dt.d.fErr); v != 1 {
		t.Errorf("file_errors_total = %v, want 1", v)
	}
	if !strings.Contains(dt.logs.String(), `"file":"web.yaml"`) {
		t.Errorf("the file error does not name the file:\n%s", dt.logs.String())
	}

	// An unknown field is refused the same way.
	dt.write("web.yaml", strings.Replace(pipelineYAML("web", "access", validRegex), "  steps:", "  stepz: []\n  steps:", 1))
	dt.poll()
	st = dt.rec.waitCount(t, 6)
	if p := running(st, "web", "access"); p == nil || p.Generation != 3 {
		t.Fatalf("after an unknown field, want generation 3 running: %s", describe(st))
	}
	if v := testutil.ToFloat64(dt.d.fErr); v != 2 {
		t.Errorf("file_errors_total = %v, want 2", v)
	}

	// Deleted: nothing runs.
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	dt.poll()
	st = dt.rec.waitCount(t, 7)
	if len(st.Namespaces) != 0 {
		t.Fatalf("after delete, want no pipelines: %s", describe(st))
	}
	// Nothing changed: nothing applied.
	dt.poll()
	if n := dt.rec.count(); n != 7 {
		t.Errorf("%d applies after an unchanged read, want 7", n)
	}
}

// The last good version lives in memory only: a source started on an invalid file runs
// nothing for it (and says so), and a pipeline removed from a file stops while its sibling
// in the same file runs on.
func TestDirStartInvalidAndRemovedDocument(t *testing.T) {
	dir := t.TempDir()
	both := pipelineYAML("web", "a", validRegex) + "---\n" + pipelineYAML("web", "b", validRegex)
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(both), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(pipelineYAML("api", "x", `(?P<x>[a-z`)), 0o644); err != nil {
		t.Fatal(err)
	}
	dt := startDir(t, dir)
	st := dt.rec.waitCount(t, 1)
	if running(st, "web", "a") == nil || running(st, "web", "b") == nil {
		t.Fatalf("want web/a and web/b: %s", describe(st))
	}
	if st.Namespaces["api"] != nil {
		t.Fatalf("api/x is invalid and has no previous version, yet runs: %s", describe(st))
	}
	if dt.gauge("not_running") != 1 {
		t.Errorf("not_running = %v, want 1", dt.gauge("not_running"))
	}
	if !strings.Contains(dt.logs.String(), "no valid version is known") {
		t.Errorf("log does not say api/x does not run:\n%s", dt.logs.String())
	}
	dt.write("web.yaml", pipelineYAML("web", "b", validRegex))
	dt.poll()
	st = dt.rec.waitCount(t, 2)
	if running(st, "web", "a") != nil || running(st, "web", "b") == nil {
		t.Fatalf("want only web/b: %s", describe(st))
	}
}

// A burst of changes between two reads is one apply, however many files it touches; an
// unchanged pipeline keeps its compiled pointer and an unchanged namespace its Set.
func TestDirBurstCoalesces(t *testing.T) {
	dir := t.TempDir()
	dt := startDir(t, dir)
	dt.rec.waitCount(t, 1)
	const files = 30
	for i := range files {
		dt.write(fmt.Sprintf("p%02d.yaml", i), pipelineYAML(fmt.Sprintf("ns%d", i%3), fmt.Sprintf("p%02d", i), validRegex))
	}
	dt.poll()
	st := dt.rec.waitCount(t, 2)
	if n := dt.rec.count(); n != 2 {
		t.Fatalf("%d applies for one burst, want 2 (the first read and the burst)", n)
	}
	total := 0
	for _, set := range st.Namespaces {
		total += len(set.Pipelines)
	}
	if len(st.Namespaces) != 3 || total != files {
		t.Fatalf("want %d pipelines in 3 namespaces: %s", files, describe(st))
	}
	// One file changes: ns0's set is new, ns1's and ns2's are the same objects.
	dt.write("p00.yaml", pipelineYAML("ns0", "p00", `(?P<verb>[A-Z]+)`))
	dt.poll()
	st2 := dt.rec.waitCount(t, 3)
	if st2.Namespaces["ns1"] != st.Namespaces["ns1"] || st2.Namespaces["ns2"] != st.Namespaces["ns2"] {
		t.Error("unchanged namespaces got new Sets")
	}
	if st2.Namespaces["ns0"] == st.Namespaces["ns0"] {
		t.Error("the changed namespace kept its Set")
	}
	if running(st2, "ns0", "p03") != running(st, "ns0", "p03") {
		t.Error("an unchanged pipeline was compiled again")
	}
	if n := dt.rec.count(); n != 3 {
		t.Errorf("%d applies, want 3", n)
	}
}

// A namespace with more pipelines than the policy allows runs the first ones by name.
func TestDirPolicyLimitsPipelines(t *testing.T) {
	dir := t.TempDir()
	policy := `apiVersion: logrouter.io/v1alpha1
kind: LogRouterPolicy
metadata:
  name: default
spec:
  maxPipelinesPerNamespace: 2
`
	files := map[string]string{"policy.yaml": policy}
	for _, n := range []string{"c", "a", "b"} {
		files[n+".yaml"] = pipelineYAML("web", n, validRegex)
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dt := startDir(t, dir)
	st := dt.rec.waitCount(t, 1)
	if st.Policy == nil {
		t.Fatal("policy not applied")
	}
	if running(st, "web", "a") == nil || running(st, "web", "b") == nil || running(st, "web", "c") != nil {
		t.Fatalf("want web/a and web/b only: %s", describe(st))
	}
	// web/c does not run and exists: its counters are kept (pipeline/counters).
	for _, n := range []string{"a", "b", "c"} {
		if !st.Exists("web", n, "") {
			t.Errorf("web/%s not known to exist", n)
		}
	}
	if st.Exists("web", "d", "") || st.Exists("other", "a", "") || st.Exists("web", "a", "some-uid") {
		t.Error("pipelines that do not exist are known")
	}
	if !strings.Contains(dt.logs.String(), "allows 2 (maxPipelinesPerNamespace)") {
		t.Errorf("log does not explain why web/c does not run:\n%s", dt.logs.String())
	}
}

var _ pipeline.Applier = (*recorder)(nil)

// A file read in the middle of a write (here: truncated, then rewritten) is never applied: a
// changed file is used when two reads in a row agree.
func TestDirHalfWrittenFileIsNotApplied(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(path, []byte(pipelineYAML("web", "access", validRegex)), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	cfg := DefaultDirConfig()
	cfg.Dir = dir
	d, err := NewDir(cfg, rec, prometheus.NewRegistry(), testLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	d.scan(true)
	if p := running(rec.last(), "web", "access"); p == nil || p.Generation != 1 {
		t.Fatalf("want web/access@1: %s", describe(rec.last()))
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil { // the truncate of an in-place write
		t.Fatal(err)
	}
	d.scan(false)
	if err := os.WriteFile(path, []byte(pipelineYAML("web", "access", `(?P<verb>[A-Z]+)`)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.scan(false)
	if n := rec.count(); n != 1 {
		t.Fatalf("%d applies while the file changed at every read, want 1", n)
	}
	d.scan(false)
	if n := rec.count(); n != 2 {
		t.Fatalf("%d applies after two agreeing reads, want 2", n)
	}
	if p := running(rec.last(), "web", "access"); p == nil || p.Generation != 2 {
		t.Fatalf("want web/access@2 (the empty read never counted): %s", describe(rec.last()))
	}
}
