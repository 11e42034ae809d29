package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LogPipeline is one team's processing of its namespace's container logs: which lines it
// selects, the steps applied to them in order, and where the records go.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lp,categories=logrouter
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Gen",type=integer,JSONPath=`.metadata.generation`,description="The generation of the spec"
// +kubebuilder:printcolumn:name="Running-Gen",type=integer,JSONPath=`.status.accepted.generation`,description="The generation collectors run (the last valid one)"
// +kubebuilder:printcolumn:name="Emitted",type=integer,JSONPath=`.status.counters.emitted`,description="Records emitted, summed over collectors"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].reason`,description="Why the spec is (not) accepted"
// +kubebuilder:printcolumn:name="Dropped",type=integer,JSONPath=`.status.counters.dropped`,priority=1,description="Records dropped by a condition"
// +kubebuilder:printcolumn:name="Panicked",type=integer,JSONPath=`.status.counters.panicked`,priority=1,description="Records a step panicked on (shipped raw); there must be none"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].message`,priority=1,description="What is wrong, and where"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LogPipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LogPipelineSpec   `json:"spec"`
	Status LogPipelineStatus `json:"status,omitempty"`
}

// LogPipelineList is a list of LogPipelines.
//
// +kubebuilder:object:root=true
type LogPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LogPipeline `json:"items"`
}

// LogPipelineSpec is what a team writes.
type LogPipelineSpec struct {
	// Selector chooses the lines of the namespace this pipeline processes. Empty selects all.
	// +optional
	Selector Selector `json:"selector,omitempty"`
	// Steps are applied in order to every selected line. The LogRouterPolicy bounds their
	// number (maxStepsPerPipeline, default 20); 64 is the hard limit.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Steps []Step `json:"steps,omitempty"`
	// Output is where the records go: the namespace's own topic unless a suffix is given.
	// +optional
	Output Output `json:"output,omitempty"`
}

// Selector chooses lines by the pod's labels, the container's name and the stream.
//
// +kubebuilder:validation:XValidation:rule="!has(self.pods) || !has(self.pods.matchExpressions) || self.pods.matchExpressions.all(e, (e.operator in ['In', 'NotIn'] && has(e.values) && size(e.values) > 0) || (e.operator in ['Exists', 'DoesNotExist'] && (!has(e.values) || size(e.values) == 0)))",message="selector.pods.matchExpressions: operator must be In or NotIn with values, or Exists or DoesNotExist without"
type Selector struct {
	// Pods selects pods by label. Empty selects every pod of the namespace.
	// +optional
	Pods *metav1.LabelSelector `json:"pods,omitempty"`
	// Containers lists container names; empty selects every container.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Containers []string `json:"containers,omitempty"`
	// Streams lists "stdout" and/or "stderr"; empty selects both.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	Streams []Stream `json:"streams,omitempty"`
}

// Stream is a container output stream.
// +kubebuilder:validation:Enum=stdout;stderr
type Stream string

// Output names the topic records go to.
type Output struct {
	// Suffix sends records to logs.<namespace>.<suffix> instead of the namespace's topic. The
	// platform's LogRouterPolicy lists the suffixes it allows. It can never name another
	// namespace's topic: it is one lowercase label, without dots.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Suffix string `json:"suffix,omitempty"`
}

