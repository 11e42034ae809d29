package pipeline

// The API below is the contract between this package and its users (router, controller,
// pipeline/source, cmd/logrouter). Its exported names and signatures are fixed; additions are
// welcome. Bodies marked "skeleton" are replaced by the real implementation.

import (
	"errors"
	"time"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

var errSkeleton = errors.New("pipeline: not implemented yet (skeleton)")

// Outcome is what Runner.Process did with one input line.
type Outcome struct {
	Verdict Verdict
	// Panicked: a step panicked; it was recovered and the line was emitted raw (Verdict Emit).
	Panicked bool
}

// Pipeline is one compiled, immutable LogPipeline.
type Pipeline struct {
	Namespace  string
	Name       string
	Generation int64
	// Suffix is the output suffix: records go to the namespace topic plus "."+Suffix, or to
	// the namespace topic when empty.
	Suffix string
}

// Compile validates spec for namespace ns under policy (nil: the defaults) and compiles it.
// The error joins every problem found, each prefixed with its place ("steps[2].regex: ...").
func Compile(ns, name string, generation int64, spec *v1alpha1.LogPipelineSpec, policy *Policy) (*Pipeline, error) {
	return nil, errSkeleton // skeleton
}

// Selects reports whether the pipeline takes lines of a file with this metadata (pod labels,
// container); the stream is decided per line by SelectsStream.
func (p *Pipeline) Selects(m *Meta) bool { return false } // skeleton

// SelectsStream reports whether the pipeline takes lines of this stream.
func (p *Pipeline) SelectsStream(stream string) bool { return false } // skeleton

// NewRunner returns the pipeline's state for one file.
func (p *Pipeline) NewRunner() *Runner { return &Runner{p: p} } // skeleton

// Runner runs one pipeline over the lines of one file, in order. Not safe for concurrent use.
type Runner struct {
	p *Pipeline
}

// Process runs the steps on rec. Every record that leaves the pipeline (rec itself, changed,
// or an earlier held record) is passed to emit, in order, before Process returns; emit must
// not keep rec or its Message after it returns. now drives multiline timeouts.
func (r *Runner) Process(rec *Record, now time.Time, emit func(*Record)) Outcome {
	emit(rec) // skeleton
	return Outcome{Verdict: Emit}
}

// Holding reports whether lines are held for joining and where the first held one starts:
// the collector's checkpoint must stay before it.
func (r *Runner) Holding() (start int64, ok bool) { return 0, false } // skeleton

// FlushDue reports whether held lines have waited past the flush timeout at now.
func (r *Runner) FlushDue(now time.Time) bool { return false } // skeleton

// Flush emits what is held (timeout, rotation, shutdown, a pipeline change).
func (r *Runner) Flush(emit func(*Record)) {} // skeleton

// Set is one namespace's compiled pipelines, immutable. A nil *Set has no pipelines.
type Set struct {
	Namespace string
	Pipelines []*Pipeline // sorted by name
}

// NewSet builds a namespace's set.
func NewSet(ns string, ps []*Pipeline) *Set { return &Set{Namespace: ns, Pipelines: ps} } // skeleton

// For returns the pipeline that runs on a line of this file and stream, or nil (the line
// ships unchanged). When several select it, the first by name wins.
func (s *Set) For(m *Meta, stream string) *Pipeline { return nil } // skeleton

// Policy is a compiled LogRouterPolicy. A nil *Policy is the defaults.
type Policy struct {
	Spec v1alpha1.LogRouterPolicySpec
}

// CompilePolicy validates and compiles the platform's policy.
func CompilePolicy(spec *v1alpha1.LogRouterPolicySpec) (*Policy, error) {
	return nil, errSkeleton // skeleton
}

// NamespacePolicy is what the policy says about one namespace.
type NamespacePolicy struct {
	// Collected: the namespace's logs are collected at all.
	Collected bool
	Limits    Limits
	// Partitions and Retention of its topics (zero: Kafka's defaults).
	Partitions int32
	Retention  time.Duration
}

// Limits of one namespace on one node; zero values mean unlimited.
type Limits struct {
	LinesPerSecond float64
	BurstLines     int
	BytesPerSecond float64
	BurstBytes     int
	// Drop: lines beyond the limit are dropped and counted; otherwise reading slows down.
	Drop bool
}

// For returns the policy for namespace ns with its labels (nil when unknown: then only
// selector-free rules apply; see docs/pipelines.md).
func (p *Policy) For(ns string, labels map[string]string) NamespacePolicy {
	return NamespacePolicy{Collected: true} // skeleton
}

// State is the desired state of every namespace's pipelines and the policy, as a source
// (a directory, the Kubernetes API) sees it after applying the last-known-good rule.
type State struct {
	Policy     *Policy         // nil: the defaults
	Namespaces map[string]*Set // namespaces without pipelines are absent
}

// Applier takes a new desired state as a whole (the collector). Apply must not block for long:
// sources coalesce bursts of changes into one Apply.
type Applier interface {
	Apply(*State)
}
