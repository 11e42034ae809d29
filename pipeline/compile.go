package pipeline

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// ErrInvalid is wrapped by every error of Compile and CompilePolicy: the spec is invalid.
var ErrInvalid = errors.New("invalid")

// ValidationError is what Compile and CompilePolicy return: every problem found, each
// prefixed with its place in the spec as the CRD path ("steps[2].regex: ..."). Error joins
// them with newlines.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "\n") }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects validation messages.
type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// Bounds that the CRD schema also enforces; Compile checks them again because files in
// --pipelines-dir never pass an API server.
const (
	maxSteps          = 64
	maxContainers     = 64
	maxPatternLen     = 4096
	maxFieldNameLen   = 256
	defaultMaxLines   = 500
	defaultMaxBytes   = 64 << 10
	defaultFlushAfter = 2 * time.Second
	minMaxLines       = 2
	maxMaxLines       = 10000
	minMaxBytes       = 256
	maxMaxBytes       = 1 << 20
	maxFlushTimeout   = time.Minute // the CRD's bound: a file in --pipelines-dir is held to the same
)

// stepKinds names a step's members in the order of v1alpha1.Step.
var stepKinds = []string{"json", "logfmt", "regex", "multiline", "timestamp", "set", "rename", "remove", "keep", "drop", "redact", "sample"}

func stepMembers(s *v1alpha1.Step) []string {
	set := []bool{s.JSON != nil, s.Logfmt != nil, s.Regex != nil, s.Multiline != nil, s.Timestamp != nil, s.Set != nil,
		s.Rename != nil, s.Remove != nil, s.Keep != nil, s.Drop != nil, s.Redact != nil, s.Sample != nil}
	var out []string
	for i, ok := range set {
		if ok {
			out = append(out, stepKinds[i])
		}
	}
	return out
}

// CompileOption changes what Compile builds. Validation passes none; WithUID names the object,
// the other options exist for tests of what runs pipelines.
type CompileOption func(*compileOptions)

type compileOptions struct {
	extra []func(*Record)
	uid   string
}

// WithUID sets the compiled Pipeline's UID: the LogPipeline object's metadata.uid (the
// collector's Kubernetes source passes it; a --pipelines-dir pipeline has none).
func WithUID(uid string) CompileOption {
	return func(o *compileOptions) { o.uid = uid }
}

// WithExtraStep appends a step that calls fn on every record after the spec's steps (named
// "steps[N].step" in messages). It is fault injection for tests of what runs a pipeline, such as
// a step that panics on some records (none of the real steps may: they are fuzzed), to show
// what the collector does with such a line. fn may change the record as a step would.
func WithExtraStep(fn func(rec *Record)) CompileOption {
	return func(o *compileOptions) { o.extra = append(o.extra, fn) }
}

// extraStep is a step WithExtraStep added.
type extraStep struct{ fn func(*Record) }

func (s extraStep) apply(_ *Runner, rec *Record) Verdict {
	s.fn(rec)
	return Emit
}