// Step is one processing step. Exactly one of its members is set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.json), has(self.logfmt), has(self.regex), has(self.multiline), has(self.timestamp), has(self.set), has(self.rename), has(self.remove), has(self.keep), has(self.drop), has(self.redact), has(self.sample)].exists_one(x, x)",message="a step sets exactly one of json, logfmt, regex, multiline, timestamp, set, rename, remove, keep, drop, redact, sample"
type Step struct {
	// JSON parses a JSON object into fields.
	// +optional
	JSON *JSONStep `json:"json,omitempty"`
	// Logfmt parses key=value pairs into fields.
	// +optional
	Logfmt *LogfmtStep `json:"logfmt,omitempty"`
	// Regex sets a field for each named group of an RE2 pattern.
	// +optional
	Regex *RegexStep `json:"regex,omitempty"`
	// Multiline joins consecutive lines of one container into one record.
	// +optional
	Multiline *MultilineStep `json:"multiline,omitempty"`
	// Timestamp takes the record's time from a field.
	// +optional
	Timestamp *TimestampStep `json:"timestamp,omitempty"`
	// Set sets a field to the value of a CEL expression.
	// +optional
	Set *SetStep `json:"set,omitempty"`
	// Rename renames a field.
	// +optional
	Rename *RenameStep `json:"rename,omitempty"`
	// Remove removes fields.
	// +optional
	Remove *RemoveStep `json:"remove,omitempty"`
	// Keep keeps only the records for which a CEL condition is true.
	// +optional
	Keep *ConditionStep `json:"keep,omitempty"`
	// Drop drops the records for which a CEL condition is true.
	// +optional
	Drop *ConditionStep `json:"drop,omitempty"`
	// Redact replaces secrets in the message and fields.
	// +optional
	Redact *RedactStep `json:"redact,omitempty"`
	// Sample keeps 1 line in N.
	// +optional
	Sample *SampleStep `json:"sample,omitempty"`
}

// JSONStep parses a JSON object into fields. A line that is not a JSON object keeps its
// message and is marked (fields_error), never dropped.
type JSONStep struct {
	// Source is the field to parse; empty parses the message.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Source string `json:"source,omitempty"`
	// Into is the field the parsed object goes under; empty merges it into the top of fields.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Into string `json:"into,omitempty"`
}

// LogfmtStep parses key=value pairs into fields.
type LogfmtStep struct {
	// Source is the field to parse; empty parses the message.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Source string `json:"source,omitempty"`
	// Into is the field the pairs go under; empty puts them at the top of fields.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Into string `json:"into,omitempty"`
}

// RegexStep matches an RE2 pattern and sets a field for each named group.
type RegexStep struct {
	// Pattern is an RE2 regular expression with named groups, (?P<name>...).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Pattern string `json:"pattern"`
	// Source is the field to match; empty matches the message.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Source string `json:"source,omitempty"`
}

// MultilineStep joins consecutive lines of one container into one record. A line matching
// Start begins a new record; with Continue instead, a line matching Continue is appended to
// the record before it. The record is emitted when the next one starts, at MaxLines or
// MaxBytes, after FlushTimeout without a new line, at rotation and at shutdown.
//
// +kubebuilder:validation:XValidation:rule="has(self.start) != has(self.continue)",message="multiline sets exactly one of start and continue"
type MultilineStep struct {
	// Start is an RE2 pattern matching the first line of a record (e.g. `^\d{4}-\d{2}-\d{2}`).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Start string `json:"start,omitempty"`
	// Continue is an RE2 pattern matching the lines that continue the record before them
	// (e.g. `^\s+at ` for Java stack traces).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Continue string `json:"continue,omitempty"`
	// MaxLines bounds one record (default 500).
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=10000
	MaxLines int32 `json:"maxLines,omitempty"`
	// MaxBytes bounds one record's message (default 64 KiB).
	// +optional
	// +kubebuilder:validation:Minimum=256
	// +kubebuilder:validation:Maximum=1048576
	MaxBytes int32 `json:"maxBytes,omitempty"`
	// FlushTimeout emits a held record when no line came for this long (default 2s, at most
	// 1m: a held line holds its file's checkpoint back).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1m')",message="flushTimeout must be more than 0s and at most 1m"
	FlushTimeout *metav1.Duration `json:"flushTimeout,omitempty"`
}

// TimestampStep takes the record's time from a field.
type TimestampStep struct {
	// Field holds the time.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Field string `json:"field"`
	// Layout is a Go time layout, or one of RFC3339, RFC3339Nano, Unix, UnixMilli, UnixMicro,
	// UnixNano, Common (nginx/apache %d/%b/%Y:%H:%M:%S %z). Default RFC3339Nano.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Layout string `json:"layout,omitempty"`
}

// SetStep sets a field to the value of a CEL expression over the record.
type SetStep struct {
	// Field is the field to set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Field string `json:"field"`
	// Value is a CEL expression, e.g. `record.labels["app"]` or `"prod"`.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value"`
}

