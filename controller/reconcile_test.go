package controller

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kafka starts kfake and returns an admin client on it.
func kafka(t testing.TB) (*kadm.Client, []kgo.Opt) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl), opts
}

// regexPipeline is a pipeline with one regex step (valid or not) and an output suffix.
func regexPipeline(ns, name, pattern, suffix string, gen int64) *v1alpha1.LogPipeline {
	return &v1alpha1.LogPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: gen},
		Spec: v1alpha1.LogPipelineSpec{
			Steps:  []v1alpha1.Step{{Regex: &v1alpha1.RegexStep{Pattern: pattern}}},
			Output: v1alpha1.Output{Suffix: suffix},
		},
	}
}

const (
	goodRegex = `^(?P<level>[a-z]+) `
	badRegex  = `(?P<x>[a-z`
)

type fixture struct {
	t   *testing.T
	c   client.Client
	r   *reconciler
	ev  *events.FakeRecorder
	adm *kadm.Client
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&v1alpha1.LogPipeline{}, &v1alpha1.LogRouterPolicy{}).Build()
	adm, _ := kafka(t)
	ev := events.NewFakeRecorder(100)
	tmpl, _ := topic.Parse(topic.DefaultTemplate)
	r := &reconciler{c: c, events: ev, prov: NewProvisioner(adm, 10*time.Second), tmpl: tmpl,
		m: newMetrics(prometheus.NewRegistry()), log: discard(), now: time.Now}
	return &fixture{t: t, c: c, r: r, ev: ev, adm: adm}
}

func (f *fixture) reconcile(ns, name string) ctrl.Result {
	f.t.Helper()
	res, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		f.t.Fatalf("reconcile %s/%s: %v", ns, name, err)
	}
	return res
}

func (f *fixture) get(ns, name string) *v1alpha1.LogPipeline {
	f.t.Helper()
	var lp v1alpha1.LogPipeline
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &lp); err != nil {
		f.t.Fatal(err)
	}
	return &lp
}

// conditionIs checks a condition's status, reason and (substring of the) message.
func conditionIs(t *testing.T, lp *v1alpha1.LogPipeline, typ string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	c := meta.FindStatusCondition(lp.Status.Conditions, typ)
	if c == nil {
		t.Errorf("%s/%s: no %s condition (status %+v)", lp.Namespace, lp.Name, typ, lp.Status)
		return
	}
	if c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != lp.Generation {
		t.Errorf("%s/%s %s = %s/%s %q (gen %d), want %s/%s containing %q (gen %d)", lp.Namespace, lp.Name, typ,
			c.Status, c.Reason, c.Message, c.ObservedGeneration, status, reason, msg, lp.Generation)
	}
}

func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-f.ev.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func ns(name string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}

func policy(spec v1alpha1.LogRouterPolicySpec) *v1alpha1.LogRouterPolicy {
	return &v1alpha1.LogRouterPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName, Generation: 1}, Spec: spec}
}

