// Package source produces the collector's desired pipeline state (the policy and every
// namespace's compiled Set) and pushes it to a pipeline.Applier. Two sources exist: Dir, a
// watched directory of YAML files (--pipelines-dir, for logrouter dev and collectors outside
// Kubernetes), and Kube, informers on the LogPipeline and LogRouterPolicy resources.
//
// Both apply the same last-known-good rule (docs/pipelines.md): a pipeline's spec is compiled
// with pipeline.Compile; when that fails its last accepted spec is compiled instead (Kube: the
// controller's status.accepted, Dir: the last valid version of that file and name, kept in
// memory); when neither compiles the pipeline does not run, its lines ship unchanged, and it is
// logged and counted.
package source

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Entry is one LogPipeline as a source sees it.
type Entry struct {
	Namespace, Name string
	// UID is the LogPipeline's metadata.uid ("" for a --pipelines-dir file).
	UID        string
	Generation int64
	Spec       *v1alpha1.LogPipelineSpec
	// Accepted is the last valid version (nil: none known).
	Accepted *v1alpha1.AcceptedSpec
	// Origin says where the entry came from, for logs ("file team.yaml", "kubernetes").
	Origin string
	// Version changes whenever Spec, Generation or Accepted change: an entry whose Version
	// and policy are unchanged is not compiled again.
	Version string
}

// Running says which version of an entry runs.
type Running uint8

const (
	// NotRunning: neither the spec nor the accepted version compiles (or the namespace has
	// too many pipelines); the pipeline's lines ship unchanged.
	NotRunning Running = iota
	// RunningCurrent: the spec compiled.
	RunningCurrent
	// RunningPrevious: the spec did not compile; the accepted (last known good) version runs.
	RunningPrevious
)

func (r Running) String() string {
	switch r {
	case RunningCurrent:
		return "current"
	case RunningPrevious:
		return "previous"
	}
	return "not_running"
}

// Result is what became of one entry.
type Result struct {
	Entry    Entry
	Running  Running
	Pipeline *pipeline.Pipeline // nil when NotRunning
	// Err is why the spec did not compile (nil for RunningCurrent).
	Err error
}

type metrics struct {
	invalid   *prometheus.CounterVec
	pipelines *prometheus.GaugeVec
	policy    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logrouter_collector_pipeline_invalid_versions_total",
			Help: "Versions of a pipeline that failed to compile (each distinct failure counts once); its last known good version runs if there is one.",
		}, []string{"namespace", "pipeline"}),
		pipelines: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "logrouter_collector_known_pipelines",
			Help: "Pipelines known to the collector by what runs: current (the spec), previous (last known good, the spec is invalid), not_running (nothing valid; lines ship unchanged).",
		}, []string{"state"}),
		policy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_collector_policy_invalid_versions_total",
			Help: "Versions of the LogRouterPolicy that failed to compile; the last valid one (or the defaults) stays in force.",
		}),
	}
	for _, c := range []prometheus.Collector{m.invalid, m.pipelines, m.policy} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register pipeline source metrics: %w", err)
		}
	}
	for _, r := range []Running{NotRunning, RunningCurrent, RunningPrevious} {
		m.pipelines.WithLabelValues(r.String())
	}
	return m, nil
}

type key struct{ ns, name string }

type cached struct {
	version string
	policy  *pipeline.Policy
	res     Result
}

// builder compiles entries into a State, reusing what did not change: a compiled pipeline
// whose entry and policy are unchanged keeps its pointer, and so does a namespace's Set whose
// pipelines are all unchanged, so that the collector swaps only what changed.
type builder struct {
	log   *slog.Logger
	m     *metrics
	cache map[key]cached
	sets  map[string]*pipeline.Set
}

func newBuilder(log *slog.Logger, m *metrics) *builder {
	return &builder{log: log, m: m, cache: map[key]cached{}, sets: map[string]*pipeline.Set{}}
}

