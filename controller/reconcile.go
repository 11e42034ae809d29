package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/enricher/retention"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// defaultMaxPipelines is the policy's MaxPipelinesPerNamespace when it sets none.
const defaultMaxPipelines = 10

// ReasonNotCollected: the policy's namespace selector leaves the pipeline's namespace out.
const ReasonNotCollected = "NotCollected"

// errPolicyInvalid: the policy in force does not compile and no earlier version did.
var errPolicyInvalid = errors.New("the LogRouterPolicy is invalid")

// reconciler validates one LogPipeline, provisions its topics and writes its status.
type reconciler struct {
	c      client.Client
	events events.EventRecorder
	prov   *Provisioner
	tmpl   topic.Template
	m      *metrics
	log    *slog.Logger
	now    func() time.Time

	policyMu sync.Mutex
	policyRV string           // policyKey of the compiled policy ("" none): status writes (Kafka access, per namespace) do not recompile
	policy   *pipeline.Policy // last policy that compiled (nil: defaults)
	policyOK bool             // policy is usable: compiled, or there is none

	cacheMu sync.Mutex
	cache   map[types.NamespacedName]*compileCache
}

// compiled is what the reconciler keeps of a successful Compile.
type compiled struct {
	Suffix string
}

// compileCache holds one pipeline's Compile results under one policy, by generation (a
// generation's spec never changes). Compile costs about a millisecond (CEL); without the
// cache each pipeline is compiled again when its own status write comes back as an update.
type compileCache struct {
	uid    types.UID
	policy *pipeline.Policy
	byGen  map[int64]compileResult
}

type compileResult struct {
	c   *compiled
	err error
}

// compile is pipeline.Compile, remembered per pipeline, generation and policy.
func (r *reconciler) compile(lp *v1alpha1.LogPipeline, gen int64, spec *v1alpha1.LogPipelineSpec, policy *pipeline.Policy) (*compiled, error) {
	key := types.NamespacedName{Namespace: lp.Namespace, Name: lp.Name}
	r.cacheMu.Lock()
	e := r.cache[key]
	if e != nil && e.uid == lp.UID && e.policy == policy {
		if res, ok := e.byGen[gen]; ok {
			r.cacheMu.Unlock()
			return res.c, res.err
		}
	}
	r.cacheMu.Unlock()
	var res compileResult
	if p, err := pipeline.Compile(lp.Namespace, lp.Name, gen, spec, policy); err != nil {
		res.err = err
	} else {
		res.c = &compiled{Suffix: p.Suffix}
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.cache == nil {
		r.cache = map[types.NamespacedName]*compileCache{}
	}
	e = r.cache[key]
	if e == nil || e.uid != lp.UID || e.policy != policy {
		e = &compileCache{uid: lp.UID, policy: policy, byGen: map[int64]compileResult{}}
		r.cache[key] = e
	}
	// Keep the generations that can matter: this one, the accepted one, the newest.
	for g := range e.byGen {
		if g != lp.Generation && (lp.Status.Accepted == nil || g != lp.Status.Accepted.Generation) {
			delete(e.byGen, g)
		}
	}
	e.byGen[gen] = res
	return res.c, res.err
}

// forget drops a deleted pipeline's cached results.
func (r *reconciler) forget(key types.NamespacedName) {
	r.cacheMu.Lock()
	delete(r.cache, key)
	r.cacheMu.Unlock()
}

// policyKey changes with the policy's spec (a recreated policy has another UID), not with
// its status. The spec itself, not metadata.generation: clients that do not maintain the
// generation (controller-runtime's fake client) still see spec changes.
func policyKey(p *v1alpha1.LogRouterPolicy) string {
	spec, _ := json.Marshal(&p.Spec)
	return string(p.UID) + "/" + string(spec)
}

// currentPolicy compiles the cluster's policy when it changed. A policy that does not compile
// leaves the last one that did in force (the policy's own status says why).
func (r *reconciler) currentPolicy(ctx context.Context) (*pipeline.Policy, error) {
	var lp v1alpha1.LogRouterPolicy
	err := r.c.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &lp)
	r.policyMu.Lock()
	defer r.policyMu.Unlock()
	switch {
	case apierrors.IsNotFound(err):
		r.policyRV, r.policy, r.policyOK = "", nil, true
	case err != nil:
		return nil, fmt.Errorf("get LogRouterPolicy: %w", err)
	case policyKey(&lp) != r.policyRV:
		r.policyRV = policyKey(&lp)
		if p, err := pipeline.CompilePolicy(&lp.Spec); err == nil {
			r.policy, r.policyOK = p, true
		} else if r.policy == nil {
			r.policyOK = false // nothing earlier to keep: wait for a valid policy
		}
	}
	if !r.policyOK {
		return nil, errPolicyInvalid
	}
	return r.policy, nil
}

