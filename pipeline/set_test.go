package pipeline

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func compileSel(t *testing.T, name string, sel v1alpha1.Selector) *Pipeline {
	t.Helper()
	p, err := Compile("team-a", name, 1, &v1alpha1.LogPipelineSpec{Selector: sel}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelects(t *testing.T) {
	web := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	notWeb := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	webMeta := &Meta{Container: "app", Labels: map[string]string{"app": "web"}}
	noLabels := &Meta{Container: "app", Labels: map[string]string{}}
	pathOnly := &Meta{Container: "app"}
	tests := []struct {
		name string
		sel  v1alpha1.Selector
		m    *Meta
		want bool
	}{
		{"empty selects all", v1alpha1.Selector{}, webMeta, true},
		{"empty selects path-only", v1alpha1.Selector{}, pathOnly, true},
		{"empty selects without meta", v1alpha1.Selector{}, nil, true},
		{"empty pod selector selects all", v1alpha1.Selector{Pods: &metav1.LabelSelector{}}, pathOnly, true},
		{"labels match", v1alpha1.Selector{Pods: web}, webMeta, true},
		{"labels differ", v1alpha1.Selector{Pods: web}, noLabels, false},
		{"pod selector, path-only: nothing", v1alpha1.Selector{Pods: notWeb}, pathOnly, false},
		{"pod selector, no meta: nothing", v1alpha1.Selector{Pods: notWeb}, nil, false},
		{"DoesNotExist on a pod without labels", v1alpha1.Selector{Pods: notWeb}, noLabels, true},
		{"container listed", v1alpha1.Selector{Containers: []string{"sidecar", "app"}}, webMeta, true},
		{"container not listed", v1alpha1.Selector{Containers: []string{"sidecar"}}, webMeta, false},
		{"container list, no meta", v1alpha1.Selector{Containers: []string{"app"}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compileSel(t, "p", tt.sel).Selects(tt.m); got != tt.want {
				t.Errorf("Selects = %v, want %v", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		streams []v1alpha1.Stream
		stream  string
		want    bool
	}{
		{nil, "stdout", true}, {nil, "stderr", true},
		{[]v1alpha1.Stream{"stderr"}, "stderr", true}, {[]v1alpha1.Stream{"stderr"}, "stdout", false},
		{[]v1alpha1.Stream{"stdout", "stderr"}, "stdout", true}, {[]v1alpha1.Stream{"stdout"}, "", false},
	} {
		if got := compileSel(t, "p", v1alpha1.Selector{Streams: tt.streams}).SelectsStream(tt.stream); got != tt.want {
			t.Errorf("streams %v: SelectsStream(%q) = %v", tt.streams, tt.stream, got)
		}
	}
}

// TestSetForFirstByName: when several pipelines select a line, the first by name wins,
// whatever order they were given in (DESIGN-9 decision 1).
func TestSetForFirstByName(t *testing.T) {
	web := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	all := compileSel(t, "b-all", v1alpha1.Selector{})
	webOnly := compileSel(t, "a-web", v1alpha1.Selector{Pods: web})
	stderr := compileSel(t, "0-stderr", v1alpha1.Selector{Streams: []v1alpha1.Stream{"stderr"}})
	in := []*Pipeline{all, webOnly, stderr}
	s := NewSet("team-a", in)
	if in[0] != all {
		t.Error("NewSet reordered its argument")
	}
	webMeta := &Meta{Labels: map[string]string{"app": "web"}}
	dbMeta := &Meta{Labels: map[string]string{"app": "db"}}
	for _, tt := range []struct {
		m      *Meta
		stream string
		want   *Pipeline
	}{
		{webMeta, "stdout", webOnly},
		{webMeta, "stderr", stderr},
		{dbMeta, "stdout", all},
		{dbMeta, "stderr", stderr},
		{nil, "stdout", all},
	} {
		if got := s.For(tt.m, tt.stream); got != tt.want {
			t.Errorf("For(%v, %s) = %s, want %s", tt.m, tt.stream, got.Name, tt.want.Name)
		}
	}
	var none *Set
	if none.For(webMeta, "stdout") != nil {
		t.Error("nil set selected a pipeline")
	}
	if NewSet("team-a", []*Pipeline{webOnly}).For(dbMeta, "stdout") != nil {
		t.Error("a line no pipeline selects got one")
	}
}
