package pipeline

// The API below is the contract between this package and its users (router, controller,
// pipeline/source, cmd/logrouter). Its exported names and signatures are fixed; additions are
// welcome. Bodies marked "skeleton" are replaced by the real implementation.

import (
	"hash"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Outcome is what Runner.Process did with one input line.
type Outcome struct {
	Verdict Verdict
	// Panicked: a step panicked; it was recovered and the line was emitted raw (Verdict Emit).
	Panicked bool
	// ParseFailed: a parse step (json, logfmt, regex, timestamp) failed on the line's record;
	// the record keeps its message and carries FieldsError.
	ParseFailed bool
	// EvalErrors counts CEL evaluations that failed on the line's record (a missing field, a
	// wrong type, the cost limit): each such step did nothing.
	EvalErrors int
}

// Pipeline is one compiled, immutable LogPipeline.
type Pipeline struct {
	Namespace  string
	Name       string
	Generation int64
	// Suffix is the output suffix: records go to the namespace topic plus "."+Suffix, or to
	// the namespace topic when empty.
	Suffix string
	// UID is the LogPipeline's metadata.uid (WithUID); empty for a --pipelines-dir pipeline.
	// Its counters are keyed by it: a pipeline created again under its name starts at zero.
	UID string

	pods       labels.Selector // nil: every pod
	containers []string        // empty: every container
	streams    uint8           // streamStdout|streamStderr; 0: both
	multiline  *multilineStep  // the first step when it is a multiline step
	steps      []step          // the other steps, in order
}

// Selects reports whether the pipeline takes lines of a file with this metadata (pod labels,
// container); the stream is decided per line by SelectsStream.
//
// A pod selector needs pod metadata: without it (m nil or m.Labels nil, the collector's
// path-only metadata) a pipeline with a non-empty pod selector selects nothing; a pod with no
// labels has an empty, non-nil Labels map. A container list needs m.Container.
func (p *Pipeline) Selects(m *Meta) bool { return selectsMeta(p.pods, p.containers, m) }

// SelectsStream reports whether the pipeline takes lines of this stream.
// Streams other than stdout and stderr (none in practice) are selected only by a pipeline
// without a stream list.
func (p *Pipeline) SelectsStream(stream string) bool {
	if p.streams == 0 {
		return true
	}
	switch stream {
	case "stdout":
		return p.streams&streamStdout != 0
	case "stderr":
		return p.streams&streamStderr != 0
	}
	return false
}

// Joins reports whether the pipeline has a multiline step: only then does Process read its
// now argument (a caller may skip reading the clock per line otherwise).
func (p *Pipeline) Joins() bool { return p.multiline != nil }

// NewRunner returns the pipeline's state for one file.
func (p *Pipeline) NewRunner() *Runner { return &Runner{p: p, fields: map[string]any{}} }

// Runner runs one pipeline over the lines of one file, in order. Not safe for concurrent use.
type Runner struct {
	p *Pipeline
	// act is `record` in CEL: the record being processed.
	act celRecord
	// fields is the map records get when a step sets their first field; reused per record
	// (emit must not keep a record).
	fields  map[string]any
	scratch map[string]any
	// msgBufs hold messages steps rewrote (redact); two, so a step can read one while
	// writing the other.
	msgBufs      [2][]byte
	msgCur       int
	scratchBytes []byte
	locs         [][]int
	mac          hash.Hash
	sum          []byte // the HMAC of sumOf (when sumOK)
	sumOf        []byte
	sumOK        bool
	// lastRedact is the last string value a redact step replaced by field name, and its
	// replacement.
	lastRedact struct {
		step *redactStep
		in   string
		out  any
	}
	ml heldRecord
	// intern keeps field values and names that repeat across the file's lines.
	intern interner
	// out is the Outcome of the line being processed; counts what happened since TakeCounts.
	out    Outcome
	counts Counts
}

// Process runs the steps on rec. Every record that leaves the pipeline (rec itself, changed,
// or an earlier held record) is passed to emit, in order, before Process returns; emit must
// not keep rec or its Message after it returns. now drives multiline timeouts.
//
// With a multiline step the Verdict is Hold while the line waits in a joined record, else
// the verdict of the record that holds it (when a bound emitted it at once). The fate of
// records emitted earlier (joined, then flushed by this line) is in Counts.
//
// Process may set rec.Fields to a map the Runner reuses for the next record: the caller
// passes each new line with Fields nil (or its own map).
func (r *Runner) Process(rec *Record, now time.Time, emit func(*Record)) Outcome {
	r.out = Outcome{}
	if r.p.multiline != nil {
		r.join(rec, now, emit)
	} else {
		r.out.Verdict = r.run(rec, emit)
	}
	return r.out
}

// Holding reports whether lines are held for joining and where the first held one starts:
// the collector's checkpoint must stay before it.
func (r *Runner) Holding() (start int64, ok bool) {
	if !r.ml.held {
		return 0, false
	}
	return r.ml.rec.Start, true
}

// FlushDue reports whether held lines have waited past the flush timeout at now: no line
// came for the step's flushTimeout since the last one joined.
func (r *Runner) FlushDue(now time.Time) bool {
	return r.ml.held && now.Sub(r.ml.last) >= r.p.multiline.flushAfter
}

// FlushTimeout is how long a held record may wait for its next line (the multiline step's
// flushTimeout), or 0 when the pipeline joins no lines: the collector needs a timer for its
// FlushDue checks only when it is not 0.
func (p *Pipeline) FlushTimeout() time.Duration {
	if p.multiline == nil {
		return 0
	}
	return p.multiline.flushAfter
}

// Flush emits what is held (timeout, rotation, shutdown, a pipeline change).
func (r *Runner) Flush(emit func(*Record)) {
	if !r.ml.held {
		return
	}
	r.out = Outcome{}
	r.counts.HeldFlushed++
	r.emitHeld(emit)
}

// Set is one namespace's compiled pipelines, immutable. A nil *Set has no pipelines.
type Set struct {
	Namespace string
	Pipelines []*Pipeline // sorted by name
}

// NewSet builds a namespace's set.
// NewSet builds a namespace's set. It sorts a copy of ps by name; ps is not changed.
func NewSet(ns string, ps []*Pipeline) *Set {
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b *Pipeline) int { return strings.Compare(a.Name, b.Name) })
	return &Set{Namespace: ns, Pipelines: sorted}
}

