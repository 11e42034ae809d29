package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// KubeConfig configures a Kube source.
type KubeConfig struct {
	// Delay is how long a change waits for more before the state is applied: a burst of
	// changes within it is one apply.
	Delay time.Duration
	// Resync is the informers' resync period (0: none; the watch is enough).
	Resync time.Duration
}

// DefaultKubeConfig returns the defaults.
func DefaultKubeConfig() KubeConfig { return KubeConfig{Delay: 100 * time.Millisecond} }

// Validate reports every problem of the configuration.
func (c KubeConfig) Validate() error {
	var errs []error
	if c.Delay <= 0 {
		errs = append(errs, fmt.Errorf("pipelines delay %v: must be positive", c.Delay))
	}
	if c.Resync < 0 {
		errs = append(errs, fmt.Errorf("pipelines resync %v: must not be negative", c.Resync))
	}
	return errors.Join(errs...)
}

// Kube watches LogPipelines (all namespaces) and the LogRouterPolicy named default through
// informers and applies the state after each burst of changes. A pipeline whose spec does not
// compile runs its status.accepted.spec (written by the controller), so a collector that
// starts after a bad update runs the last good version it never saw.
type Kube struct {
	cfg    KubeConfig
	client dynamic.Interface
	out    pipeline.Applier
	log    *slog.Logger
	m      *metrics
	b      *builder
	lim    *rate.Limiter

	policy    *pipeline.Policy
	policyVer string // uid/generation of the policy in force, or of the last invalid one

	// Tests: the informers, and the coalescing timer (nil: time.After(Delay)).
	pl, po cache.SharedIndexInformer
	after  func() <-chan time.Time
}

// NewKube returns a Kube source reading through client and pushing to out.
func NewKube(cfg KubeConfig, client dynamic.Interface, out pipeline.Applier, reg prometheus.Registerer, log *slog.Logger) (*Kube, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	log = log.With("source", "kubernetes")
	return &Kube{cfg: cfg, client: client, out: out, log: log, m: m, b: newBuilder(log, m),
		lim: rate.NewLimiter(rate.Every(time.Minute), 5)}, nil
}

// Run watches until ctx ends. Nothing is applied before both informers have synced: until
// then the collector runs no pipelines (lines ship unchanged), as with an unreachable API
// server.
func (k *Kube) Run(ctx context.Context) error {
	f := dynamicinformer.NewDynamicSharedInformerFactory(k.client, k.cfg.Resync)
	defer f.Shutdown()
	pl := f.ForResource(v1alpha1.LogPipelines).Informer()
	po := f.ForResource(v1alpha1.LogRouterPolicies).Informer()
	k.pl, k.po = pl, po
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{pl, po} {
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return fmt.Errorf("pipelines informer: %w", err)
		}
		synced = append(synced, reg.HasSynced)
	}
	f.Start(ctx.Done())
	k.preflight(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended
	}
	// The handlers have seen the initial list: the first apply below covers it.
	select {
	case <-kick:
	default:
	}
	k.log.Info("pipeline informers synced", "pipelines", len(pl.GetStore().List()))
	after := k.after
	if after == nil {
		after = func() <-chan time.Time { return time.After(k.cfg.Delay) }
	}
	k.apply(pl.GetStore().List(), po.GetStore().List())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		}
		// Coalesce: the first change of a burst starts the wait; changes during it ride
		// along (the stores hold the latest objects), one during apply starts the next wait.
		select {
		case <-ctx.Done():
			return nil
		case <-after():
		}
		k.apply(pl.GetStore().List(), po.GetStore().List())
	}
}

// preflight tells apart an API server without the LogPipeline CRD, where no pipeline can
// exist (the collector is told so at once: its files need not wait), from one that is slow,
// unreachable or forbids the collector to read pipelines: then pipelines may exist (say, a
// redaction) and nothing is applied until the informers have synced; files wait, their data
// stays on disk.
func (k *Kube) preflight(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := k.client.Resource(v1alpha1.LogPipelines).List(cctx, metav1.ListOptions{Limit: 1})
	switch {
	case err == nil, ctx.Err() != nil:
	case apierrors.IsNotFound(err):
		k.log.Error("the LogPipeline CRD is not installed (deploy/crds): no pipelines run until it is", "error", err.Error())
		k.out.Apply(&pipeline.State{})
	case apierrors.IsForbidden(err):
		k.log.Error("the collector may not list LogPipelines (RBAC: get, list, watch logpipelines and logrouterpolicies in logrouter.io): files wait until it may", "error", err.Error())
	default:
		k.log.Warn("cannot list LogPipelines yet: files wait for the first list", "error", err.Error())
	}
}

func (k *Kube) apply(pipelines, policies []any) {
	k.setPolicy(policies)
	entries := make([]Entry, 0, len(pipelines))
	for _, o := range pipelines {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var p v1alpha1.LogPipeline
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
			// The CRD's schema makes this unlikely; such an object is counted and does not run.
			k.m.invalid.WithLabelValues(u.GetNamespace(), u.GetName()).Inc()
			if k.lim.Allow() {
				k.log.Error("LogPipeline does not decode: it does not run", "namespace", u.GetNamespace(), "pipeline", u.GetName(), "error", err.Error())
			}
			continue
		}
		version := entryVersion(string(p.UID), p.Generation, p.Status.Accepted)
		entries = append(entries, Entry{
			Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Generation: p.Generation,
			Spec: &p.Spec, Accepted: p.Status.Accepted, Origin: "kubernetes", Version: version,
		})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Namespace != entries[j].Namespace {
			return entries[i].Namespace < entries[j].Namespace
		}
		return entries[i].Name < entries[j].Name
	})
	st, _ := k.b.build(k.policy, entries)
	k.out.Apply(st)
}

// setPolicy compiles the policy named default when it changed. An invalid policy keeps the
// previous one in force (the defaults when there is none).
func (k *Kube) setPolicy(policies []any) {
	var u *unstructured.Unstructured
	for _, o := range policies {
		if x, ok := o.(*unstructured.Unstructured); ok && x.GetName() == v1alpha1.PolicyName {
			u = x
		}
	}
	if u == nil {
		if k.policy != nil {
			k.log.Info("LogRouterPolicy deleted: the defaults apply")
		}
		k.policy, k.policyVer = nil, ""
		return
	}
	// uid and generation change with the spec only (status has its own subresource).
	ver := string(u.GetUID()) + "/" + strconv.FormatInt(u.GetGeneration(), 10)
	if ver == k.policyVer {
		return
	}
	k.policyVer = ver
	var p v1alpha1.LogRouterPolicy
	err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p)
	var pol *pipeline.Policy
	if err == nil {
		pol, err = pipeline.CompilePolicy(&p.Spec)
	}
	if err != nil {
		k.m.policy.Inc()
		k.log.Error("LogRouterPolicy invalid: the previous policy (or the defaults) stays in force", "error", err.Error())
		return
	}
	k.policy = pol
}