// Compile validates spec for namespace ns under policy (nil: the defaults) and compiles it.
// The error joins every problem found, each prefixed with its place ("steps[2].regex: ...").
func Compile(ns, name string, generation int64, spec *v1alpha1.LogPipelineSpec, policy *Policy, opts ...CompileOption) (*Pipeline, error) {
	var ps problems
	if spec == nil {
		ps.add("spec", "missing")
		return nil, ps.err()
	}
	p := &Pipeline{Namespace: ns, Name: name, Generation: generation, Suffix: spec.Output.Suffix}
	if name == "" {
		ps.add("metadata.name", "empty")
	}
	compileSelector(p, &spec.Selector, &ps)
	compileOutput(spec.Output, policy, &ps)
	if max := policy.MaxStepsPerPipeline(); len(spec.Steps) > max {
		ps.add("steps", "%d steps; the LogRouterPolicy allows at most %d (maxStepsPerPipeline)", len(spec.Steps), max)
	} else if len(spec.Steps) > maxSteps {
		ps.add("steps", "%d steps, at most %d allowed", len(spec.Steps), maxSteps)
	}
	env, err := sharedCELEnv()
	if err != nil {
		// The environment is fixed: this is a bug, not a bad spec.
		return nil, fmt.Errorf("pipeline: CEL environment: %w", err)
	}
	c := compiler{env: env, ns: ns, ps: &ps}
	for i := range spec.Steps {
		s := &spec.Steps[i]
		path := fmt.Sprintf("steps[%d]", i)
		members := stepMembers(s)
		if len(members) != 1 {
			got := "none"
			if len(members) > 1 {
				got = strings.Join(members, ", ")
			}
			ps.add(path, "a step sets exactly one of %s (this one sets %s)", strings.Join(stepKinds, ", "), got)
			continue
		}
		path += "." + members[0]
		st := c.step(i, path, s)
		if st == nil {
			continue
		}
		if ml, ok := st.(*multilineStep); ok {
			if i != 0 {
				ps.add(path, "must be the first step: lines are joined before they are processed")
				continue
			}
			p.multiline = ml
			continue
		}
		p.steps = append(p.steps, st)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	var o compileOptions
	for _, opt := range opts {
		opt(&o)
	}
	for _, fn := range o.extra {
		p.steps = append(p.steps, extraStep{fn})
	}
	p.UID = o.uid
	return p, nil
}

func compileSelector(p *Pipeline, s *v1alpha1.Selector, ps *problems) {
	if s.Pods != nil {
		sel, err := metav1.LabelSelectorAsSelector(s.Pods)
		if err != nil {
			ps.add("selector.pods", "%s", strings.TrimPrefix(err.Error(), "selector.pods: "))
		} else if !sel.Empty() {
			p.pods = sel
		}
	}
	if len(s.Containers) > maxContainers {
		ps.add("selector.containers", "%d containers, at most %d allowed", len(s.Containers), maxContainers)
	}
	for i, c := range s.Containers {
		if c == "" {
			ps.add(fmt.Sprintf("selector.containers[%d]", i), "empty container name")
		}
	}
	p.containers = s.Containers
	if len(s.Streams) > 2 {
		ps.add("selector.streams", "%d streams, at most 2 allowed", len(s.Streams))
	}
	for i, st := range s.Streams {
		switch st {
		case "stdout":
			p.streams |= streamStdout
		case "stderr":
			p.streams |= streamStderr
		default:
			ps.add(fmt.Sprintf("selector.streams[%d]", i), "%q is not a stream (want stdout or stderr)", string(st))
		}
	}
}

func compileOutput(o v1alpha1.Output, policy *Policy, ps *problems) {
	if o.Suffix == "" {
		return
	}
	if err := topic.ValidSuffix(o.Suffix); err != nil {
		ps.add("output.suffix", "%s", strings.TrimPrefix(err.Error(), topic.ErrInvalidSuffix.Error()+" "))
		return
	}
	if !policy.AllowsSuffix(o.Suffix) {
		allowed := "none"
		if a := policy.AllowedSuffixes(); len(a) > 0 {
			allowed = strings.Join(a, ", ")
		}
		ps.add("output.suffix", "%q is not allowed by the LogRouterPolicy (allowed: %s)", o.Suffix, allowed)
	}
}

type compiler struct {
	env *cel.Env
	ns  string
	ps  *problems
}

func (c *compiler) field(path, name string) bool {
	switch {
	case name == "":
		c.ps.add(path, "empty field name")
	case len(name) > maxFieldNameLen:
		c.ps.add(path, "field name is %d bytes, at most %d allowed", len(name), maxFieldNameLen)
	case !utf8.ValidString(name):
		c.ps.add(path, "field name is not valid UTF-8")
	default:
		return true
	}
	return false
}

// optField checks an optional field name (source, into).
func (c *compiler) optField(path, name string) bool {
	if name == "" {
		return true
	}
	return c.field(path, name)
}

// regex compiles an RE2 pattern; the message is regexMessage's.
func (c *compiler) regex(path, pattern string) *regexp.Regexp {
	if pattern == "" {
		c.ps.add(path, "empty pattern")
		return nil
	}
	if len(pattern) > maxPatternLen {
		c.ps.add(path, "pattern is %d bytes, at most %d allowed", len(pattern), maxPatternLen)
		return nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			c.ps.add(path, "%s", regexMessage(pattern, se))
		} else {
			c.ps.add(path, "%v", err)
		}
		return nil
	}
	return re
}

func (c *compiler) cel(path, src string, wantBool bool) *celExpr {
	e, err := compileCEL(c.env, src, wantBool)
	if err != nil {
		c.ps.add(path, "%v", err)
		return nil
	}
	return e
}

