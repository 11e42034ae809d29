package router

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestCollectorWithEnricher runs the collector with the Kubernetes enricher over client-go's fake
// clientset: records carry the pod's labels, image, owner workload and namespace labels, and a
// namespace annotated logrouter.io/exclude is not shipped.
func TestCollectorWithEnricher(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, err := node.AddContainer("shop", "web-5d8f7c9b6-abcde", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	hidden, _ := node.AddContainer("private", "db-0", "db", loadgen.CRI)
	ctrl := true
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop-team"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "private", Annotations: map[string]string{"logrouter.io/exclude": "true"}}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: c.Pod, UID: types.UID(c.PodUID), Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c9b6", Controller: &ctrl}}},
			Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "shop/web:1.2"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: "shop/web:1.2", ContainerID: "containerd://" + c.ID}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "private", Name: hidden.Pod, UID: types.UID(hidden.PodUID)},
			Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "db", Image: "postgres:17"}}},
		},
	)
	ecfg := enricher.DefaultConfig()
	ecfg.NodeName = "node-1"
	enr, err := enricher.New(ecfg, client, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go enr.Run(ctx)

	for s := range 50 {
		c.Write(time.Now(), "stdout", loadgen.SeqMessage("shop", s, 100))
		hidden.Write(time.Now(), "stdout", loadgen.SeqMessage("private", s, 100))
	}
	cfg := testConfig(t, node, brokers)
	reg := prometheus.NewRegistry()
	col, err := New(cfg, enr, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- col.Run(cctx) }()
	defer func() { ccancel(); <-done }()

	got := consume(t, brokers, 50, 30*time.Second)
	checkSequences(t, got, map[string]int{"shop": 50})
	for _, g := range got {
		k := g.rec.Kubernetes
		if g.topic != "logs.shop" || k == nil || k.Labels["app"] != "web" || k.Image != "shop/web:1.2" || k.OwnerKind != "Deployment" || k.OwnerName != "web" || k.NamespaceLabels["team"] != "shop-team" || g.rec.Metadata != "" {
			t.Fatalf("record not enriched: topic %s k8s %+v metadata %q", g.topic, k, g.rec.Metadata)
		}
	}
	// The excluded namespace's lines were read and skipped, not produced.
	waitFor(t, 10*time.Second, func() bool { return metricValue(col.metrics.excludedLines, "private") == 50 })
}

func metricValue(v *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(v.WithLabelValues(label))
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