func TestReconcileValidation(t *testing.T) {
	f := newFixture(t,
		ns("team-a", nil), ns("team-b", nil),
		policy(v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug"}}),
		regexPipeline("team-a", "web", goodRegex, "", 1),
		regexPipeline("team-a", "debug", goodRegex, "debug", 1),
		regexPipeline("team-a", "audit", goodRegex, "audit", 1),
		regexPipeline("team-b", "broken", badRegex, "", 1),
	)
	for _, p := range [][2]string{{"team-a", "web"}, {"team-a", "debug"}, {"team-a", "audit"}, {"team-b", "broken"}} {
		f.reconcile(p[0], p[1])
	}

	web := f.get("team-a", "web")
	conditionIs(t, web, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid, "generation 1 is valid")
	conditionIs(t, web, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "topics logs.team-a ready")
	if web.Status.Accepted == nil || web.Status.Accepted.Generation != 1 || web.Status.ObservedGeneration != 1 {
		t.Errorf("web: accepted %+v observed %d", web.Status.Accepted, web.Status.ObservedGeneration)
	}
	conditionIs(t, f.get("team-a", "debug"), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "logs.team-a.debug")

	audit := f.get("team-a", "audit")
	conditionIs(t, audit, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid,
		`output.suffix: "audit" is not allowed by the LogRouterPolicy`)
	conditionIs(t, audit, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalid, "not running")
	if audit.Status.Accepted != nil {
		t.Errorf("invalid pipeline got accepted %+v", audit.Status.Accepted)
	}

	broken := f.get("team-b", "broken")
	conditionIs(t, broken, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid, `steps[0].regex.pattern: missing closing ]`)
	// The messages are exactly Compile's (joined) errors.
	pol, err := pipeline.CompilePolicy(&v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, lp := range []*v1alpha1.LogPipeline{broken, audit} {
		_, cerr := pipeline.Compile(lp.Namespace, lp.Name, lp.Generation, &lp.Spec, pol)
		if c := meta.FindStatusCondition(lp.Status.Conditions, v1alpha1.ConditionAccepted); cerr == nil || c.Message != cerr.Error() {
			t.Errorf("%s: Accepted message %q, Compile says %v", lp.Name, c.Message, cerr)
		}
	}

	topics, err := f.adm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"logs.team-a", "logs.team-a.debug"} {
		if !topics.Has(want) {
			t.Errorf("topic %s not created (have %v)", want, topics.Names())
		}
	}
	for _, not := range []string{"logs.team-a.audit", "logs.team-b"} {
		if topics.Has(not) {
			t.Errorf("topic %s of an invalid pipeline was created", not)
		}
	}

	// Events: one per pipeline whose conditions changed, except new pipelines that run (web,
	// debug); a reconcile that changes nothing records none.
	evs := f.drainEvents()
	if len(evs) != 2 || !slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, "Warning Invalid") && strings.Contains(e, "audit") }) {
		t.Errorf("events after the first reconciles = %q, want 2 Warning Invalid", evs)
	}
	writes := testutil.ToFloat64(f.r.m.statusWrites)
	rv := f.get("team-a", "web").ResourceVersion
	for _, p := range [][2]string{{"team-a", "web"}, {"team-a", "audit"}, {"team-b", "broken"}} {
		f.reconcile(p[0], p[1])
	}
	if got := testutil.ToFloat64(f.r.m.statusWrites); got != writes {
		t.Errorf("unchanged pipelines: %v more status writes", got-writes)
	}
	if got := f.get("team-a", "web").ResourceVersion; got != rv {
		t.Errorf("unchanged pipeline written: resourceVersion %s -> %s", rv, got)
	}
	if evs := f.drainEvents(); len(evs) != 0 {
		t.Errorf("unchanged pipelines: events %q", evs)
	}

	// The policy changes: its pipelines are validated again under it (nothing cached from the
	// old policy applies).
	var pol2 v1alpha1.LogRouterPolicy
	if err := f.c.Get(context.Background(), types.NamespacedName{Name: v1alpha1.PolicyName}, &pol2); err != nil {
		t.Fatal(err)
	}
	pol2.Spec.AllowedSuffixes = []string{"audit"}
	if err := f.c.Update(context.Background(), &pol2); err != nil {
		t.Fatal(err)
	}
	f.reconcile("team-a", "audit")
	f.reconcile("team-a", "debug")
	evs = f.drainEvents()
	if len(evs) != 2 || !strings.HasPrefix(evs[0], "Normal Valid") || !strings.HasPrefix(evs[1], "Warning Invalid") {
		t.Errorf("events after the policy change = %q, want Normal Valid (audit) and Warning Invalid (debug)", evs)
	}
	conditionIs(t, f.get("team-a", "audit"), v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid, "")
	conditionIs(t, f.get("team-a", "debug"), v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid, `output.suffix: "debug" is not allowed`)
	// debug's accepted generation is the same spec: not valid under the new policy either.
	conditionIs(t, f.get("team-a", "debug"), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalid, "not running")
}

func TestReconcileLastKnownGood(t *testing.T) {
	f := newFixture(t, ns("team-a", nil), regexPipeline("team-a", "web", goodRegex, "", 1))
	f.reconcile("team-a", "web")
	lp := f.get("team-a", "web")
	good := lp.Spec.DeepCopy()

	// An invalid update: generation 2.
	lp.Spec.Steps[0].Regex.Pattern = badRegex
	lp.Generation = 2
	if err := f.c.Update(context.Background(), lp); err != nil {
		t.Fatal(err)
	}
	f.drainEvents()
	f.reconcile("team-a", "web")
	lp = f.get("team-a", "web")
	conditionIs(t, lp, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid, "steps[0].regex.pattern: ")
	conditionIs(t, lp, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRunningPrevious, "generation 1 runs; generation 2 is invalid")
	if a := lp.Status.Accepted; a == nil || a.Generation != 1 || a.Spec.Steps[0].Regex.Pattern != good.Steps[0].Regex.Pattern {
		t.Errorf("accepted after an invalid update = %+v, want generation 1 with the good spec", a)
	}
	if lp.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration = %d", lp.Status.ObservedGeneration)
	}
	evs := f.drainEvents()
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning Invalid") || !strings.Contains(evs[0], "Ready=True: generation 1 runs") {
		t.Errorf("events = %q, want one Warning Invalid saying generation 1 runs", evs)
	}

	// Fixed again: generation 3 becomes the accepted one.
	lp.Spec.Steps[0].Regex.Pattern = `(?P<rest>.*)`
	lp.Generation = 3
	if err := f.c.Update(context.Background(), lp); err != nil {
		t.Fatal(err)
	}
	f.reconcile("team-a", "web")
	lp = f.get("team-a", "web")
	conditionIs(t, lp, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "generation 3 runs")
	if a := lp.Status.Accepted; a == nil || a.Generation != 3 {
		t.Errorf("accepted = %+v, want generation 3", a)
	}

	// Deleted: nothing to do, no error.
	if err := f.c.Delete(context.Background(), lp); err != nil {
		t.Fatal(err)
	}
	f.reconcile("team-a", "web")
}