// step compiles one step; nil when it is invalid (the problems are recorded).
func (c *compiler) step(i int, path string, s *v1alpha1.Step) step {
	n := len(*c.ps)
	var st step
	switch {
	case s.JSON != nil:
		c.optField(path+".source", s.JSON.Source)
		c.optField(path+".into", s.JSON.Into)
		st = &jsonStep{path: path, source: s.JSON.Source, into: s.JSON.Into}
	case s.Logfmt != nil:
		c.optField(path+".source", s.Logfmt.Source)
		c.optField(path+".into", s.Logfmt.Into)
		st = &logfmtStep{path: path, source: s.Logfmt.Source, into: s.Logfmt.Into}
	case s.Regex != nil:
		c.optField(path+".source", s.Regex.Source)
		re := c.regex(path+".pattern", s.Regex.Pattern)
		if re != nil {
			rs := &regexStep{path: path, source: s.Regex.Source, re: re}
			for gi, name := range re.SubexpNames() {
				if name != "" {
					rs.groups = append(rs.groups, regexGroup{index: gi, name: name})
				}
			}
			if len(rs.groups) == 0 {
				c.ps.add(path+".pattern", "no named group: name what to extract with (?P<name>...)")
			}
			st = rs
		}
	case s.Multiline != nil:
		st = c.multiline(path, s.Multiline)
	case s.Timestamp != nil:
		c.field(path+".field", s.Timestamp.Field)
		ts := &timestampStep{path: path, field: s.Timestamp.Field}
		if err := ts.setLayout(s.Timestamp.Layout); err != nil {
			c.ps.add(path+".layout", "%v", err)
		}
		st = ts
	case s.Set != nil:
		c.field(path+".field", s.Set.Field)
		e := c.cel(path+".value", s.Set.Value, false)
		st = &setStep{field: s.Set.Field, value: e}
	case s.Rename != nil:
		c.field(path+".from", s.Rename.From)
		c.field(path+".to", s.Rename.To)
		st = &renameStep{from: s.Rename.From, to: s.Rename.To}
	case s.Remove != nil:
		if len(s.Remove.Fields) == 0 {
			c.ps.add(path+".fields", "empty: name at least one field")
		}
		for j, f := range s.Remove.Fields {
			c.field(fmt.Sprintf("%s.fields[%d]", path, j), f)
		}
		st = &removeStep{fields: s.Remove.Fields}
	case s.Keep != nil:
		st = &conditionStep{keep: true, cond: c.cel(path+".if", s.Keep.If, true)}
	case s.Drop != nil:
		st = &conditionStep{keep: false, cond: c.cel(path+".if", s.Drop.If, true)}
	case s.Redact != nil:
		st = c.redact(path, s.Redact)
	case s.Sample != nil:
		ss := &sampleStep{oneIn: uint64(max(s.Sample.OneIn, 1))}
		if s.Sample.OneIn < 1 {
			c.ps.add(path+".oneIn", "%d: must be at least 1", s.Sample.OneIn)
		}
		if s.Sample.If != "" {
			ss.cond = c.cel(path+".if", s.Sample.If, true)
		}
		st = ss
	}
	if len(*c.ps) > n {
		return nil
	}
	return st
}

func (c *compiler) multiline(path string, m *v1alpha1.MultilineStep) step {
	ml := &multilineStep{maxLines: defaultMaxLines, maxBytes: defaultMaxBytes, flushAfter: defaultFlushAfter}
	switch {
	case (m.Start == "") == (m.Continue == ""):
		c.ps.add(path, "multiline sets exactly one of start and continue")
	case m.Start != "":
		ml.re = c.regex(path+".start", m.Start)
		ml.isStart = true
	default:
		ml.re = c.regex(path+".continue", m.Continue)
	}
	if m.MaxLines != 0 {
		if m.MaxLines < minMaxLines || m.MaxLines > maxMaxLines {
			c.ps.add(path+".maxLines", "%d: must be between %d and %d", m.MaxLines, minMaxLines, maxMaxLines)
		}
		ml.maxLines = int(m.MaxLines)
	}
	if m.MaxBytes != 0 {
		if m.MaxBytes < minMaxBytes || m.MaxBytes > maxMaxBytes {
			c.ps.add(path+".maxBytes", "%d: must be between %d and %d", m.MaxBytes, minMaxBytes, maxMaxBytes)
		}
		ml.maxBytes = int(m.MaxBytes)
	}
	if m.FlushTimeout != nil {
		d := m.FlushTimeout.Duration
		if d <= 0 || d > maxFlushTimeout {
			c.ps.add(path+".flushTimeout", "%s: must be more than 0 and at most %s", d, maxFlushTimeout)
		}
		ml.flushAfter = d
	}
	return ml
}

func (c *compiler) redact(path string, r *v1alpha1.RedactStep) step {
	rs := &redactStep{fields: r.Fields, hash: r.Hash, key: redactKey(c.ns)}
	if r.Pattern == "" && len(r.Fields) == 0 {
		c.ps.add(path, "redact needs a pattern or fields")
	}
	if r.Pattern != "" {
		rs.re = c.regex(path+".pattern", r.Pattern)
		if rs.re != nil {
			rs.match = newMatcher(rs.re, r.Pattern)
		}
	}
	for j, f := range r.Fields {
		c.field(fmt.Sprintf("%s.fields[%d]", path, j), f)
	}
	rs.replacement = r.Replacement
	if rs.replacement == "" {
		rs.replacement = defaultReplacement
	}
	if len(rs.replacement) > maxFieldNameLen {
		c.ps.add(path+".replacement", "%d bytes, at most %d allowed", len(rs.replacement), maxFieldNameLen)
	}
	if !utf8.ValidString(rs.replacement) {
		c.ps.add(path+".replacement", "not valid UTF-8")
	}
	return rs
}

// Selection by stream.
const (
	streamStdout uint8 = 1 << iota
	streamStderr
)

// selectsMeta is Selects' rule, kept apart from Pipeline for the tests.
func selectsMeta(pods labels.Selector, containers []string, m *Meta) bool {
	if pods != nil {
		// Without pod metadata (nil labels: path-only) a pod selector selects nothing.
		if m == nil || m.Labels == nil || !pods.Matches(labels.Set(m.Labels)) {
			return false
		}
	}
	if len(containers) > 0 {
		if m == nil {
			return false
		}
		for _, c := range containers {
			if c == m.Container {
				return true
			}
		}
		return false
	}
	return true
}