// RenameStep renames a field.
//
// +kubebuilder:validation:XValidation:rule="self.from != self.to",message="rename from and to are the same field"
type RenameStep struct {
	// From is the field renamed.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	From string `json:"from"`
	// To is its new name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	To string `json:"to"`
}

// RemoveStep removes fields.
type RemoveStep struct {
	// Fields are the fields removed.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Fields []string `json:"fields"`
}

// ConditionStep keeps (keep) or drops (drop) the records for which a CEL condition is true.
type ConditionStep struct {
	// If is a CEL expression of type bool, e.g. `record.fields.level == "debug"`.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	If string `json:"if"`
}

// RedactStep replaces what matches Pattern in the message (and in string fields), or the
// values of the named Fields, with Replacement; with Hash the replacement carries a keyed
// hash of the removed value, so equal values can still be correlated.
//
// +kubebuilder:validation:XValidation:rule="has(self.pattern) || has(self.fields)",message="redact needs a pattern or fields"
type RedactStep struct {
	// Pattern is an RE2 pattern; what it matches is replaced.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Pattern string `json:"pattern,omitempty"`
	// Fields are fields whose whole value is replaced.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Fields []string `json:"fields,omitempty"`
	// Replacement defaults to "[REDACTED]".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Replacement string `json:"replacement,omitempty"`
	// Hash appends a keyed hash of the removed value to the replacement.
	// +optional
	Hash bool `json:"hash,omitempty"`
}

// SampleStep keeps 1 line in OneIn, decided by a hash of the line so that a replay decides the
// same way.
type SampleStep struct {
	// OneIn: keep 1 line in this many (1 keeps all).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	OneIn int32 `json:"oneIn"`
	// If limits sampling to the records for which this CEL condition is true; others pass.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	If string `json:"if,omitempty"`
}

// LogPipelineStatus is written by the controller.
type LogPipelineStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted (the spec is valid), Ready (collectors run the accepted version and
	// its topic exists).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Accepted is the last valid version of the spec: collectors run it while a newer spec is
	// invalid, including collectors that start after the bad update.
	// +optional
	Accepted *AcceptedSpec `json:"accepted,omitempty"`
	// Counters are recent totals over all collectors.
	// +optional
	Counters *Counters `json:"counters,omitempty"`
}

// AcceptedSpec is a validated spec and the generation it came from.
type AcceptedSpec struct {
	// Generation of the object the spec was taken from.
	Generation int64 `json:"generation"`
	// Spec as it was accepted.
	Spec LogPipelineSpec `json:"spec"`
}

// Counters of a pipeline, summed over collectors.
type Counters struct {
	// Selected lines (before any step).
	Selected int64 `json:"selected"`
	// Emitted records.
	Emitted int64 `json:"emitted"`
	// Dropped by a keep or drop condition.
	Dropped int64 `json:"dropped"`
	// SampledOut by a sample step.
	SampledOut int64 `json:"sampledOut"`
	// Throttled: selected lines that waited for the namespace's limit before they were read
	// (each once, counted when Kafka has it; never more than selected).
	Throttled int64 `json:"throttled"`
	// LimitDropped: lines dropped by the namespace's limit (action drop).
	LimitDropped int64 `json:"limitDropped"`
	// ParseFailures: records marked with fields_error.
	ParseFailures int64 `json:"parseFailures"`
	// Panicked: records a step panicked on, shipped raw (their message and time as read, no
	// fields, fields_error naming the step). There must be none: report it.
	// +optional
	Panicked int64 `json:"panicked,omitempty"`
	// UpdatedAt is when the controller last folded the collectors' counters in.
	// +optional
	UpdatedAt metav1.Time `json:"updatedAt,omitempty"`
}

// Condition types and reasons.
const (
	ConditionAccepted = "Accepted"
	ConditionReady    = "Ready"

	ReasonValid           = "Valid"
	ReasonInvalid         = "Invalid"
	ReasonRunningPrevious = "RunningPreviousVersion"
	ReasonTopicFailed     = "TopicFailed"
	ReasonOverLimit       = "PolicyLimit"
	ReasonReady           = "Ready"
)
