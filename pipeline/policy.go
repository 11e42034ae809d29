package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Defaults without a policy, or for what a policy leaves unset (DESIGN-9 decision 5).
const (
	DefaultMaxStepsPerPipeline      = 20
	DefaultMaxPipelinesPerNamespace = 10
)

// Bounds of a policy, as in the CRD schema.
const (
	maxPolicySteps     = 64
	maxPolicyPipelines = 1000
	maxPartitions      = 1000
	maxOverrides       = 100
	maxSuffixes        = 64
)

type compiledOverride struct {
	sel    labels.Selector
	limits *Limits
	topics v1alpha1.Topics
}

func compilePolicy(spec *v1alpha1.LogRouterPolicySpec) (*Policy, error) {
	var ps problems
	if spec == nil {
		return nil, nil
	}
	p := &Policy{Spec: *spec.DeepCopy()}
	if spec.Namespaces != nil {
		p.namespaces = policySelector("namespaces", spec.Namespaces, &ps)
	}
	p.base.Collected = true
	if l := compileLimits("limits", &spec.Limits, &ps); l != nil {
		p.base.Limits = *l
	}
	checkTopics("topics", &spec.Topics, &ps)
	p.base.Partitions = spec.Topics.Partitions
	if spec.Topics.Retention != nil {
		p.base.Retention = spec.Topics.Retention.Duration
	}
	if len(spec.Overrides) > maxOverrides {
		ps.add("overrides", "%d overrides, at most %d allowed", len(spec.Overrides), maxOverrides)
	}
	for i := range spec.Overrides {
		o := &spec.Overrides[i]
		path := fmt.Sprintf("overrides[%d]", i)
		co := compiledOverride{sel: policySelector(path+".namespaces", &o.Namespaces, &ps)}
		if co.sel == nil {
			co.sel = labels.Everything()
		}
		if o.Limits != nil {
			co.limits = compileLimits(path+".limits", o.Limits, &ps)
		}
		if o.Topics != nil {
			checkTopics(path+".topics", o.Topics, &ps)
			co.topics = *o.Topics
		}
		p.overrides = append(p.overrides, co)
	}
	if n := spec.MaxStepsPerPipeline; n != 0 && (n < 1 || n > maxPolicySteps) {
		ps.add("maxStepsPerPipeline", "%d: must be between 1 and %d", n, maxPolicySteps)
	}
	if n := spec.MaxPipelinesPerNamespace; n != 0 && (n < 1 || n > maxPolicyPipelines) {
		ps.add("maxPipelinesPerNamespace", "%d: must be between 1 and %d", n, maxPolicyPipelines)
	}
	if len(spec.AllowedSuffixes) > maxSuffixes {
		ps.add("allowedSuffixes", "%d suffixes, at most %d allowed", len(spec.AllowedSuffixes), maxSuffixes)
	}
	for i, s := range spec.AllowedSuffixes {
		if err := topic.ValidSuffix(s); err != nil {
			ps.add(fmt.Sprintf("allowedSuffixes[%d]", i), "%s", strings.TrimPrefix(err.Error(), topic.ErrInvalidSuffix.Error()+" "))
			continue
		}
		if slices.Contains(p.suffixes, s) {
			ps.add(fmt.Sprintf("allowedSuffixes[%d]", i), "%q is listed twice", s)
			continue
		}
		p.suffixes = append(p.suffixes, s)
	}
	slices.Sort(p.suffixes)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p, nil
}

func policySelector(path string, s *metav1.LabelSelector, ps *problems) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		ps.add(path, "%v", err)
		return nil
	}
	if sel.Empty() {
		return nil
	}
	return sel
}

func checkTopics(path string, t *v1alpha1.Topics, ps *problems) {
	if t.Partitions < 0 || t.Partitions > maxPartitions {
		ps.add(path+".partitions", "%d: must be between 1 and %d (or unset: Kafka's default)", t.Partitions, maxPartitions)
	}
	if t.Retention != nil && t.Retention.Duration <= 0 {
		ps.add(path+".retention", "%s: must be positive (or unset: Kafka's default)", t.Retention.Duration)
	}
}

