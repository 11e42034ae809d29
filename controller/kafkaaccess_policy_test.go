package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// TestStatusWritesKeepTheCompiledPolicy: the Kafka access controller writes the policy's
// status once per namespace change; that must not recompile the policy (which drops every
// pipeline's compile cache), only a new generation of the spec does.
func TestStatusWritesKeepTheCompiledPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, &v1alpha1.LogRouterPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName, Generation: 1},
		Spec: v1alpha1.LogRouterPolicySpec{AllowedSuffixes: []string{"debug"}}})
	get := func() *v1alpha1.LogRouterPolicy {
		var p v1alpha1.LogRouterPolicy
		if err := f.c.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	p1, err := f.r.currentPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		cur := get()
		next := cur.DeepCopy()
		n := int32(len(ns))
		next.Status.KafkaAccessSummary = &v1alpha1.KafkaAccessSummary{Provisioned: n}
		if err := f.c.Status().Patch(ctx, next, client.MergeFrom(cur)); err != nil {
			t.Fatal(err)
		}
		if get().ResourceVersion == cur.ResourceVersion {
			t.Fatal("the status write did not change the resourceVersion: the test shows nothing")
		}
		if p, _ := f.r.currentPolicy(ctx); p != p1 {
			t.Fatalf("a status write (kafkaAccessSummary after %s) recompiled the policy", ns)
		}
	}
	cur := get()
	cur.Spec.AllowedSuffixes = []string{"debug", "audit"}
	cur.Generation = 2
	if err := f.c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.r.currentPolicy(ctx); p == p1 || len(p.Spec.AllowedSuffixes) != 2 {
		t.Error("a new generation of the spec was not compiled")
	}
}
