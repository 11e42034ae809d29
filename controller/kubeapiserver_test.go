package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// env is one real kube-apiserver (CRDs installed) and one kfake for the whole test binary's
// kube-apiserver tests: starting a server costs seconds.
type env struct {
	rc      *rest.Config
	c       client.Client
	brokers string
	opts    []kgo.Opt
	adm     *kadm.Client
	tune    func(*Config) // changes the defaults of the controllers it starts (benchmarks)
}

// controllerUser is the identity controllers run as in these tests: it has exactly the
// permissions docs/controller.md lists.
const controllerUser = "logrouter-controller"

func startEnv(t testing.TB) *env {
	t.Helper()
	s := kubeapiserver.Start(t, kubeapiserver.Options{Users: []kubeapiserver.User{{Name: controllerUser, UID: "controller"}}})
	if _, err := envtest.InstallCRDs(s.Config, envtest.CRDInstallOptions{Paths: []string{"../deploy/crds"}, ErrorIfPathMissing: true, MaxTime: time.Minute}); err != nil {
		t.Fatalf("install CRDs: %v", err)
	}
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	grantControllerRBAC(t, c)
	adm, opts := kafka(t)
	return &env{rc: s.ConfigFor(controllerUser), c: c, brokers: strings.Join(seedBrokers(opts), ","), opts: opts, adm: adm}
}

// seedBrokers recovers the addresses kafka() seeded its clients with.
func seedBrokers(opts []kgo.Opt) []string {
	cl, _ := kgo.NewClient(opts...)
	defer cl.Close()
	return cl.OptValues(kgo.SeedBrokers)[0].([]string)
}

// running is a controller started by a test.
type running struct {
	c      *Controller
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(t testing.TB, counterInterval time.Duration) *running {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = e.brokers
	cfg.LeaderElectionNamespace = "default"
	cfg.Counters.Interval = counterInterval
	if e.tune != nil {
		e.tune(&cfg)
	}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, e.rc, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("controller: %v", err)
	}
}

func (e *env) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.c.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCondition waits until a pipeline's condition has this status and reason for its
// current generation.
func (e *env) waitCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.LogPipeline {
	t.Helper()
	var lp v1alpha1.LogPipeline
	waitFor(t, fmt.Sprintf("%s/%s %s=%s %s", ns, name, typ, status, reason), func() (bool, string) {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &lp); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(lp.Status.Conditions, typ)
		if c == nil {
			return false, fmt.Sprintf("%+v", lp.Status)
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == lp.Generation, fmt.Sprintf("%+v", *c)
	})
	return &lp
}