// Reconcile is one pipeline's reconciliation.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	start := r.now()
	result := "ok"
	defer func() {
		if err != nil {
			result = "error"
		}
		r.m.reconciles.WithLabelValues(result).Inc()
		r.m.duration.Observe(time.Since(start).Seconds())
	}()
	var lp v1alpha1.LogPipeline
	if err := r.c.Get(ctx, req.NamespacedName, &lp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil // deleted: collectors stop it; nothing to write
		}
		return ctrl.Result{}, err
	}
	if !lp.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	policy, err := r.currentPolicy(ctx)
	if errors.Is(err, errPolicyInvalid) {
		result = "policy_invalid"
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil // statuses stay as they are
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	var ns corev1.Namespace
	if err := r.c.Get(ctx, types.NamespacedName{Name: lp.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	var siblings v1alpha1.LogPipelineList
	if err := r.c.List(ctx, &siblings, client.InNamespace(lp.Namespace)); err != nil {
		return ctrl.Result{}, err
	}

	d := r.decide(&lp, &ns, siblings.Items, policy)
	var retry time.Duration
	if d.topicErr == nil && len(d.topics) > 0 {
		retry, d.topicErr = r.prov.Ensure(ctx, lp.Namespace, d.topics, d.topicSpec)
		if d.topicErr != nil {
			r.m.topicErrors.Inc()
			if retry == 0 {
				retry = time.Second
			}
		}
	}
	if d.topicErr != nil {
		result = "topic_failed"
		d.ready = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTopicFailed,
			Message: fmt.Sprintf("namespace %s: %v", lp.Namespace, d.topicErr)}
		if retry == 0 {
			retry = time.Minute // an annotation to fix: look again now and then
		}
	} else if d.accepted.Status != metav1.ConditionTrue {
		result = "invalid"
	}
	if err := r.writeStatus(ctx, &lp, d); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: retry}, nil
}

// decision is what a pipeline's status should say.
type decision struct {
	accepted, ready metav1.Condition
	acceptedSpec    *v1alpha1.AcceptedSpec // nil: keep
	topics          []string
	topicSpec       TopicSpec
	topicErr        error // found before Kafka is asked (a bad annotation)
}

// decide validates the pipeline (Compile under the policy, and the namespace's pipeline
// limit) and works out its conditions and topics.
func (r *reconciler) decide(lp *v1alpha1.LogPipeline, ns *corev1.Namespace, siblings []v1alpha1.LogPipeline, policy *pipeline.Policy) decision {
	gen := lp.Generation
	var d decision
	np := policy.For(lp.Namespace, ns.Labels)
	d.topicSpec = TopicSpec{Partitions: np.Partitions, Retention: np.Retention}
	if raw, ok := ns.Annotations[enricher.AnnotationRetention]; ok {
		if ret, err := retention.Parse(raw); err != nil {
			d.topicErr = fmt.Errorf("annotation %s=%q: %w; fix the annotation", enricher.AnnotationRetention, raw, err)
		} else {
			d.topicSpec.Retention = ret
		}
	}

	cur, cerr := r.compile(lp, gen, &lp.Spec, policy)
	limitMsg := overLimit(lp, siblings, policy)
	var running *compiled // what collectors run
	var runningGen int64
	switch {
	case cerr != nil:
		d.accepted = cond(v1alpha1.ConditionAccepted, false, v1alpha1.ReasonInvalid, cerr.Error())
	case limitMsg != "":
		d.accepted = cond(v1alpha1.ConditionAccepted, false, v1alpha1.ReasonOverLimit, limitMsg)
	default:
		d.accepted = cond(v1alpha1.ConditionAccepted, true, v1alpha1.ReasonValid, fmt.Sprintf("generation %d is valid", gen))
		running, runningGen = cur, gen
		if a := lp.Status.Accepted; a == nil || a.Generation != gen || !equality.Semantic.DeepEqual(a.Spec, lp.Spec) {
			d.acceptedSpec = &v1alpha1.AcceptedSpec{Generation: gen, Spec: *lp.Spec.DeepCopy()}
		}
	}
	if running == nil && cerr != nil && lp.Status.Accepted != nil {
		// The previous valid version keeps running where it still compiles under the policy.
		a := lp.Status.Accepted
		if p, err := r.compile(lp, a.Generation, &a.Spec, policy); err == nil {
			running, runningGen = p, a.Generation
		}
	}
	switch {
	case limitMsg != "":
		d.ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonOverLimit, "not running: "+limitMsg)
	case running == nil:
		d.ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonInvalid,
			"not running: no version of this pipeline is valid; the lines it would select ship unchanged")
	case runningGen != gen:
		d.ready = cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonRunningPrevious,
			fmt.Sprintf("generation %d runs; generation %d is invalid (see the Accepted condition)", runningGen, gen))
	default:
		d.ready = cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonReady, fmt.Sprintf("generation %d runs", gen))
	}
	if running != nil && !np.Collected {
		d.ready = cond(v1alpha1.ConditionReady, false, ReasonNotCollected,
			fmt.Sprintf("not running: the LogRouterPolicy does not collect namespace %s", lp.Namespace))
		return d
	}
	if running != nil {
		nsTopic, err := r.tmpl.Render(lp.Namespace, ns.Labels)
		if err != nil {
			d.topicErr = err
			return d
		}
		d.topics = []string{nsTopic}
		if running.Suffix != "" {
			d.topics = append(d.topics, topic.WithSuffix(nsTopic, running.Suffix))
		}
		if d.ready.Reason == v1alpha1.ReasonReady {
			d.ready.Message += "; topics " + strings.Join(d.topics, ", ") + " ready"
		}
	}
	return d
}

