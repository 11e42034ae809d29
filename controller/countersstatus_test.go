package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// TestWriteCountersCreatesStatus: the fold's first write to a pipeline that has no status yet
// (its counters came before its first reconcile) writes the counters at once, against a real
// kube-apiserver, and a status written since the controller's read is never replaced.
func TestWriteCountersCreatesStatus(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	e.create(t,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-c"}},
		&v1alpha1.LogRouterPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName}},
		regexPipeline("team-c", "fresh", goodRegex, "", 0),
		regexPipeline("team-c", "again", goodRegex, "", 0),
		regexPipeline("team-c", "raced", goodRegex, "", 0),
	)
	// Built, not started: nothing reconciles, so no pipeline gets a status from the controller.
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = e.brokers
	cfg.LeaderElectionNamespace = "default"
	cfg.Counters.Interval = 50 * time.Millisecond
	c, err := New(cfg, e.rc, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	key := func(name string) (counters.Key, types.NamespacedName) {
		t.Helper()
		nn := types.NamespacedName{Namespace: "team-c", Name: name}
		var lp v1alpha1.LogPipeline
		if err := e.c.Get(ctx, nn, &lp); err != nil {
			t.Fatal(err)
		}
		return counters.Key{Namespace: "team-c", Pipeline: name, UID: string(lp.UID)}, nn
	}
	// noStatus fails the test unless the object the API server has holds no status at all
	// (what makes the plain add of /status/counters fail).
	noStatus := func(nn types.NamespacedName) *unstructured.Unstructured {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("LogPipeline"))
		if err := e.c.Get(ctx, nn, u); err != nil {
			t.Fatal(err)
		}
		if s, has := u.Object["status"]; has {
			t.Fatalf("%s has a status already: %v", nn, s)
		}
		return u
	}
	want := counters.Counts{Selected: 9, Emitted: 7, Dropped: 1, SampledOut: 1, Throttled: 3, ParseFailures: 2}
	countersOf := func(nn types.NamespacedName) (*v1alpha1.LogPipeline, counters.Counts) {
		t.Helper()
		var lp v1alpha1.LogPipeline
		if err := e.c.Get(ctx, nn, &lp); err != nil {
			t.Fatal(err)
		}
		s := lp.Status.Counters
		if s == nil {
			return &lp, counters.Counts{}
		}
		return &lp, counters.Counts{Selected: s.Selected, Emitted: s.Emitted, Dropped: s.Dropped, SampledOut: s.SampledOut,
			Throttled: s.Throttled, LimitDropped: s.LimitDropped, ParseFailures: s.ParseFailures, Panicked: s.Panicked}
	}

	t.Run("the first write creates the status", func(t *testing.T) {
		k, nn := key("fresh")
		noStatus(nn)
		if err := c.writeCounters(ctx, k, want, time.Now()); err != nil {
			t.Fatalf("first write: %v", err)
		}
		lp, got := countersOf(nn)
		if got != want || lp.Status.Counters.UpdatedAt.IsZero() {
			t.Errorf("status.counters %+v, want %+v with updatedAt", lp.Status.Counters, want)
		}
		// And the next write is the plain add into that status.
		want2 := want
		want2.Selected, want2.Emitted = 10, 8
		if err := c.writeCounters(ctx, k, want2, time.Now()); err != nil {
			t.Fatalf("second write: %v", err)
		}
		if _, got := countersOf(nn); got != want2 {
			t.Errorf("after the second write %+v, want %+v", got, want2)
		}
	})

	t.Run("no status, the name taken by another object: gone, nothing written", func(t *testing.T) {
		old, nn := key("again")
		if err := e.c.Delete(ctx, &v1alpha1.LogPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "team-c/again gone", func() (bool, string) {
			err := e.c.Get(ctx, nn, &v1alpha1.LogPipeline{})
			return apierrors.IsNotFound(err), ""
		})
		if err := c.writeCounters(ctx, old, want, time.Now()); !errors.Is(err, counters.ErrGone) {
			t.Errorf("writing a deleted pipeline's counters: %v, want ErrGone", err)
		}
		e.create(t, regexPipeline("team-c", "again", goodRegex, "", 0))
		if cur, _ := key("again"); cur.UID == old.UID {
			t.Fatal("the API server gave the new object the old UID")
		}
		if err := c.writeCounters(ctx, old, want, time.Now()); !errors.Is(err, counters.ErrGone) {
			t.Errorf("writing the old object's counters: %v, want ErrGone", err)
		}
		noStatus(nn)
	})

	t.Run("a status written since the read is not replaced", func(t *testing.T) {
		k, nn := key("raced")
		stale := noStatus(nn).GetResourceVersion()
		// What the reconciler does meanwhile: it writes the conditions.
		var lp v1alpha1.LogPipeline
		if err := e.c.Get(ctx, nn, &lp); err != nil {
			t.Fatal(err)
		}
		next := lp.DeepCopy()
		meta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonValid, Message: "written meanwhile", ObservedGeneration: lp.Generation, LastTransitionTime: metav1.Now()})
		if err := e.c.Status().Patch(ctx, next, client.MergeFrom(&lp)); err != nil {
			t.Fatal(err)
		}
		// The patch writeCounters creates a status with, made from the read before that write.
		err := c.patchStatus(ctx, nn, statusOp("test", "/metadata/uid", k.UID),
			statusOp("test", "/metadata/resourceVersion", stale),
			statusOp("add", "/status", map[string]any{"counters": v1alpha1.Counters{Selected: 1, UpdatedAt: metav1.Now()}}))
		if !apierrors.IsInvalid(err) {
			t.Errorf("creating the status from a stale read: %v, want Invalid (a failed test)", err)
		}
		got, n := countersOf(nn)
		if meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted) == nil || n != (counters.Counts{}) {
			t.Fatalf("status after the refused patch: %+v", got.Status)
		}
		// writeCounters itself adds to the status that is there.
		if err := c.writeCounters(ctx, k, want, time.Now()); err != nil {
			t.Fatal(err)
		}
		got, n = countersOf(nn)
		if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted); c == nil || c.Message != "written meanwhile" || n != want {
			t.Errorf("status %+v, want the condition kept and counters %+v", got.Status, want)
		}
	})

	t.Run("the first reconcile keeps the counters", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controller: %v", err)
			}
		}()
		lp := e.waitCondition(t, "team-c", "fresh", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
		if c := lp.Status.Counters; c == nil || c.Selected != 10 || c.Emitted != 8 {
			t.Errorf("counters after the reconcile: %+v, want those written before it", c)
		}
	})
}
