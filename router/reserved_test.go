package router

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// TestRefusedNamespaces: container logs of a namespace named like a node source (node-system,
// the journal's; node-<source>, a node file source's) or whose topic is a node source's (here
// the journal's topic set to logs.team-x) are refused: read and not produced, counted per
// namespace, logged once per file as an error. A tenant's and the node file source's lines flow
// all the while, and a refused file written after its refusal is read to its end too.
func TestRefusedNamespaces(t *testing.T) {
	nc := startWithNodeFile(t, nodefiles.Source{Name: "audit"}, func(c *Collector) {
		c.ReserveTopic("logs.team-x", "the node journal's") // as --journal-topic logs.team-x does
	})
	brokers, node, audit, r, logged := nc.brokers, nc.node, nc.audit, nc.r, nc.logged

	refused := map[string]string{ // namespace -> the reason logged
		"node-system": "namespace node-system is the node journal's",
		"node-audit":  "namespace node-audit is node file source audit's",
		"team-x":      "topic logs.team-x is the node journal's",
	}
	const n = 40
	write := func(ns string, from int) {
		t.Helper()
		ct, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := ct.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, from+i, 120)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for ns := range refused {
		write(ns, 0)
	}
	write("team-a", 0)
	for i := range n {
		audit.write(loadgen.SeqMessage("audit", i, 120))
	}
	for ns := range refused {
		waitFor(t, 30*time.Second, func() bool { return metricValue(r.c.metrics.refusedLines, ns) == n })
	}
	got := consume(t, brokers, 2*n, 30*time.Second)
	perKey := map[string]int{}
	for _, g := range got {
		key, _, _ := loadgen.ParseSeq(g.rec.Message)
		perKey[key]++
		if _, bad := refused[key]; bad {
			t.Errorf("refused namespace %s's line in topic %s: %s", key, g.topic, g.value)
		}
	}
	if dups := checkSequences(t, got, map[string]int{"team-a": n, "audit": n}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	for ns, why := range refused {
		if strings.Count(logged.String(), why) != 1 {
			t.Errorf("log has %d lines with %q, want 1 (the file's refusal):\n%s", strings.Count(logged.String(), why), why, logged.String())
		}
		if v := metricValue(r.c.metrics.excludedLines, ns); v != 0 {
			t.Errorf("excluded_lines_total{namespace=%q} = %v: refused lines are counted as refused only", ns, v)
		}
	}
	if v := metricValue(r.c.metrics.refusedLines, "team-a"); v != 0 {
		t.Errorf("refused_lines_total{namespace=team-a} = %v, want 0", v)
	}
}

// TestRefusedPipelineTopic: a tenant pipeline whose output topic is a node source's explicit
// topic (namespace platform's logs.platform plus suffix auditd is node file source auditd's
// logs.platform.auditd) writes nothing there: the lines it selects are read and not produced,
// counted in refused_lines_total of the namespace, and logged once per file as an error naming
// the pipeline and the topic. The node source's lines and the namespace's lines the pipeline
// does not select flow all the while.
func TestRefusedPipelineTopic(t *testing.T) {
	policy, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"auditd"}})
	if err != nil {
		t.Fatal(err)
	}
	set := compileSet(t, "platform", policy, map[string]v1alpha1.LogPipelineSpec{"fwd": {
		Selector: v1alpha1.Selector{Containers: []string{"app"}},
		Output:   v1alpha1.Output{Suffix: "auditd"},
	}})
	nc := startWithNodeFile(t, nodefiles.Source{Name: "auditd", Topic: "logs.platform.auditd"}, func(c *Collector) {
		c.ExpectPipelines()
		c.Apply(&pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{"platform": set}})
	})
	brokers, node, audit, r, logged := nc.brokers, nc.node, nc.audit, nc.r, nc.logged

	const n = 40
	for _, name := range []string{"app", "side"} {
		ct, err := node.AddContainer("platform", "web", name, loadgen.CRI)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := ct.Write(time.Now(), "stdout", loadgen.SeqMessage(name, i, 120)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range n {
		audit.write(loadgen.SeqMessage("audit", i, 120))
	}
	waitFor(t, 30*time.Second, func() bool { return metricValue(r.c.metrics.refusedLines, "platform") == n })
	got := consume(t, brokers, 2*n, 30*time.Second)
	for _, g := range got {
		key, _, _ := loadgen.ParseSeq(g.rec.Message)
		want := map[string]string{"audit": "logs.platform.auditd", "side": "logs.platform"}[key]
		if g.topic != want {
			t.Errorf("%s's line in topic %s, want %q: %s", key, g.topic, want, g.value)
		}
	}
	if dups := checkSequences(t, got, map[string]int{"side": n, "audit": n}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	const why = "topic logs.platform.auditd is node file source auditd's"
	if k := strings.Count(logged.String(), `"msg":"pipeline output refused`); k != 1 || !strings.Contains(logged.String(), why) || !strings.Contains(logged.String(), `"pipeline":"fwd"`) {
		t.Errorf("log has %d pipeline refusals, want 1 naming the pipeline and %q:\n%s", k, why, logged.String())
	}
	if v := metricValue(r.c.metrics.refusedLines, "node-file:auditd"); v != 0 {
		t.Errorf("refused_lines_total of the node source = %v, want 0", v)
	}
}

// nodeFileCollector is a collector over a node's containers and one node file source.
type nodeFileCollector struct {
	brokers string
	node    *loadgen.Node
	audit   *nodeLog // the source's file, audit.log
	r       *running
	logged  *syncbuf.Buffer
}

// startWithNodeFile starts a collector with node file source src (its paths set to audit.log
// in a directory of its own), its log kept, and hook run on it before Run.
func startWithNodeFile(t *testing.T, src nodefiles.Source, hook func(*Collector)) *nodeFileCollector {
	t.Helper()
	cl := newCluster(t)
	nc := &nodeFileCollector{brokers: cl.ListenAddrs()[0], logged: &syncbuf.Buffer{}}
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nc.node = node
	cfg := testConfig(t, node, nc.brokers)
	dir := t.TempDir()
	src.Paths = []string{filepath.Join(dir, "audit.log")}
	cfg.NodeFiles.Sources = []nodefiles.Source{src}
	nc.audit = newNodeLog(t, dir, "audit.log")
	reg := prometheus.NewRegistry()
	c, err := New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node}}, reg, slog.New(slog.NewJSONHandler(nc.logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hook(c)
	nc.r = runCollector(t, c, reg)
	return nc
}