// build compiles entries under policy. Results are in entries' order.
func (b *builder) build(policy *pipeline.Policy, entries []Entry) (*pipeline.State, []Result) {
	results := make([]Result, len(entries))
	seen := make(map[key]bool, len(entries))
	for i, e := range entries {
		k := key{e.Namespace, e.Name}
		seen[k] = true
		if c, ok := b.cache[k]; ok && c.version == e.Version && c.policy == policy {
			c.res.Entry = e
			results[i] = c.res
			continue
		}
		prev, hadPrev := b.cache[k]
		r := compileEntry(e, policy)
		results[i] = r
		b.cache[k] = cached{version: e.Version, policy: policy, res: r}
		if r.Err != nil && (!hadPrev || prev.res.Err == nil || prev.res.Err.Error() != r.Err.Error()) {
			// Each distinct failure is logged and counted once, however often the source
			// rebuilds (informer resyncs, polls): this cannot flood the log.
			b.m.invalid.WithLabelValues(e.Namespace, e.Name).Inc()
			b.logResult(r)
		}
		if r.Err == nil && hadPrev && prev.res.Err != nil {
			b.log.Info("pipeline valid again", "namespace", e.Namespace, "pipeline", e.Name, "generation", e.Generation, "origin", e.Origin)
		}
	}
	for k := range b.cache {
		if !seen[k] {
			delete(b.cache, k)
			b.m.invalid.DeleteLabelValues(k.ns, k.name)
		}
	}

	byNS := map[string][]int{}
	for i := range results {
		byNS[results[i].Entry.Namespace] = append(byNS[results[i].Entry.Namespace], i)
	}
	st := &pipeline.State{Policy: policy, Namespaces: map[string]*pipeline.Set{}, Known: map[string]map[string]string{}}
	for i := range results {
		e := &results[i].Entry
		if st.Known[e.Namespace] == nil {
			st.Known[e.Namespace] = map[string]string{}
		}
		st.Known[e.Namespace][e.Name] = e.UID
	}
	counts := map[Running]int{}
	for ns, idx := range byNS {
		slices.SortFunc(idx, func(a, c int) int { return strings.Compare(results[a].Entry.Name, results[c].Entry.Name) })
		max := policy.MaxPipelinesPerNamespace()
		valid := 0
		for _, i := range idx {
			if results[i].Pipeline != nil {
				valid++
			}
		}
		limitErr := pipeline.CheckNamespace(ns, valid, policy)
		var ps []*pipeline.Pipeline
		for _, i := range idx {
			r := &results[i]
			if r.Pipeline != nil && len(ps) >= max {
				// The first pipelines by name run, the same ones on every collector.
				r.Running, r.Pipeline = NotRunning, nil
				r.Err = errors.Join(r.Err, limitErr)
				b.logResult(*r)
			}
			counts[r.Running]++
			if r.Pipeline != nil {
				ps = append(ps, r.Pipeline)
			}
		}
		if len(ps) == 0 {
			continue
		}
		if old := b.sets[ns]; old != nil && slices.Equal(old.Pipelines, ps) {
			st.Namespaces[ns] = old
		} else {
			st.Namespaces[ns] = pipeline.NewSet(ns, ps)
		}
	}
	b.sets = st.Namespaces
	for _, r := range []Running{NotRunning, RunningCurrent, RunningPrevious} {
		b.m.pipelines.WithLabelValues(r.String()).Set(float64(counts[r]))
	}
	return st, results
}

func (b *builder) logResult(r Result) {
	e := r.Entry
	args := []any{"namespace", e.Namespace, "pipeline", e.Name, "generation", e.Generation, "origin", e.Origin, "error", r.Err.Error()}
	switch r.Running {
	case RunningPrevious:
		b.log.Error("pipeline invalid: its last valid version keeps running", append(args, "running_generation", r.Pipeline.Generation)...)
	default:
		b.log.Error("pipeline invalid and no valid version is known: it does not run, its lines ship unchanged", args...)
	}
}

// compileEntry applies the last-known-good rule to one entry.
func compileEntry(e Entry, policy *pipeline.Policy) Result {
	r := Result{Entry: e}
	p, err := pipeline.Compile(e.Namespace, e.Name, e.Generation, e.Spec, policy, pipeline.WithUID(e.UID))
	if err == nil {
		r.Running, r.Pipeline = RunningCurrent, p
		return r
	}
	r.Err = err
	if e.Accepted != nil {
		if p, aerr := pipeline.Compile(e.Namespace, e.Name, e.Accepted.Generation, &e.Accepted.Spec, policy, pipeline.WithUID(e.UID)); aerr == nil {
			r.Running, r.Pipeline = RunningPrevious, p
		}
	}
	return r
}

// entryVersion is an Entry's Version. The accepted version counts only when it is not the
// current one: it matters only when the current spec does not compile.
func entryVersion(uid string, gen int64, acc *v1alpha1.AcceptedSpec) string {
	v := uid + "/" + strconv.FormatInt(gen, 10)
	if acc != nil && acc.Generation != gen {
		v += "/" + strconv.FormatInt(acc.Generation, 10)
	}
	return v
}