// compileLimits converts limits; bursts default to one second of their rate (at least 1).
func compileLimits(path string, l *v1alpha1.Limits, ps *problems) *Limits {
	n := len(*ps)
	var out Limits
	switch l.Action {
	case "", v1alpha1.LimitThrottle:
	case v1alpha1.LimitDrop:
		out.Drop = true
	default:
		ps.add(path+".action", "%q: want throttle or drop", string(l.Action))
	}
	if l.LinesPerSecond < 0 {
		ps.add(path+".linesPerSecond", "%d: must not be negative", l.LinesPerSecond)
	}
	if l.BurstLines < 0 {
		ps.add(path+".burstLines", "%d: must not be negative", l.BurstLines)
	}
	if l.BurstLines > 0 && l.LinesPerSecond == 0 {
		ps.add(path+".burstLines", "burstLines needs linesPerSecond")
	}
	out.LinesPerSecond = float64(max(l.LinesPerSecond, 0))
	out.BurstLines = burst(l.BurstLines, out.LinesPerSecond)
	bps := quantity(path+".bytesPerSecond", l.BytesPerSecond, ps)
	bb := quantity(path+".burstBytes", l.BurstBytes, ps)
	if bb > 0 && bps == 0 {
		ps.add(path+".burstBytes", "burstBytes needs bytesPerSecond")
	}
	out.BytesPerSecond = float64(bps)
	out.BurstBytes = burst(bb, out.BytesPerSecond)
	if len(*ps) > n {
		return nil
	}
	return &out
}

func burst(b int64, rate float64) int {
	if rate == 0 {
		return 0
	}
	if b == 0 {
		b = int64(math.Ceil(rate))
	}
	return int(min(max(b, 1), math.MaxInt32))
}

func quantity(path string, q *resource.Quantity, ps *problems) int64 {
	if q == nil {
		return 0
	}
	v, ok := q.AsInt64()
	if !ok {
		v = q.Value()
	}
	if v < 0 {
		ps.add(path, "%s: must not be negative", q.String())
		return 0
	}
	return v
}

func (p *Policy) forNamespace(l map[string]string) NamespacePolicy {
	if p == nil {
		return NamespacePolicy{Collected: true}
	}
	np := p.base
	if l == nil {
		return np
	}
	if p.namespaces != nil && !p.namespaces.Matches(labels.Set(l)) {
		np.Collected = false
	}
	for _, o := range p.overrides {
		if !o.sel.Matches(labels.Set(l)) {
			continue
		}
		if o.limits != nil {
			np.Limits = *o.limits
		}
		if o.topics.Partitions != 0 {
			np.Partitions = o.topics.Partitions
		}
		if o.topics.Retention != nil {
			np.Retention = o.topics.Retention.Duration
		}
		break
	}
	return np
}

// MaxStepsPerPipeline is the policy's step limit (DefaultMaxStepsPerPipeline when unset).
func (p *Policy) MaxStepsPerPipeline() int {
	if p == nil || p.Spec.MaxStepsPerPipeline == 0 {
		return DefaultMaxStepsPerPipeline
	}
	return int(p.Spec.MaxStepsPerPipeline)
}

// MaxPipelinesPerNamespace is the policy's pipeline limit (DefaultMaxPipelinesPerNamespace
// when unset).
func (p *Policy) MaxPipelinesPerNamespace() int {
	if p == nil || p.Spec.MaxPipelinesPerNamespace == 0 {
		return DefaultMaxPipelinesPerNamespace
	}
	return int(p.Spec.MaxPipelinesPerNamespace)
}

// AllowedSuffixes are the output suffixes pipelines may use, sorted (none by default).
func (p *Policy) AllowedSuffixes() []string {
	if p == nil {
		return nil
	}
	return p.suffixes
}

// AllowsSuffix reports whether pipelines may send to logs.<ns>.<suffix>.
func (p *Policy) AllowsSuffix(s string) bool {
	_, found := slices.BinarySearch(p.AllowedSuffixes(), s)
	return found
}

// CheckNamespace checks a namespace's number of pipelines against the policy. Its callers
// (the controller, the sources) run the first MaxPipelinesPerNamespace pipelines by name and
// refuse the others with this error.
func CheckNamespace(ns string, n int, policy *Policy) error {
	if max := policy.MaxPipelinesPerNamespace(); n > max {
		return &ValidationError{Problems: []string{fmt.Sprintf(
			"namespace %q has %d pipelines; the LogRouterPolicy allows %d (maxPipelinesPerNamespace): the first %d by name run",
			ns, n, max, max)}}
	}
	return nil
}
