package monitoring

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/pipeline/source"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/journal"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// metric is one metric family as the code declares it.
type metric struct {
	Name      string
	Type      string // counter, gauge, histogram, summary
	Labels    []string
	Component string // the command that serves it: collector (with the enricher), archiver, gateway, controller
}

// recorder is a Registerer that keeps every collector registered through it, so that the
// metrics can be listed from their Descs: Gather omits vectors without observed label values.
type recorder struct {
	prometheus.Registerer
	mu sync.Mutex
	cs []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Desc exposes its fqName and variable labels only through String.
var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: "(?:[^"\\]|\\.)*", unit: "(?:[^"\\]|\\.)*", constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// typeOf tells a collector's metric type: vectors by their Go type, single metrics by what
// they write (a GaugeFunc and a CounterFunc have the same interface).
func typeOf(c prometheus.Collector) string {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	typ := ""
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			typ = "counter"
		case pb.Gauge != nil:
			typ = "gauge"
		case pb.Histogram != nil:
			typ = "histogram"
		case pb.Summary != nil:
			typ = "summary"
		}
	}
	return typ
}

// metrics lists what the recorded collectors declare.
func (r *recorder) metrics(component string) ([]metric, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []metric
	for _, c := range r.cs {
		typ := typeOf(c)
		if typ == "" {
			return nil, fmt.Errorf("collector %T: unknown metric type (extend typeOf)", c)
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				return nil, fmt.Errorf("cannot parse %s", d)
			}
			name, err := strconv.Unquote(m[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			if m[2] != "" {
				return nil, fmt.Errorf("%s: constant labels are not documented by this test (extend it)", name)
			}
			var labels []string
			for _, l := range strings.Split(m[3], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"))
				}
			}
			sort.Strings(labels)
			out = append(out, metric{Name: name, Type: typ, Labels: labels, Component: component})
		}
	}
	return out, nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// componentMetrics builds every component as its command does (one registry from
// cli.NewRegistry per command; the collector with the enricher) against an in-process Kafka, a
// fake Kubernetes API and temporary directories, and returns the metrics each registers.
// The Go and process collectors of cli.NewRegistry are not included.
func componentMetrics(t testing.TB) []metric {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	var all []metric
	add := func(component string, rec *recorder) {
		ms, err := rec.metrics(component)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}

	// collect: enricher + collector on one registry.
	{
		rec := &recorder{Registerer: cli.NewRegistry()}
		ecfg := enricher.DefaultConfig()
		ecfg.NodeName = "node-1"
		enr, err := enricher.New(ecfg, fake.NewClientset(), rec, discard())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cfg := router.DefaultConfig()
		cfg.LogDir, cfg.PodsDir, cfg.CheckpointDir = filepath.Join(dir, "containers"), filepath.Join(dir, "pods"), filepath.Join(dir, "checkpoints")
		for _, d := range []string{cfg.LogDir, cfg.PodsDir, cfg.CheckpointDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Node = "node-1"
		cfg.Sink.Kafka.Brokers = brokers
		// Node file sources register their parse errors.
		cfg.NodeFiles.Sources = []nodefiles.Source{{Name: "audit", Paths: []string{filepath.Join(dir, "audit*.log")}, Parser: nodefiles.ParserKubeAudit}}
		c, err := router.New(cfg, enr, rec, discard())
		if err != nil {
			t.Fatal(err)
		}
		// The --pipelines-dir source registers what the Kubernetes one does, and its file errors.
		scfg := source.DefaultDirConfig()
		scfg.Dir = t.TempDir()
		if _, err := source.NewDir(scfg, c, rec, discard()); err != nil {
			t.Fatal(err)
		}
		// The journal source (--journal) registers on the same registry.
		jcfg := journal.DefaultConfig()
		jcfg.Enabled = true
		if _, err := journal.New(jcfg, journal.Deps{Sink: c.Sink(), Budget: c.Budget(), CheckpointDir: cfg.CheckpointDir, Topic: "logs.node-system", Log: discard()}, rec); err != nil {
			t.Fatal(err)
		}
		add("collector", rec)
	}
	// archive
	{
		rec := &recorder{Registerer: cli.NewRegistry()}
		cfg := archiver.DefaultConfig()
		cfg.Kafka.Brokers = brokers
		cfg.Bucket = "file://" + t.TempDir()
		cfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
		if _, err := archiver.New(cfg, rec, discard()); err != nil {
			t.Fatal(err)
		}
		add("archiver", rec)
	}
	// gateway, with --kube-auth so that its review metrics are registered too.
	{
		rec := &recorder{Registerer: cli.NewRegistry()}
		cfg := api.DefaultConfig()
		cfg.Kafka.Brokers = brokers
		cfg.Listen = "127.0.0.1:0"
		cfg.Bucket = "file://" + t.TempDir()
		cfg.KubeAuth = true
		if _, err := api.New(cfg, rec, discard(), api.WithKubeClient(fake.NewClientset())); err != nil {
			t.Fatal(err)
		}
		add("gateway", rec)
	}
	// controller: its manager does not contact the API server before Run.
	{
		rec := &recorder{Registerer: cli.NewRegistry()}
		cfg := controller.DefaultConfig()
		cfg.Kafka.Brokers = brokers
		cfg.LeaderElectionNamespace = "default"
		if _, err := controller.New(cfg, &rest.Config{Host: "https://127.0.0.1:1"}, rec, discard()); err != nil {
			t.Fatal(err)
		}
		add("controller", rec)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}
