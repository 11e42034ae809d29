package router

import (
	"testing"

	"github.com/logrouter/logrouter/pipeline"
)

// TestApply: each namespace's Set is swapped on its own state object; an unchanged Set (same
// compiled pipelines, even in a new *Set) keeps the running one; a Set filed under another
// namespace is refused; namespaces absent from the state lose their pipelines; namespaces first
// seen after the apply get theirs.
func TestApply(t *testing.T) {
	c := newTestCollector(t)
	pa := &pipeline.Pipeline{Namespace: "a", Name: "p"}
	pb := &pipeline.Pipeline{Namespace: "b", Name: "p"}
	a, b := c.namespace("a"), c.namespace("b")
	setA := pipeline.NewSet("a", []*pipeline.Pipeline{pa})
	c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": setA, "b": pipeline.NewSet("b", []*pipeline.Pipeline{pb})}})
	if a.set.Load() != setA || b.set.Load() == nil {
		t.Fatal("sets not applied")
	}
	select {
	case <-c.applied:
	default:
		t.Fatal("first apply did not open the gate")
	}
	// a: the same pipelines in a new Set object; b: absent; x: refused (b's set filed as x);
	// late: applied before any file of it exists.
	setB := b.set.Load()
	late := pipeline.NewSet("late", []*pipeline.Pipeline{{Namespace: "late", Name: "q"}})
	c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{
		"a": pipeline.NewSet("a", []*pipeline.Pipeline{pa}), "x": setB, "late": late}})
	if a.set.Load() != setA {
		t.Error("an unchanged set was swapped")
	}
	if b.set.Load() != nil {
		t.Error("a namespace absent from the state kept its pipelines")
	}
	if x := c.namespace("x"); x.set.Load() != nil {
		t.Error("a set of namespace b ran for namespace x")
	}
	if got := c.namespace("late").set.Load(); got != late {
		t.Error("a namespace first seen after the apply did not get its set")
	}
	pa2 := &pipeline.Pipeline{Namespace: "a", Name: "p", Generation: 2}
	c.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"a": pipeline.NewSet("a", []*pipeline.Pipeline{pa2})}})
	if got := a.set.Load(); got == setA || got.Pipelines[0] != pa2 {
		t.Error("a changed pipeline was not swapped in")
	}
}