// TestKubeAPIServer runs the controller against a real kube-apiserver with the CRDs installed
// (their OpenAPI and CEL rules enforced by the server, the status subresource, Leases).
func TestKubeAPIServer(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	e.create(t,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "blocked"}},
		&v1alpha1.LogRouterPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName}, Spec: v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug"}}},
	)
	// A topic that collides with logs.blocked ('.' and '_' collide in Kafka): that namespace's
	// topic cannot be created.
	if _, err := e.adm.CreateTopic(ctx, 1, -1, nil, "logs_blocked"); err != nil {
		t.Fatal(err)
	}
	e.create(t,
		regexPipeline("team-a", "web", goodRegex, "", 0),
		regexPipeline("team-a", "debug", goodRegex, "debug", 0),
		regexPipeline("team-a", "audit", goodRegex, "audit", 0),
		regexPipeline("team-b", "broken", badRegex, "", 0),
		regexPipeline("team-b", "api", goodRegex, "", 0),
		regexPipeline("blocked", "p", goodRegex, "", 0),
	)
	a := e.start(t, 50*time.Millisecond)

	t.Run("invalid regex is reported, other namespaces run", func(t *testing.T) {
		lp := e.waitCondition(t, "team-b", "broken", v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid)
		if c := meta.FindStatusCondition(lp.Status.Conditions, v1alpha1.ConditionAccepted); !strings.HasPrefix(c.Message, "steps[0].regex.pattern: missing closing ]") {
			t.Errorf("message %q does not name the step", c.Message)
		}
		e.waitCondition(t, "team-b", "api", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		e.waitCondition(t, "team-a", "web", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		e.waitCondition(t, "team-a", "debug", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		// The Event of the transition.
		waitFor(t, "an Invalid event for team-b/broken", func() (bool, string) {
			var evs corev1.EventList
			if err := e.c.List(ctx, &evs, client.InNamespace("team-b")); err != nil {
				return false, err.Error()
			}
			for _, ev := range evs.Items {
				if ev.InvolvedObject.Name == "broken" && ev.Reason == v1alpha1.ReasonInvalid && ev.Type == corev1.EventTypeWarning {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(evs.Items))
		})
	})

	t.Run("suffix: the API server rejects a dot, the controller one the policy does not allow", func(t *testing.T) {
		err := e.c.Create(ctx, regexPipeline("team-a", "escape", goodRegex, "x.logs.team-b", 0))
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.output.suffix") {
			t.Errorf("suffix with dots: %v, want Invalid on spec.output.suffix", err)
		}
		lp := e.waitCondition(t, "team-a", "audit", v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid)
		if c := meta.FindStatusCondition(lp.Status.Conditions, v1alpha1.ConditionAccepted); !strings.Contains(c.Message, `output.suffix: "audit" is not allowed`) {
			t.Errorf("message %q", c.Message)
		}
	})

	t.Run("a namespace whose topic cannot be created gets its own condition", func(t *testing.T) {
		lp := e.waitCondition(t, "blocked", "p", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTopicFailed)
		if c := meta.FindStatusCondition(lp.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "logs.blocked") {
			t.Errorf("message %q", c.Message)
		}
		e.waitCondition(t, "blocked", "p", v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid)
		for _, p := range [][2]string{{"team-a", "web"}, {"team-b", "api"}} {
			e.waitCondition(t, p[0], p[1], v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		}
	})

	t.Run("valid to invalid keeps the accepted version", func(t *testing.T) {
		var lp v1alpha1.LogPipeline
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "web"}, &lp); err != nil {
			t.Fatal(err)
		}
		good := lp.Generation
		lp.Spec.Steps[0].Regex.Pattern = badRegex
		if err := e.c.Update(ctx, &lp); err != nil {
			t.Fatal(err)
		}
		got := e.waitCondition(t, "team-a", "web", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRunningPrevious)
		if got.Status.Accepted == nil || got.Status.Accepted.Generation != good || got.Status.Accepted.Spec.Steps[0].Regex.Pattern != goodRegex {
			t.Errorf("accepted = %+v, want generation %d with the good pattern", got.Status.Accepted, good)
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
		if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalid {
			t.Errorf("Accepted = %+v", c)
		}
	})

	t.Run("counters from the topic reach the status", func(t *testing.T) {
		var api v1alpha1.LogPipeline
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-b", Name: "api"}, &api); err != nil {
			t.Fatal(err)
		}
		apiKey := counters.Key{Namespace: "team-b", Pipeline: "api", UID: string(api.UID)}
		src := staticCounts{apiKey: {Selected: 7, Emitted: 6, Dropped: 1, Throttled: 3, LimitDropped: 2, Panicked: 1}}
		for _, node := range []string{"node-1", "node-2"} {
			pub, err := counters.NewPublisher(counters.PublisherConfig{Node: node, Topic: DefaultConfig().Counters.Topic, Interval: time.Hour}, e.opts, src, discard())
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			waitFor(t, "the counters topic", func() (bool, string) {
				if err := pub.Resume(ctx); err != nil {
					return false, err.Error()
				}
				n, err := pub.Publish(ctx)
				return n == 1, fmt.Sprint(err)
			})
		}
		waitFor(t, "status.counters of team-b/api", func() (bool, string) {
			var lp v1alpha1.LogPipeline
			if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-b", Name: "api"}, &lp); err != nil {
				return false, err.Error()
			}
			c := lp.Status.Counters
			return c != nil && c.Selected == 14 && c.Emitted == 12 && c.Dropped == 2 && c.Throttled == 6 && c.LimitDropped == 4 && c.Panicked == 2 && !c.UpdatedAt.IsZero(), fmt.Sprintf("%+v", c)
		})
		// The fold's write did not re-trigger validation into a status change.
		e.waitCondition(t, "team-b", "api", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)

		// A restarted controller's fold writes every sum once: one the status already has
		// costs no API call (5,000 patches at every restart otherwise).
		var before, after v1alpha1.LogPipeline
		key := types.NamespacedName{Namespace: "team-b", Name: "api"}
		if err := e.c.Get(ctx, key, &before); err != nil {
			t.Fatal(err)
		}
		if err := a.c.writeCounters(ctx, apiKey, counters.Counts{Selected: 14, Emitted: 12, Dropped: 2, Throttled: 6, LimitDropped: 4, Panicked: 2}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Get(ctx, key, &after); err != nil {
			t.Fatal(err)
		}
		if after.ResourceVersion != before.ResourceVersion {
			t.Errorf("unchanged counters written again: status.counters %+v -> %+v", before.Status.Counters, after.Status.Counters)
		}
	})

	t.Run("a pipeline created again under its name starts at zero", func(t *testing.T) {
		key := types.NamespacedName{Namespace: "team-b", Name: "again"}
		e.create(t, regexPipeline("team-b", "again", goodRegex, "", 0))
		// (Counters are written into a status the reconciler made: collectors count only
		// pipelines it has seen.)
		e.waitCondition(t, "team-b", "again", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		var old v1alpha1.LogPipeline
		if err := e.c.Get(ctx, key, &old); err != nil {
			t.Fatal(err)
		}
		oldKey := counters.Key{Namespace: "team-b", Pipeline: "again", UID: string(old.UID)}
		if err := a.c.writeCounters(ctx, oldKey, counters.Counts{Selected: 5, Emitted: 5}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Delete(ctx, &old); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "team-b/again gone", func() (bool, string) {
			err := e.c.Get(ctx, key, &v1alpha1.LogPipeline{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		e.create(t, regexPipeline("team-b", "again", goodRegex, "", 0))
		e.waitCondition(t, "team-b", "again", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		var cur v1alpha1.LogPipeline
		if err := e.c.Get(ctx, key, &cur); err != nil {
			t.Fatal(err)
		}
		if cur.UID == old.UID {
			t.Fatal("the API server gave the new object the old UID")
		}
		// The API server ignores a uid in a status merge patch: the UID is tested in a JSON patch.
		body := []byte(`{"metadata":{"uid":"` + string(old.UID) + `"}}`)
		if err := e.c.Status().Patch(ctx, cur.DeepCopy(), client.RawPatch(types.MergePatchType, body)); err != nil {
			t.Errorf("a status merge patch with another UID: %v (the API server used to ignore it; writeCounters does not rely on it)", err)
		}
		// The old object's sums are gone (the fold tombstones them), whether the controller's
		// cache has the new object yet or not; the new object's are its own.
		if err := a.c.writeCounters(ctx, oldKey, counters.Counts{Selected: 9, Emitted: 9}, time.Now()); !errors.Is(err, counters.ErrGone) {
			t.Errorf("writing the old object's counters: %v, want ErrGone", err)
		}
		if err := e.c.Get(ctx, key, &cur); err != nil {
			t.Fatal(err)
		}
		if cur.Status.Counters != nil {
			t.Errorf("the new object got counters %+v", cur.Status.Counters)
		}
		newKey := counters.Key{Namespace: "team-b", Pipeline: "again", UID: string(cur.UID)}
		if err := a.c.writeCounters(ctx, newKey, counters.Counts{Selected: 2, Emitted: 2}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Get(ctx, key, &cur); err != nil {
			t.Fatal(err)
		}
		if c := cur.Status.Counters; c == nil || c.Selected != 2 || c.Emitted != 2 {
			t.Errorf("the new object's counters %+v, want its own 2", c)
		}
	})

	t.Run("delete", func(t *testing.T) {
		lp := regexPipeline("team-b", "api", "", "", 0)
		if err := e.c.Delete(ctx, lp); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "team-b/api gone", func() (bool, string) {
			err := e.c.Get(ctx, client.ObjectKeyFromObject(lp), &v1alpha1.LogPipeline{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		// Its siblings are reconciled again (the namespace's pipeline count changed) without error.
		e.waitCondition(t, "team-b", "broken", v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid)
		if n := testutil.ToFloat64(counterWith(t, a.reg, "logrouter_controller_reconciles_total", "error")); n != 0 {
			t.Errorf("%v reconciles failed", n)
		}
	})

	t.Run("leader election: one leads, the other takes over when it stops", func(t *testing.T) {
		select {
		case <-a.c.Elected():
		case <-time.After(time.Minute):
			t.Fatal("the first controller was never elected")
		}
		b := e.start(t, 50*time.Millisecond)
		// While a holds the Lease, b does not lead: a pipeline created now is reconciled by a.
		e.create(t, regexPipeline("team-b", "while-a", goodRegex, "", 0))
		e.waitCondition(t, "team-b", "while-a", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		select {
		case <-b.c.Elected():
			t.Fatal("the second controller leads while the first holds the Lease")
		default:
		}
		if n := testutil.ToFloat64(counterWith(t, b.reg, "logrouter_controller_reconciles_total", "ok")); n != 0 {
			t.Errorf("the standby reconciled %v pipelines", n)
		}
		holder := func() string {
			var l coordinationv1.Lease
			if err := e.c.Get(ctx, types.NamespacedName{Namespace: "default", Name: DefaultConfig().LeaderElectionID}, &l); err != nil {
				t.Fatal(err)
			}
			return ptr.Deref(l.Spec.HolderIdentity, "")
		}
		first := holder()
		if first == "" {
			t.Fatal("no Lease holder while a leads")
		}
		a.stop(t)
		select {
		case <-b.c.Elected():
		case <-time.After(time.Minute):
			t.Fatal("the second controller did not take over")
		}
		if now := holder(); now == first || now == "" {
			t.Errorf("Lease holder %q after the takeover, was %q", now, first)
		}
		e.create(t, regexPipeline("team-b", "after-a", badRegex, "", 0))
		e.waitCondition(t, "team-b", "after-a", v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid)

		// The suite's small version of the scale benchmark (BenchmarkControllerScale): every
		// pipeline of many namespaces is reconciled by the new leader.
		const namespaces, pipelines = 80, 200
		objs := scaleObjects("scale", namespaces, pipelines)
		e.createMany(t, objs)
		for _, o := range objs {
			if lp, ok := o.(*v1alpha1.LogPipeline); ok {
				e.waitCondition(t, lp.Namespace, lp.Name, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid)
			}
		}
	})
}

// counterWith returns the child of a counter vector registered in reg.
func counterWith(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					v += m.GetCounter().GetValue()
				}
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	c.Add(v)
	return c
}

// grantControllerRBAC gives controllerUser the permissions of docs/controller.md's RBAC table.
func grantControllerRBAC(t testing.TB, c client.Client) {
	t.Helper()
	ctx := context.Background()
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: controllerUser}}
	objs := []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: controllerUser}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"logrouter.io"}, Resources: []string{"logpipelines", "logrouterpolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"logrouter.io"}, Resources: []string{"logpipelines/status", "logrouterpolicies/status"}, Verbs: []string{"patch"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"events.k8s.io", ""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			// Kafka access: the Secret logrouter-kafka of each opted-in namespace (create cannot be
			// limited by name).
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{KafkaSecretName}, Verbs: []string{"get", "update", "delete"}},
		}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: controllerUser}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: controllerUser}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: controllerUser}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: controllerUser}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: controllerUser}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("RBAC %T: %v", o, err)
		}
	}
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // the controllers under test log through slog
	os.Exit(m.Run())
}

// staticCounts is a collector whose pipelines all exist and count what the map says.
type staticCounts map[counters.Key]counters.Counts

func (s staticCounts) Totals() map[counters.Key]counters.Counts { return s }
func (s staticCounts) Exists(counters.Key) (bool, bool)         { return true, true }
func (s staticCounts) Forget(counters.Key)                      {}
