package source

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/logrouter/logrouter/deploy/crds"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// installCRDs installs deploy/crds and waits until the server serves them.
func installCRDs(t *testing.T, srv *kubeapiserver.Server) {
	t.Helper()
	if err := crds.Install(context.Background(), srv.Config); err != nil {
		t.Fatalf("install CRDs: %v", err)
	}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// startKube runs a Kube source until the test ends; after (nil: the real delay) ends each
// coalescing wait.
func startKube(t *testing.T, dc dynamic.Interface, after func() <-chan time.Time) (*Kube, *recorder, *syncbuf.Buffer) {
	t.Helper()
	rec, logs := newRecorder(), &syncbuf.Buffer{}
	k, err := NewKube(DefaultKubeConfig(), dc, rec, prometheus.NewRegistry(), testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	k.after = after
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return k, rec, logs
}

func regexSpec(pattern string) v1alpha1.LogPipelineSpec {
	return v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{Regex: &v1alpha1.RegexStep{Pattern: pattern}}}}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured) *v1alpha1.LogPipeline {
	t.Helper()
	var p v1alpha1.LogPipeline
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// Against the real kube-apiserver with the CRDs of deploy/crds: a collector-side source that
// starts after an update made a pipeline invalid runs the status.accepted.spec the controller
// wrote (it never saw that version); a pipeline invalid without an accepted version does not
// run; later changes (a fix, a delete, a burst) reach the collector, a burst as one apply.
func TestKubeSourceLastKnownGood(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	dc, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, srv)
	kc := srv.Client(t)
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res := func(ns string) dynamic.ResourceInterface { return dc.Resource(v1alpha1.LogPipelines).Namespace(ns) }
	create := func(ns, name string, spec v1alpha1.LogPipelineSpec) *v1alpha1.LogPipeline {
		t.Helper()
		p := &v1alpha1.LogPipeline{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "LogPipeline"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		u, err := res(ns).Create(ctx, toUnstructured(t, p), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s/%s: %v", ns, name, err)
		}
		return fromUnstructured(t, u)
	}

	// team-a/access: valid at generation 1, accepted by "the controller", then made invalid.
	a := create("team-a", "access", regexSpec(validRegex))
	a.Status.Accepted = &v1alpha1.AcceptedSpec{Generation: a.Generation, Spec: a.Spec}
	u, err := res("team-a").UpdateStatus(ctx, toUnstructured(t, a), metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("write status.accepted: %v", err)
	}
	a = fromUnstructured(t, u)
	a.Spec = regexSpec(`(?P<x>[a-z`) // the API server cannot know RE2: it accepts this
	u, err = res("team-a").Update(ctx, toUnstructured(t, a), metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("invalid update: %v", err)
	}
	if a = fromUnstructured(t, u); a.Generation != 2 {
		t.Fatalf("generation %d after the update, want 2", a.Generation)
	}
	create("team-b", "web", regexSpec(validRegex))
	create("team-c", "broken", regexSpec(`(?P<x>[a-z`)) // never valid

	fire := make(chan time.Time)
	k, rec, _ := startKube(t, dc, func() <-chan time.Time { return fire })

	st := rec.waitCount(t, 1)
	if p := running(st, "team-a", "access"); p == nil || p.Generation != 1 {
		t.Fatalf("team-a/access: want the accepted generation 1 running: %s", describe(st))
	}
	if p := running(st, "team-b", "web"); p == nil || p.Generation != 1 {
		t.Fatalf("team-b/web: want generation 1: %s", describe(st))
	}
	if st.Namespaces["team-c"] != nil {
		t.Fatalf("team-c/broken has no valid version and must not run: %s", describe(st))
	}
	if v := testutil.ToFloat64(k.m.pipelines.WithLabelValues("previous")); v != 1 {
		t.Errorf("pipelines{state=previous} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(k.m.pipelines.WithLabelValues("not_running")); v != 1 {
		t.Errorf("pipelines{state=not_running} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(k.m.invalid.WithLabelValues("team-a", "access")); v != 1 {
		t.Errorf("invalid_total{team-a,access} = %v, want 1", v)
	}

	// A burst: the fix of team-a, the delete of team-b and 10 new pipelines are one apply.
	a.Spec = regexSpec(`(?P<verb>[A-Z]+)`)
	if _, err := res("team-a").Update(ctx, toUnstructured(t, a), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := res("team-b").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		create("team-c", fmt.Sprintf("p%d", i), regexSpec(validRegex))
	}
	// Wait until the source's informer holds all of it, then let the coalescing wait end.
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		objs := k.pl.GetStore().List()
		gen3, webGone := false, true
		for _, o := range objs {
			u := o.(*unstructured.Unstructured)
			if u.GetNamespace() == "team-a" && u.GetGeneration() == 3 {
				gen3 = true
			}
			if u.GetNamespace() == "team-b" {
				webGone = false
			}
		}
		return gen3 && webGone && len(objs) == 12, nil
	})
	if err != nil {
		t.Fatalf("the informer did not see the burst: %v", err)
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("%d applies before the coalescing wait ended, want 1", n)
	}
	fire <- time.Now()
	st = rec.waitCount(t, 2)
	if p := running(st, "team-a", "access"); p == nil || p.Generation != 3 {
		t.Errorf("team-a/access: want generation 3 after the fix: %s", describe(st))
	}
	if st.Namespaces["team-b"] != nil {
		t.Errorf("team-b/web was deleted and still runs: %s", describe(st))
	}
	if set := st.Namespaces["team-c"]; set == nil || len(set.Pipelines) != 10 {
		t.Errorf("team-c: want its 10 valid pipelines (of 11; the default policy allows 10): %s", describe(st))
	}
	if n := rec.count(); n != 2 {
		t.Errorf("%d applies, want 2", n)
	}
}

// Without the CRDs no pipeline can exist: the source applies the empty state at once (the
// collector's files need not wait), and picks pipelines up once the CRDs are installed.
func TestKubeSourceWithoutCRDs(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	dc, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, rec, logs := startKube(t, dc, nil)
	if st := rec.waitCount(t, 1); len(st.Namespaces) != 0 {
		t.Fatalf("want the empty state: %s", describe(st))
	}
	if !strings.Contains(logs.String(), "CRD is not installed") {
		t.Errorf("the log does not say the CRD is missing:\n%s", logs.String())
	}
	installCRDs(t, srv)
	if _, err := srv.Client(t).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.LogPipeline{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "LogPipeline"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"}, Spec: regexSpec(validRegex)}
	if _, err := dc.Resource(v1alpha1.LogPipelines).Namespace("team-a").Create(ctx, toUnstructured(t, p), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "team-a/web", func(s *pipeline.State) bool { return running(s, "team-a", "web") != nil })
}
