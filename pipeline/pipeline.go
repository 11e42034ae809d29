// Package pipeline compiles tenant LogPipelines (package pipeline/api/v1alpha1) and runs them
// on lines. The collector, the controller and `logrouter pipeline validate|test` all use it,
// so a pipeline is valid in one place exactly when it is valid in the others.
//
// The contract with the collector (package router):
//
//   - Compile validates a spec fully (every problem, joined, each naming its place, like
//     `steps[2].regex.pattern: missing closing ] for "[" at offset 6 and ) for "(?P<x>" at offset 0: "(?P<x>[a-z"`) and returns an immutable *Pipeline.
//   - A Set holds one namespace's compiled pipelines; the collector swaps a namespace's Set
//     atomically and loads it once per read chunk.
//   - Per file, the collector asks the Set which pipeline runs for a file (Set.For: pod labels
//     and container decide, then the stream per line) and keeps one Runner per pipeline and
//     file: the Runner holds that file's multiline state.
//   - Runner.Process turns one input line into zero or more output records through emit and
//     returns a Verdict; Holding says from which input offset lines are held, so the
//     collector keeps its checkpoint before them.
package pipeline

import (
	"time"
)

// Verdict says what became of one input line.
type Verdict uint8

const (
	// Emit: the line's record (possibly changed) was emitted.
	Emit Verdict = iota
	// Drop: a keep/drop condition removed the line.
	Drop
	// SampledOut: a sample step removed the line.
	SampledOut
	// Hold: the line is held for joining (multiline). A later line, the flush timeout, Flush
	// (rotation, shutdown) or a bound emits it.
	Hold
)

// Meta is the structured, read-only metadata of the file a line comes from: what selectors
// and CEL conditions see. One per file snapshot; never changed after it is built.
type Meta struct {
	Namespace   string
	Pod         string
	Container   string
	Labels      map[string]string
	Annotations map[string]string
	OwnerKind   string
	OwnerName   string
	Node        string
}

// Record is one line as steps see and change it.
type Record struct {
	Time   time.Time
	Stream string
	// Message may alias the collector's read buffer: steps that change it copy first.
	Message []byte
	// Fields is what parse and field steps produced; nil when none did.
	Fields map[string]any
	// FieldsError is set when a parse step failed ("steps[0].json: ..."): the message is kept.
	FieldsError string
	// Start is where the record's first input line starts in its file, End where its last
	// ends. A multiline record covers several lines.
	Start, End int64
	// Lines is the number of input lines the record holds (1 unless joined).
	Lines int
	// Meta is the metadata of the record's file (what CEL's record.labels etc. read); nil
	// when there is none. Never changed by steps.
	Meta *Meta
}
