// Package controller is `logrouter controller`: it reconciles every LogPipeline on its own
// (validation with pipeline.Compile under the LogRouterPolicy, status and Events, last known
// good in status.accepted), provisions each namespace's topics through the Kafka admin API,
// and folds the collectors' per-pipeline counters (package pipeline/counters) into status.
// One instance is active at a time, elected through a Lease.
package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// Name is the controller's name in Events and its field manager.
const Name = "logrouter-controller"

// Controller is `logrouter controller`.
type Controller struct {
	cfg   Config
	mgr   manager.Manager
	kafka *kgo.Client
	prov  *Provisioner
	rec   *reconciler
	log   *slog.Logger
}

// Scheme returns a scheme with the Kubernetes core types and logrouter's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds the controller for the API server at rc.
func New(cfg Config, rc *rest.Config, reg prometheus.Registerer, log *slog.Logger) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := topic.Parse(cfg.TopicTemplate)
	if err != nil {
		return nil, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = float32(cfg.KubeQPS), cfg.KubeBurst
	rc.UserAgent = Name
	skip := true
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logr.FromSlogHandler(log.Handler()),
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              cfg.LeaderElectionID,
		LeaderElectionNamespace:       cfg.LeaderElectionNamespace,
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true, // a stopping instance hands over at once
		LeaseDuration:                 &cfg.LeaseDuration,
		RenewDeadline:                 &cfg.RenewDeadline,
		RetryPeriod:                   &cfg.RetryPeriod,
		Metrics:                       metricsserver.Options{BindAddress: "0"}, // served by cli.ServeMetrics
		HealthProbeBindAddress:        "0",
		// Several instances in one process (tests, benchmarks) are fine.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	opts, err := cfg.Kafka.Options()
	if err != nil {
		return nil, err
	}
	kcl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	m := newMetrics(reg)
	c := &Controller{cfg: cfg, mgr: mgr, kafka: kcl, log: log}
	c.prov = NewProvisioner(kadm.NewClient(kcl), cfg.KafkaTimeout)
	c.rec = &reconciler{c: mgr.GetClient(), events: mgr.GetEventRecorder(Name), prov: c.prov, tmpl: tmpl, m: m, log: log, now: time.Now}
	if err := c.setup(); err != nil {
		kcl.Close()
		return nil, err
	}
	if err := c.setupKafkaAccess(reg); err != nil {
		kcl.Close()
		return nil, err
	}
	fold, err := counters.NewFold(cfg.Counters, opts, c.writeCounters, reg, log.With("part", "counters"))
	if err != nil {
		kcl.Close()
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return c.runCounters(ctx, fold) })); err != nil {
		kcl.Close()
		return nil, err
	}
	return c, nil
}

// setup registers the pipeline and policy controllers and their watches.
func (c *Controller) setup() error {
	cl := c.mgr.GetClient()
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var l v1alpha1.LogPipelineList
		if err := cl.List(ctx, &l); err != nil {
			return nil
		}
		return requests(l.Items)
	})
	inNamespace := func(ctx context.Context, ns string) []reconcile.Request {
		var l v1alpha1.LogPipelineList
		if err := cl.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return nil
		}
		return requests(l.Items)
	}
	byNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return inNamespace(ctx, o.GetName())
	})
	// A pipeline created or deleted moves its siblings within or beyond the namespace's limit.
	siblings := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return inNamespace(ctx, o.GetNamespace())
	})
	createDelete := predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return true }, DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(event.UpdateEvent) bool { return false }, GenericFunc: func(event.GenericEvent) bool { return false },
	}
	nsChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
			!equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations())
	}}
	rl := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 5*time.Minute),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(50), 500)},
	)
	err := ctrl.NewControllerManagedBy(c.mgr).
		Named("logpipeline").
		For(&v1alpha1.LogPipeline{}, builder.WithPredicates(pipelineChanged())).
		Watches(&v1alpha1.LogPipeline{}, siblings, builder.WithPredicates(createDelete)).
		// Spec changes only: status writes (the Kafka access of each namespace) change nothing here.
		Watches(&v1alpha1.LogRouterPolicy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, byNamespace, builder.WithPredicates(nsChanged)).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: c.cfg.Workers, RateLimiter: rl}).
		Complete(c.rec)
	if err != nil {
		return fmt.Errorf("pipeline controller: %w", err)
	}
	err = ctrl.NewControllerManagedBy(c.mgr).
		Named("logrouterpolicy").
		For(&v1alpha1.LogRouterPolicy{}).
		Complete(&policyReconciler{c: cl, events: c.rec.events, now: time.Now})
	if err != nil {
		return fmt.Errorf("policy controller: %w", err)
	}
	return nil
}