// overLimit says why a pipeline is beyond the policy's pipelines per namespace, or "". The
// oldest pipelines are within the limit (then by name), so that a new pipeline never
// displaces one that runs.
func overLimit(lp *v1alpha1.LogPipeline, siblings []v1alpha1.LogPipeline, policy *pipeline.Policy) string {
	max := defaultMaxPipelines
	if policy != nil && policy.Spec.MaxPipelinesPerNamespace > 0 {
		max = int(policy.Spec.MaxPipelinesPerNamespace)
	}
	if len(siblings) <= max {
		return ""
	}
	live := slices.DeleteFunc(slices.Clone(siblings), func(s v1alpha1.LogPipeline) bool { return !s.DeletionTimestamp.IsZero() })
	slices.SortFunc(live, func(a, b v1alpha1.LogPipeline) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i, s := range live {
		if s.Name == lp.Name {
			if i < max {
				return ""
			}
			return fmt.Sprintf("namespace %s has %d pipelines and the LogRouterPolicy allows %d (maxPipelinesPerNamespace); the oldest %d run", lp.Namespace, len(live), max, max)
		}
	}
	return ""
}

func cond(typ string, ok bool, reason, msg string) metav1.Condition {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg}
}

// writeStatus patches the status when it differs from what the pipeline has, and records an
// Event for each condition that changed status or reason.
func (r *reconciler) writeStatus(ctx context.Context, lp *v1alpha1.LogPipeline, d decision) error {
	next := lp.DeepCopy()
	st := &next.Status
	st.ObservedGeneration = lp.Generation
	now := metav1.NewTime(r.now())
	for _, c := range []metav1.Condition{d.accepted, d.ready} {
		c.ObservedGeneration = lp.Generation
		c.LastTransitionTime = now // kept by SetStatusCondition unless the status changes
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if d.acceptedSpec != nil {
		st.Accepted = d.acceptedSpec
	}
	if equality.Semantic.DeepEqual(lp.Status, next.Status) {
		return nil
	}
	// A merge patch of the fields that changed: status.counters (the fold's) is left alone.
	if err := r.c.Status().Patch(ctx, next, client.MergeFrom(lp)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("status of %s/%s: %w", lp.Namespace, lp.Name, err)
	}
	r.m.statusWrites.Inc()
	// One Event per change (not one per condition), and none for a new pipeline that is valid
	// and runs: at 5,000 pipelines Events are as many writes to the API server as the statuses
	// themselves. Its reason is the first changed condition's; it is a Warning when the
	// pipeline does not run its current generation.
	var notes []string
	reason := ""
	typ := corev1.EventTypeNormal
	for _, c := range []metav1.Condition{d.accepted, d.ready} {
		if c.Status != metav1.ConditionTrue || c.Reason == v1alpha1.ReasonRunningPrevious {
			typ = corev1.EventTypeWarning
		}
		old := meta.FindStatusCondition(lp.Status.Conditions, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			continue
		}
		if reason == "" {
			reason = c.Reason
		}
		notes = append(notes, fmt.Sprintf("%s=%s: %s", c.Type, c.Status, c.Message))
	}
	if reason != "" && (len(lp.Status.Conditions) > 0 || typ == corev1.EventTypeWarning) {
		r.events.Eventf(lp, nil, typ, reason, "Reconcile", "%s", strings.Join(notes, "; "))
	}
	return nil
}