func TestReconcileMaxPipelines(t *testing.T) {
	now := time.Now()
	var objs []client.Object
	objs = append(objs, ns("team-a", nil), policy(v1alpha1.LogRouterPolicySpec{MaxPipelinesPerNamespace: 2}))
	// Created in the order c, a, b: c and a are the oldest and run, b (not last by name) does not.
	for i, name := range []string{"c", "a", "b"} {
		p := regexPipeline("team-a", name, goodRegex, "", 1)
		p.CreationTimestamp = metav1.NewTime(now.Add(time.Duration(i) * time.Second))
		objs = append(objs, p)
	}
	f := newFixture(t, objs...)
	for _, n := range []string{"a", "b", "c"} {
		f.reconcile("team-a", n)
	}
	conditionIs(t, f.get("team-a", "c"), v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid, "")
	conditionIs(t, f.get("team-a", "a"), v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid, "")
	b := f.get("team-a", "b")
	conditionIs(t, b, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonOverLimit, "namespace team-a has 3 pipelines and the LogRouterPolicy allows 2")
	conditionIs(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonOverLimit, "not running")
}

func TestReconcileTopics(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t,
		ns("fresh", map[string]string{"logrouter.io/retention": "2d"}),
		ns("old", nil),
		ns("blocked", nil),
		ns("badret", map[string]string{"logrouter.io/retention": "forever"}),
		ns("ok", nil),
		policy(v1alpha1.LogRouterPolicySpec{Topics: v1alpha1.Topics{Partitions: 3, Retention: &metav1.Duration{Duration: 24 * time.Hour}}}),
		regexPipeline("fresh", "p", goodRegex, "", 1),
		regexPipeline("old", "p", goodRegex, "", 1),
		regexPipeline("blocked", "p", goodRegex, "", 1),
		regexPipeline("badret", "p", goodRegex, "", 1),
		regexPipeline("ok", "p", goodRegex, "", 1),
	)
	// The world as it is: a topic someone created with Kafka's defaults (1 partition, no
	// retention.ms), and one whose name collides with logs.blocked ('.' and '_' collide in
	// Kafka), so that creating logs.blocked fails.
	if _, err := f.adm.CreateTopic(ctx, 1, -1, nil, "logs.old"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.adm.CreateTopic(ctx, 1, -1, nil, "logs_blocked"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"fresh", "old", "blocked", "badret", "ok"} {
		res := f.reconcile(n, "p")
		if (n == "blocked" || n == "badret") != (res.RequeueAfter > 0) {
			t.Errorf("%s: requeue after %v", n, res.RequeueAfter)
		}
	}
	td, err := f.adm.ListTopics(ctx, "logs.fresh", "logs.old", "logs.ok")
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{"logs.fresh", "logs.old", "logs.ok"} {
		if n := len(td[tp].Partitions); n != 3 {
			t.Errorf("%s has %d partitions, want 3", tp, n)
		}
	}
	rcs, err := f.adm.DescribeTopicConfigs(ctx, "logs.fresh", "logs.old")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"logs.fresh": "172800000", "logs.old": "86400000"}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.MaybeValue() != want[rc.Name] {
				t.Errorf("%s retention.ms = %s, want %s", rc.Name, c.MaybeValue(), want[rc.Name])
			}
		}
	}
	conditionIs(t, f.get("blocked", "p"), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTopicFailed, "create topic logs.blocked: INVALID_TOPIC_EXCEPTION")
	conditionIs(t, f.get("blocked", "p"), v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonValid, "")
	conditionIs(t, f.get("badret", "p"), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTopicFailed, `annotation logrouter.io/retention="forever"`)
	for _, n := range []string{"fresh", "old", "ok"} {
		conditionIs(t, f.get(n, "p"), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "")
	}
	if got := testutil.ToFloat64(f.r.m.topicErrors); got != 1 {
		t.Errorf("topic errors = %v, want 1", got)
	}

	// The obstacle removed, the retry succeeds.
	if _, err := f.adm.DeleteTopic(ctx, "logs_blocked"); err != nil {
		t.Fatal(err)
	}
	if res := f.reconcile("blocked", "p"); res.RequeueAfter != 0 {
		t.Errorf("requeue after a success: %v", res.RequeueAfter)
	}
	conditionIs(t, f.get("blocked", "p"), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "")
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {100, 5 * time.Minute}} {
		if got := backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestEnsureCompacted(t *testing.T) {
	ctx := context.Background()
	adm, _ := kafka(t)
	p := NewProvisioner(adm, 10*time.Second)
	// Pre-created with Kafka's default cleanup.policy (delete): altered to compact.
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and idempotent
		if err := p.EnsureCompacted(ctx, topic.CountersTopic); err != nil {
			t.Fatal(err)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic.CountersTopic)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rcs[0].Configs {
		if c.Key == "cleanup.policy" {
			found = c.MaybeValue() == "compact"
		}
	}
	if !found {
		t.Errorf("cleanup.policy not compact: %+v", rcs[0].Configs)
	}
}

// TestStatusDocExample: docs/controller.md's status example is what the controller writes for
// a generation 4 with that pattern after a valid generation 3 (counters apart: the fold's).
func TestStatusDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/controller.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "```yaml\nstatus:")
	if start < 0 {
		t.Fatal("no status example in docs/controller.md")
	}
	block := text[start+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	var want v1alpha1.LogPipeline
	if err := yaml.UnmarshalStrict([]byte(block), &want); err != nil {
		t.Fatalf("the example does not decode strictly: %v", err)
	}
	acc := want.Status.Accepted
	if acc == nil {
		t.Fatal("example without accepted")
	}
	bad := meta.FindStatusCondition(want.Status.Conditions, v1alpha1.ConditionAccepted)
	// The message ends with the quoted pattern.
	pattern, err := strconv.Unquote(bad.Message[strings.LastIndex(bad.Message, `: "`)+2:])
	if err != nil {
		t.Fatalf("the example's message does not end with a quoted pattern: %v", err)
	}

	lp := &v1alpha1.LogPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", Generation: acc.Generation}, Spec: *acc.Spec.DeepCopy()}
	f := newFixture(t, ns("team-a", nil), lp)
	f.reconcile("team-a", "web")
	got := f.get("team-a", "web")
	got.Spec.Steps = []v1alpha1.Step{{Regex: &v1alpha1.RegexStep{Pattern: pattern}}}
	got.Generation = want.Status.ObservedGeneration
	if err := f.c.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	f.reconcile("team-a", "web")
	got = f.get("team-a", "web")
	if got.Status.ObservedGeneration != want.Status.ObservedGeneration || !equality.Semantic.DeepEqual(got.Status.Accepted, want.Status.Accepted) {
		t.Errorf("status %+v, documented %+v", got.Status, want.Status)
	}
	for _, w := range want.Status.Conditions {
		c := meta.FindStatusCondition(got.Status.Conditions, w.Type)
		if c == nil || c.Status != w.Status || c.Reason != w.Reason || c.Message != w.Message || c.ObservedGeneration != w.ObservedGeneration {
			t.Errorf("%s: the controller writes %+v, docs/controller.md shows %+v", w.Type, c, w)
		}
	}
}

// TestProvisionerPerNamespace: a namespace whose Kafka calls are in progress (here: its lock
// held, as by a call that hangs) does not delay another namespace's.
func TestProvisionerPerNamespace(t *testing.T) {
	adm, _ := kafka(t)
	p := NewProvisioner(adm, 10*time.Second)
	slow := p.state("slow")
	slow.mu.Lock()
	defer slow.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := p.Ensure(context.Background(), "fast", []string{"logs.fast"}, TopicSpec{Partitions: 2})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("namespace fast waited for namespace slow")
	}
	td, err := adm.ListTopics(kadm.WithAuthorizedOps(context.Background()), "logs.fast")
	if err != nil || len(td["logs.fast"].Partitions) != 2 {
		t.Errorf("logs.fast: %+v %v", td, err)
	}
}