// pipelineChanged lets through what can change a pipeline's status: not the status writes
// of the counters fold (every 10 s per pipeline), which would re-validate every pipeline.
func pipelineChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*v1alpha1.LogPipeline)
		n, ok2 := e.ObjectNew.(*v1alpha1.LogPipeline)
		if !ok1 || !ok2 {
			return true
		}
		if o.Generation != n.Generation || !n.DeletionTimestamp.IsZero() {
			return true
		}
		os, ns := o.Status, n.Status
		os.Counters, ns.Counters = nil, nil
		return !equality.Semantic.DeepEqual(os, ns)
	}}
}

func requests(items []v1alpha1.LogPipeline) []reconcile.Request {
	out := make([]reconcile.Request, len(items))
	for i, p := range items {
		out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}
	}
	return out
}

// Run runs the controller until ctx ends or leadership is lost (then it returns an error:
// the process must exit, and its replacement stands for election again).
func (c *Controller) Run(ctx context.Context) error {
	defer c.kafka.Close()
	if err := c.mgr.Start(ctx); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// Elected is closed once this instance leads (at once without leader election).
func (c *Controller) Elected() <-chan struct{} { return c.mgr.Elected() }

// runCounters (leader only) creates the compacted counters topic, retrying with backoff,
// then folds the counters into status until ctx ends.
func (c *Controller) runCounters(ctx context.Context, fold *counters.Fold) error {
	warn := rate.Sometimes{First: 1, Interval: time.Minute}
	for failures := 0; ; failures++ {
		err := c.prov.EnsureCompacted(ctx, c.cfg.Counters.Topic)
		if err == nil {
			break
		}
		c.rec.m.topicErrors.Inc()
		warn.Do(func() {
			c.log.Warn("cannot create the counters topic; retrying", "topic", c.cfg.Counters.Topic, "err", err)
		})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(failures + 1)):
		}
	}
	return fold.Run(ctx)
}

