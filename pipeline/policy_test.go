package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func TestPolicyFor(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	day := &metav1.Duration{Duration: 24 * time.Hour}
	spec := &v1alpha1.LogRouterPolicySpec{
		Namespaces: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "logs", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"off"}}}},
		Limits:     v1alpha1.Limits{LinesPerSecond: 1000, BytesPerSecond: q("1Mi")},
		Topics:     v1alpha1.Topics{Partitions: 3, Retention: day},
		Overrides: []v1alpha1.Override{
			{Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "big"}},
				Limits: &v1alpha1.Limits{LinesPerSecond: 5000, BurstLines: 20000, Action: v1alpha1.LimitDrop},
				Topics: &v1alpha1.Topics{Partitions: 12}},
			{Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "big", "short": "yes"}},
				Topics: &v1alpha1.Topics{Retention: hour}}, // never reached for tier=big: the first match wins
			{Namespaces: metav1.LabelSelector{MatchLabels: map[string]string{"short": "yes"}},
				Topics: &v1alpha1.Topics{Retention: hour}},
		},
	}
	p, err := CompilePolicy(spec)
	if err != nil {
		t.Fatal(err)
	}
	base := NamespacePolicy{Collected: true, Limits: Limits{LinesPerSecond: 1000, BurstLines: 1000, BytesPerSecond: 1 << 20, BurstBytes: 1 << 20}, Partitions: 3, Retention: 24 * time.Hour}
	big := NamespacePolicy{Collected: true, Limits: Limits{LinesPerSecond: 5000, BurstLines: 20000, Drop: true}, Partitions: 12, Retention: 24 * time.Hour}
	short := base
	short.Retention = time.Hour
	off := base
	off.Collected = false
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   NamespacePolicy
	}{
		{"base", map[string]string{}, base},
		{"unknown labels: base, collected", nil, base},
		{"excluded", map[string]string{"logs": "off"}, off},
		{"first override", map[string]string{"tier": "big", "short": "yes"}, big},
		{"third override", map[string]string{"short": "yes"}, short},
	} {
		if got := p.For("ns", tt.labels); got != tt.want {
			t.Errorf("%s: For = %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
	var none *Policy
	if got := none.For("ns", nil); got != (NamespacePolicy{Collected: true}) {
		t.Errorf("nil policy: %+v", got)
	}
	if none.MaxStepsPerPipeline() != 20 || none.MaxPipelinesPerNamespace() != 10 || none.AllowsSuffix("debug") || len(none.AllowedSuffixes()) != 0 {
		t.Error("nil policy: not the defaults (20 steps, 10 pipelines, no suffixes)")
	}
	if p, err := CompilePolicy(nil); p != nil || err != nil {
		t.Errorf("CompilePolicy(nil) = %v, %v; want the defaults (nil)", p, err)
	}
}

func TestPolicyBurstDefaults(t *testing.T) {
	p, err := CompilePolicy(&v1alpha1.LogRouterPolicySpec{Limits: v1alpha1.Limits{LinesPerSecond: 1, BytesPerSecond: q("1500"), BurstBytes: q("1k")}})
	if err != nil {
		t.Fatal(err)
	}
	l := p.For("ns", nil).Limits
	if l.BurstLines != 1 || l.BurstBytes != 1000 || l.BytesPerSecond != 1500 || l.Drop {
		t.Errorf("limits %+v", l)
	}
}

func TestCompilePolicyMessages(t *testing.T) {
	spec := &v1alpha1.LogRouterPolicySpec{
		Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}},
		Limits:     v1alpha1.Limits{LinesPerSecond: -1, BurstBytes: q("1Mi"), Action: "slow"},
		Topics:     v1alpha1.Topics{Partitions: 2000, Retention: &metav1.Duration{Duration: -time.Second}},
		Overrides: []v1alpha1.Override{
			{Limits: &v1alpha1.Limits{BurstLines: 5}},
		},
		MaxStepsPerPipeline:      65,
		MaxPipelinesPerNamespace: 1001,
		AllowedSuffixes:          []string{"debug", "a.b", "debug"},
	}
	_, err := CompilePolicy(spec)
	want := []string{
		`namespaces: key: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
		`limits.action: "slow": want throttle or drop`,
		`limits.linesPerSecond: -1: must not be negative`,
		`limits.burstBytes: burstBytes needs bytesPerSecond`,
		`topics.partitions: 2000: must be between 1 and 1000 (or unset: Kafka's default)`,
		`topics.retention: -1s: must be positive (or unset: Kafka's default)`,
		`overrides[0].limits.burstLines: burstLines needs linesPerSecond`,
		`maxStepsPerPipeline: 65: must be between 1 and 64`,
		`maxPipelinesPerNamespace: 1001: must be between 1 and 1000`,
		`allowedSuffixes[1]: "a.b": want a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit; no dots)`,
		`allowedSuffixes[2]: "debug" is listed twice`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("not ErrInvalid")
	}
}

func TestCheckNamespace(t *testing.T) {
	if err := CheckNamespace("team-a", 10, nil); err != nil {
		t.Errorf("10 pipelines with the defaults: %v", err)
	}
	err := CheckNamespace("team-a", 11, nil)
	if err == nil || err.Error() != `namespace "team-a" has 11 pipelines; the LogRouterPolicy allows 10 (maxPipelinesPerNamespace): the first 10 by name run` {
		t.Errorf("11 pipelines: %v", err)
	}
	p, _ := CompilePolicy(&v1alpha1.LogRouterPolicySpec{MaxPipelinesPerNamespace: 2})
	if CheckNamespace("team-a", 3, p) == nil || CheckNamespace("team-a", 2, p) != nil {
		t.Error("policy limit 2 not applied")
	}
}