// For returns the pipeline that runs on a line of this file and stream, or nil (the line
// ships unchanged). When several select it, the first by name wins.
func (s *Set) For(m *Meta, stream string) *Pipeline {
	if s == nil {
		return nil
	}
	for _, p := range s.Pipelines {
		if p.Selects(m) && p.SelectsStream(stream) {
			return p
		}
	}
	return nil
}

// Policy is a compiled LogRouterPolicy. A nil *Policy is the defaults.
type Policy struct {
	Spec v1alpha1.LogRouterPolicySpec

	namespaces labels.Selector // nil: every namespace
	base       NamespacePolicy
	overrides  []compiledOverride
	suffixes   []string // sorted
}

// CompilePolicy validates and compiles the platform's policy. The error joins every problem,
// each prefixed with its place ("overrides[1].limits.action: ...").
func CompilePolicy(spec *v1alpha1.LogRouterPolicySpec) (*Policy, error) {
	return compilePolicy(spec)
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
//
// Unknown labels never stop collection: the namespace selector applies only to known
// labels, so a collector without namespace metadata collects (and applies the base limits
// and topics) rather than losing lines. Overrides apply in order; the first that selects the
// namespace wins. Its limits, when set, replace the base limits as a whole; its topics
// replace the base partitions and retention each when set.
func (p *Policy) For(ns string, labels map[string]string) NamespacePolicy {
	return p.forNamespace(labels)
}

// State is the desired state of every namespace's pipelines and the policy, as a source
// (a directory, the Kubernetes API) sees it after applying the last-known-good rule.
type State struct {
	Policy     *Policy         // nil: the defaults
	Namespaces map[string]*Set // namespaces without pipelines are absent
	// Known names every pipeline that exists, running or not (invalid, beyond the
	// namespace's limit), by namespace and name, with its UID ("" for a --pipelines-dir
	// pipeline). A pipeline that is not known was deleted: the collector forgets its counters
	// (pipeline/counters). Nil: the pipelines in Namespaces.
	Known map[string]map[string]string
}

// Exists reports whether pipeline name of namespace ns exists in the state as the object uid
// ("" for a --pipelines-dir pipeline): one deleted and created again has another UID.
func (s *State) Exists(ns, name, uid string) bool {
	if s == nil {
		return false
	}
	if s.Known != nil {
		u, ok := s.Known[ns][name]
		return ok && u == uid
	}
	for _, p := range s.Namespaces[ns].pipelines() {
		if p.Name == name && p.UID == uid {
			return true
		}
	}
	return false
}

func (s *Set) pipelines() []*Pipeline {
	if s == nil {
		return nil
	}
	return s.Pipelines
}

// Applier takes a new desired state as a whole (the collector). Apply must not block for long:
// sources coalesce bursts of changes into one Apply.
type Applier interface {
	Apply(*State)
}