// writeCounters patches a pipeline's status.counters (only that field), unless the status
// already has these counts (what a restarted fold's first writes are: the records have not
// changed). That look is at the informer cache; whether the pipeline is gone is the API
// server's answer to the patch only (a cache that has not seen a new pipeline yet must not
// get its counters tombstoned). The counts are of one object, k.UID: a pipeline deleted and
// created again under its name is another object, whose counts start at zero: the patch tests the
// UID first, and what the API server then refuses is checked against the object it has.
func (c *Controller) writeCounters(ctx context.Context, k counters.Key, n counters.Counts, at time.Time) error {
	var cur v1alpha1.LogPipeline
	nn := types.NamespacedName{Namespace: k.Namespace, Name: k.Pipeline}
	if err := c.mgr.GetClient().Get(ctx, nn, &cur); err == nil && string(cur.UID) != k.UID {
		return counters.ErrGone // the cache has the object of that name made since
	} else if err == nil && cur.Status.Counters != nil {
		if s := cur.Status.Counters; (counters.Counts{Selected: s.Selected, Emitted: s.Emitted, Dropped: s.Dropped, SampledOut: s.SampledOut,
			Throttled: s.Throttled, LimitDropped: s.LimitDropped, ParseFailures: s.ParseFailures, Panicked: s.Panicked}) == n {
			return nil
		}
	}
	value := v1alpha1.Counters{
		Selected: n.Selected, Emitted: n.Emitted, Dropped: n.Dropped, SampledOut: n.SampledOut,
		Throttled: n.Throttled, LimitDropped: n.LimitDropped, ParseFailures: n.ParseFailures, Panicked: n.Panicked,
		UpdatedAt: metav1.NewTime(at),
	}
	// Two rounds at most: a status the reconciler wrote between the read below and the
	// patch that creates one fails that patch's resourceVersion test, and the next round's
	// plain add then succeeds.
	var err error
	for range 2 {
		// A JSON patch: its test of metadata.uid is the precondition (the status subresource
		// ignores a uid in a merge patch, and would write one object's counts into another's).
		if err = c.patchStatus(ctx, nn, statusOp("test", "/metadata/uid", k.UID),
			statusOp("add", "/status/counters", value)); err == nil {
			return nil
		}
		if apierrors.IsNotFound(err) {
			return counters.ErrGone
		}
		// A failed test (another UID), or an object without any status yet (no /status to
		// add to): ask the API server, not the cache, which object has the name now.
		if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsConflict(err) {
			return err
		}
		now := &unstructured.Unstructured{}
		now.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("LogPipeline"))
		gerr := c.mgr.GetAPIReader().Get(ctx, nn, now)
		if apierrors.IsNotFound(gerr) || (gerr == nil && string(now.GetUID()) != k.UID) {
			return counters.ErrGone
		}
		if gerr != nil {
			return fmt.Errorf("%w (and reading it back: %w)", err, gerr)
		}
		if _, has := now.Object["status"]; has {
			return err // not for want of a status: the API server's answer stands
		}
		// No status yet (the counters came before the first reconcile): create it. The
		// resourceVersion test makes the whole-status add safe: it cannot replace a status
		// written since the read.
		err = c.patchStatus(ctx, nn, statusOp("test", "/metadata/uid", k.UID),
			statusOp("test", "/metadata/resourceVersion", now.GetResourceVersion()),
			statusOp("add", "/status", map[string]any{"counters": value}))
		if err == nil {
			return nil
		}
		if apierrors.IsNotFound(err) {
			return counters.ErrGone
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

// statusOp is one operation of a JSON patch (RFC 6902).
func statusOp(op, path string, value any) map[string]any {
	return map[string]any{"op": op, "path": path, "value": value}
}

// patchStatus applies a JSON patch to a pipeline's status subresource.
func (c *Controller) patchStatus(ctx context.Context, nn types.NamespacedName, ops ...map[string]any) error {
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	lp := &v1alpha1.LogPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
	return c.mgr.GetClient().Status().Patch(ctx, lp, client.RawPatch(types.JSONPatchType, body))
}

// policyReconciler writes the LogRouterPolicy's Accepted condition.
type policyReconciler struct {
	c      client.Client
	events interface {
		Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
	}
	now func() time.Time
}

func (r *policyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.LogRouterPolicy
	if err := r.c.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	c := cond(v1alpha1.ConditionAccepted, true, v1alpha1.ReasonValid, fmt.Sprintf("generation %d is in force", p.Generation))
	if _, err := pipeline.CompilePolicy(&p.Spec); err != nil {
		c = cond(v1alpha1.ConditionAccepted, false, v1alpha1.ReasonInvalid, err.Error()+"; the last valid policy stays in force")
	}
	c.ObservedGeneration = p.Generation
	c.LastTransitionTime = metav1.NewTime(r.now())
	next := p.DeepCopy()
	next.Status.ObservedGeneration = p.Generation
	meta.SetStatusCondition(&next.Status.Conditions, c)
	if equality.Semantic.DeepEqual(p.Status, next.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.c.Status().Patch(ctx, next, client.MergeFrom(&p)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	typ := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		typ = corev1.EventTypeWarning
	}
	r.events.Eventf(&p, nil, typ, c.Reason, "Validate", "%s", c.Message)
	return ctrl.Result{}, nil
}
