package enricher

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/filemeta"
)

const node = "node-a"

func testConfig() Config {
	c := DefaultConfig()
	c.NodeName = node
	c.MetadataWait = time.Hour // tests that want the wait to expire set it
	return c
}

type testEnricher struct {
	*Enricher
	reg    *prometheus.Registry
	client *watchedClient
	clock  *fakeClock
}

// watchedClient is a fake clientset that tells when the informers' watches are open. The fake
// tracker does not replay events by resourceVersion, so an object changed between an
// informer's list and its watch would be missed: tests change objects only once both watch.
type watchedClient struct {
	*fake.Clientset
	mu       sync.Mutex
	watching map[string]bool // resource -> a watch is open
}

func newClient(objs ...runtime.Object) *watchedClient {
	c := &watchedClient{Clientset: fake.NewClientset(objs...), watching: map[string]bool{}}
	c.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := c.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		c.mu.Lock()
		c.watching[a.GetResource().Resource] = true
		c.mu.Unlock()
		return true, w, nil
	})
	return c
}

func (c *watchedClient) watches(resources ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range resources {
		if !c.watching[r] {
			return false
		}
	}
	return true
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start runs an enricher against client until the test ends, and returns once its informers
// have listed and watch.
func start(t *testing.T, cfg Config, client *watchedClient) *testEnricher {
	t.Helper()
	e := startNoWait(t, cfg, client)
	eventually(t, "informers synced and watching", func() bool { return e.Synced() && client.watches("pods", "namespaces") })
	return e
}

func startNoWait(t *testing.T, cfg Config, client *watchedClient) *testEnricher {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, client, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e.now = clock.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testEnricher{Enricher: e, reg: reg, client: client, clock: clock}
}

// eventually polls cond until it holds; the timeout only bounds a broken test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pod(ns, name, uid string, labels map[string]string, mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{
			{Name: "app", Image: "registry.example/app:1.2"},
			{Name: "sidecar", Image: "registry.example/proxy:3"},
		}},
	}
	for _, f := range mut {
		f(p)
	}
	return p
}

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func pathMeta(ns, pod, uid, container string) filemeta.PathMeta {
	return filemeta.PathMeta{
		Namespace: ns, Pod: pod, PodUID: uid, Container: container,
		File: "/var/log/pods/" + ns + "_" + pod + "_" + uid + "/" + container + "/0.log",
	}
}

// decode renders a line with the snapshot's fragment and reads it back as consumers do.
func decode(t *testing.T, s *filemeta.Snapshot) record.Record {
	t.Helper()
	b, _ := record.AppendJSON(nil, s.Fragment, &record.Line{TS: []byte("2026-01-01T00:00:00Z"), Message: []byte("hello")})
	r, err := record.Decode(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return r
}

func enriched(h filemeta.Handle) func() bool {
	return func() bool {
		s := h.Load()
		return s != nil && strings.Contains(string(s.Fragment), `"k8s":`)
	}
}

func labelsOf(t *testing.T, h filemeta.Handle) map[string]string {
	t.Helper()
	r := decode(t, h.Load())
	if r.Kubernetes == nil {
		t.Fatalf("no k8s metadata in %s", h.Load().Fragment)
	}
	return r.Kubernetes.Labels
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				if m.Gauge != nil {
					sum += m.Gauge.GetValue()
				} else {
					sum += m.Counter.GetValue()
				}
			}
			return sum
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestEnrichesRecord(t *testing.T) {
	ctrl := true
	client := newClient(
		namespace("shop", map[string]string{"team": "payments"}, map[string]string{AnnotationRetention: "7d"}),
		pod("shop", "web-5d8f7c9b6-x2x4z", "uid-web", map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"},
			func(p *corev1.Pod) {
				p.Annotations = map[string]string{"logrouter.io/parser": "json", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
				p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c9b6", Controller: &ctrl}}
			}),
	)
	e := start(t, testConfig(), client)
	m := pathMeta("shop", "web-5d8f7c9b6-x2x4z", "uid-web", "sidecar")
	m.ContainerID = "containerd://abc"
	h := e.Open(m)
	defer h.Close()
	eventually(t, "enriched snapshot", enriched(h))
	eventually(t, "namespace labels", func() bool { return h.Load().NamespaceLabels["team"] == "payments" })
	s := h.Load()
	r := decode(t, s)
	want := record.Kubernetes{
		Image:           "registry.example/proxy:3",
		Labels:          map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"},
		Annotations:     map[string]string{"logrouter.io/parser": "json"},
		OwnerKind:       "Deployment",
		OwnerName:       "web",
		NamespaceLabels: map[string]string{"team": "payments"},
	}
	k := r.Kubernetes
	if k.Image != want.Image || k.OwnerKind != want.OwnerKind || k.OwnerName != want.OwnerName ||
		!maps.Equal(k.Labels, want.Labels) || !maps.Equal(k.Annotations, want.Annotations) || !maps.Equal(k.NamespaceLabels, want.NamespaceLabels) {
		t.Errorf("k8s = %+v\nwant %+v", *k, want)
	}
	// The same metadata, structured, for selectors and conditions that must not decode JSON.
	if sk := s.Kubernetes; sk == nil || sk.Image != want.Image || sk.OwnerKind != want.OwnerKind || sk.OwnerName != want.OwnerName ||
		!maps.Equal(sk.Labels, want.Labels) || !maps.Equal(sk.Annotations, want.Annotations) || !maps.Equal(sk.NamespaceLabels, want.NamespaceLabels) {
		t.Errorf("snapshot's structured metadata = %+v\nwant %+v", sk, want)
	}
	if r.Namespace != "shop" || r.Pod != m.Pod || r.PodUID != "uid-web" || r.Container != "sidecar" || r.Node != node || r.Metadata != "" {
		t.Errorf("record = %+v", r)
	}
	if s.Key != "containerd://abc" || s.Namespace != "shop" || s.Pod != m.Pod || s.Container != "sidecar" {
		t.Errorf("snapshot headers/key = %q %q %q %q", s.Key, s.Namespace, s.Pod, s.Container)
	}
	if s.Retention != 7*24*time.Hour || s.Excluded {
		t.Errorf("retention %v excluded %v", s.Retention, s.Excluded)
	}
}

func TestPodCreatedAfterFile(t *testing.T) {
	client := newClient(namespace("shop", nil, nil))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("shop", "job-1", "uid-1", "app"))
	defer h.Close()
	if s := h.Load(); s != nil {
		t.Fatalf("Load before the pod exists = %s, want nil (waiting)", s.Fragment)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_waiting_files"); got != 1 {
		t.Errorf("waiting files = %v, want 1", got)
	}
	if _, err := client.CoreV1().Pods("shop").Create(context.Background(), pod("shop", "job-1", "uid-1", map[string]string{"app": "job"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "enriched snapshot", enriched(h))
	if got := labelsOf(t, h); got["app"] != "job" {
		t.Errorf("labels = %v", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_waiting_files"); got != 0 {
		t.Errorf("waiting files = %v, want 0", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_partial_files_total"); got != 0 {
		t.Errorf("partial files = %v, want 0", got)
	}
}

// TestWaitsForNamespace: a file's first lines must carry its namespace's labels (the topic
// template may route by them), so a known pod in a namespace not seen yet still waits.
func TestWaitsForNamespace(t *testing.T) {
	client := newClient(pod("late-ns", "web", "uid-web", map[string]string{"app": "web"}))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("late-ns", "web", "uid-web", "app"))
	defer h.Close()
	if s := h.Load(); s != nil {
		t.Fatalf("snapshot before the namespace is known: %s", s.Fragment)
	}
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), namespace("late-ns", map[string]string{"team": "t"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "snapshot", func() bool { return h.Load() != nil })
	r := decode(t, h.Load())
	if r.Metadata != "" || r.Kubernetes == nil || r.Kubernetes.NamespaceLabels["team"] != "t" || h.Load().NamespaceLabels["team"] != "t" {
		t.Errorf("record = %+v", r)
	}

	// When the namespace never shows up in time, the pod's metadata ships marked partial.
	cfg := testConfig()
	cfg.MetadataWait = 10 * time.Millisecond
	client2 := newClient(pod("never", "web", "uid-web", map[string]string{"app": "web"}))
	e2 := start(t, cfg, client2)
	h2 := e2.Open(pathMeta("never", "web", "uid-web", "app"))
	defer h2.Close()
	eventually(t, "snapshot", func() bool { return h2.Load() != nil })
	if r := decode(t, h2.Load()); r.Metadata != record.MetadataPartial || r.Kubernetes == nil || r.Kubernetes.Labels["app"] != "web" {
		t.Errorf("record = %+v", r)
	}
	if got := gauge(t, e2.reg, "logrouter_enricher_partial_files_total"); got != 1 {
		t.Errorf("partial files = %v, want 1", got)
	}
}

func TestWaitExpiresThenEnriches(t *testing.T) {
	cfg := testConfig()
	cfg.MetadataWait = 10 * time.Millisecond
	client := newClient(namespace("shop", map[string]string{"team": "payments"}, nil))
	e := start(t, cfg, client)
	h := e.Open(pathMeta("shop", "late", "uid-late", "app"))
	defer h.Close()
	eventually(t, "partial snapshot", func() bool { return h.Load() != nil })
	r := decode(t, h.Load())
	if r.Metadata != record.MetadataPartial || r.Kubernetes != nil || r.PodUID != "uid-late" || r.Node != node {
		t.Errorf("partial record = %+v", r)
	}
	if h.Load().NamespaceLabels["team"] != "payments" {
		t.Errorf("partial snapshot lost the namespace labels: %v", h.Load().NamespaceLabels)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_partial_files_total"); got != 1 {
		t.Errorf("partial files = %v, want 1", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_waiting_files"); got != 0 {
		t.Errorf("waiting files = %v, want 0", got)
	}
	if _, err := client.CoreV1().Pods("shop").Create(context.Background(), pod("shop", "late", "uid-late", map[string]string{"app": "late"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "enriched after the pod appeared", enriched(h))
	if r := decode(t, h.Load()); r.Metadata != "" || r.Kubernetes.Labels["app"] != "late" {
		t.Errorf("record = %+v", r)
	}
}

func TestPodDeletedWithUnreadLines(t *testing.T) {
	cfg := testConfig()
	cfg.DeletedPodGrace = time.Minute
	client := newClient(namespace("shop", nil, nil), pod("shop", "short", "uid-s", map[string]string{"app": "short"}))
	e := start(t, cfg, client)
	h := e.Open(pathMeta("shop", "short", "uid-s", "app"))
	eventually(t, "enriched", enriched(h))
	if err := client.CoreV1().Pods("shop").Delete(context.Background(), "short", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "informer saw the deletion", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.pods["uid-s"].deleted
	})
	e.clock.Add(time.Hour)
	e.sweep()
	if got := labelsOf(t, h); got["app"] != "short" {
		t.Fatalf("open file lost its metadata after the pod was deleted: %v", got)
	}
	// A second file of the deleted pod, found late, gets the metadata at once.
	h2 := e.Open(pathMeta("shop", "short", "uid-s", "sidecar"))
	if s := h2.Load(); s == nil || !enriched(h2)() {
		t.Fatalf("late file of a deleted pod: %v", s)
	}
	h2.Close()
	h.Close()
	e.clock.Add(cfg.DeletedPodGrace - time.Second)
	e.sweep()
	if h3 := e.Open(pathMeta("shop", "short", "uid-s", "app")); !enriched(h3)() {
		t.Fatal("metadata dropped before the grace period ended")
	} else {
		h3.Close()
	}
	if got := gauge(t, e.reg, "logrouter_enricher_cached_pods"); got != 1 {
		t.Errorf("cached pods = %v, want 1", got)
	}
	e.clock.Add(cfg.DeletedPodGrace)
	e.sweep()
	if got := gauge(t, e.reg, "logrouter_enricher_cached_pods"); got != 0 {
		t.Errorf("cached pods after the grace period = %v, want 0", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_expired_pods_total"); got != 1 {
		t.Errorf("expired pods = %v, want 1", got)
	}
	h4 := e.Open(pathMeta("shop", "short", "uid-s", "app"))
	defer h4.Close()
	if s := h4.Load(); s != nil {
		t.Errorf("after the grace period a new file waits (nil), got %s", s.Fragment)
	}
}

func TestPodNameReusedWithNewUID(t *testing.T) {
	client := newClient(namespace("db", nil, nil), pod("db", "db-0", "uid-old", map[string]string{"gen": "old"}))
	e := start(t, testConfig(), client)
	old := e.Open(pathMeta("db", "db-0", "uid-old", "app"))
	defer old.Close()
	eventually(t, "old enriched", enriched(old))

	ctx := context.Background()
	if err := client.CoreV1().Pods("db").Delete(ctx, "db-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("db").Create(ctx, pod("db", "db-0", "uid-new", map[string]string{"gen": "new"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nw := e.Open(pathMeta("db", "db-0", "uid-new", "app"))
	defer nw.Close()
	eventually(t, "new enriched", enriched(nw))
	if got := labelsOf(t, nw)["gen"]; got != "new" {
		t.Errorf("new pod's file has gen=%q", got)
	}
	if got := labelsOf(t, old)["gen"]; got != "old" {
		t.Errorf("old pod's file has gen=%q", got)
	}
	if r := decode(t, nw.Load()); r.PodUID != "uid-new" {
		t.Errorf("new file pod_uid = %q", r.PodUID)
	}
	// A file known only by name (a /var/log/containers path) goes to the newest pod of that name.
	byName := e.Open(filemeta.PathMeta{Namespace: "db", Pod: "db-0", Container: "app"})
	defer byName.Close()
	if r := decode(t, byName.Load()); r.PodUID != "uid-new" || r.Kubernetes.Labels["gen"] != "new" {
		t.Errorf("name-only file = %+v", r)
	}
	if byName.Load().Key != "db/db-0/app" {
		t.Errorf("name-only key = %q: the key must not change when the UID becomes known", byName.Load().Key)
	}
}

// TestNameReusedWithoutDeleteEvent is the relist case: the watch missed the deletion and the
// informer reports an update whose UID changed.
func TestNameReusedWithoutDeleteEvent(t *testing.T) {
	e := start(t, testConfig(), newClient())
	all := allowlist.MustParse("*")
	tp := func(p *corev1.Pod) *podMeta { return stripPod(p, all, all) }
	ns, _ := namespaceTransform(all)(namespace("db", nil, nil))
	e.namespaceChanged(ns)
	e.podChanged(nil, tp(pod("db", "db-0", "uid-1", map[string]string{"gen": "1"})))
	h1 := e.Open(pathMeta("db", "db-0", "uid-1", "app"))
	e.podChanged(tp(pod("db", "db-0", "uid-1", nil)), tp(pod("db", "db-0", "uid-2", map[string]string{"gen": "2"})))
	h2 := e.Open(pathMeta("db", "db-0", "uid-2", "app"))
	if a, b := labelsOf(t, h1)["gen"], labelsOf(t, h2)["gen"]; a != "1" || b != "2" {
		t.Errorf("gen = %q, %q; want 1, 2", a, b)
	}
	e.mu.Lock()
	deleted := e.pods["uid-1"].deleted
	e.mu.Unlock()
	if !deleted {
		t.Error("old pod not marked deleted")
	}
	h1.Close()
	h2.Close()
}

func TestAPIUnreachableAtStart(t *testing.T) {
	cfg := testConfig()
	cfg.MetadataWait = 10 * time.Millisecond
	client := newClient(
		namespace("shop", map[string]string{"team": "payments"}, nil),
		pod("shop", "web", "uid-web", map[string]string{"app": "web"}))
	var down atomic.Bool
	down.Store(true)
	var failed atomic.Int32
	unreachable := func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			failed.Add(1)
			return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
		}
		return false, nil, nil
	}
	client.PrependReactor("list", "*", unreachable)
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		handled, _, err := unreachable(a)
		return handled, nil, err
	})
	e := startNoWait(t, cfg, client)
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	defer h.Close()
	eventually(t, "partial snapshot while the API is down", func() bool { return h.Load() != nil })
	if r := decode(t, h.Load()); r.Metadata != record.MetadataPartial || r.Pod != "web" || r.PodUID != "uid-web" {
		t.Errorf("record while down = %+v", r)
	}
	eventually(t, "a failed list", func() bool { return failed.Load() > 0 })
	eventually(t, "API errors counted", func() bool {
		return testutil.ToFloat64(e.metrics.apiErrors.WithLabelValues("pods")) > 0 &&
			testutil.ToFloat64(e.metrics.apiErrors.WithLabelValues("namespaces")) > 0
	})
	if e.Synced() {
		t.Fatal("synced while the API is down")
	}
	down.Store(false)
	eventually(t, "enriched once the API is back", enriched(h))
	eventually(t, "namespace labels once the API is back", func() bool { return h.Load().NamespaceLabels["team"] == "payments" })
	if r := decode(t, h.Load()); r.Metadata != "" || r.Kubernetes.Labels["app"] != "web" {
		t.Errorf("record after recovery = %+v", r)
	}
}

func TestNamespaceExcludedAndReincluded(t *testing.T) {
	client := newClient(
		namespace("noisy", nil, map[string]string{AnnotationExclude: "true"}),
		pod("noisy", "spam", "uid-spam", nil))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("noisy", "spam", "uid-spam", "app"))
	defer h.Close()
	eventually(t, "excluded", func() bool { s := h.Load(); return s != nil && s.Excluded })

	ctx := context.Background()
	ns, err := client.CoreV1().Namespaces().Get(ctx, "noisy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(ns.Annotations, AnnotationExclude)
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-included", func() bool { return !h.Load().Excluded })
	if !enriched(h)() {
		t.Errorf("re-included file not enriched: %s", h.Load().Fragment)
	}

	// An excluded namespace does not hold a file back waiting for its pod.
	ns.Annotations = map[string]string{AnnotationExclude: "true"}
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "excluded again", func() bool { return h.Load().Excluded })
	unknown := e.Open(pathMeta("noisy", "not-yet", "uid-x", "app"))
	defer unknown.Close()
	if s := unknown.Load(); s == nil || !s.Excluded {
		t.Errorf("file of an unknown pod in an excluded namespace: %v, want an excluded snapshot at once", s)
	}
}

func TestNamespaceSettingsAnnotations(t *testing.T) {
	ctx := context.Background()
	client := newClient(namespace("shop", nil, map[string]string{AnnotationRetention: "3d"}), pod("shop", "web", "uid-web", nil))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	defer h.Close()
	eventually(t, "retention", func() bool { s := h.Load(); return s != nil && s.Retention == 72*time.Hour })

	update := func(ann map[string]string) {
		t.Helper()
		if _, err := client.CoreV1().Namespaces().Update(ctx, namespace("shop", nil, ann), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	invalid := func(a string) float64 {
		return testutil.ToFloat64(e.metrics.invalidAnnotations.WithLabelValues(a))
	}
	update(map[string]string{AnnotationRetention: "a week", AnnotationExclude: "yes"})
	eventually(t, "invalid retention reported", func() bool { return invalid(AnnotationRetention) == 1 })
	eventually(t, "invalid exclude reported", func() bool { return invalid(AnnotationExclude) == 1 })
	if s := h.Load(); s.Retention != 72*time.Hour || s.Excluded {
		t.Errorf("an invalid value must leave the last valid setting: retention %v excluded %v", s.Retention, s.Excluded)
	}
	update(map[string]string{AnnotationRetention: "36h"})
	eventually(t, "retention 36h", func() bool { return h.Load().Retention == 36*time.Hour })
	update(nil)
	eventually(t, "retention removed", func() bool { return h.Load().Retention == 0 })
	if invalid(AnnotationRetention) != 1 || invalid(AnnotationExclude) != 1 {
		t.Errorf("invalid counts = %v, %v; want each invalid value counted once", invalid(AnnotationRetention), invalid(AnnotationExclude))
	}
}

func TestLabelAllowList(t *testing.T) {
	cfg := testConfig()
	cfg.PodLabels = "app,team*,!team-secret"
	cfg.PodAnnotations = "logrouter.io/*,example.com/owner"
	cfg.NamespaceLabels = "tier"
	client := newClient(
		namespace("shop", map[string]string{"tier": "gold", "kubernetes.io/metadata.name": "shop"}, nil),
		pod("shop", "web", "uid-web", map[string]string{"app": "web", "team-a": "x", "team-secret": "s", "pod-template-hash": "h", "version": "2"},
			func(p *corev1.Pod) {
				p.Annotations = map[string]string{
					"logrouter.io/parser": "json", "example.com/owner": "me", "example.com/other": "no",
					"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
				}
			}))
	e := start(t, cfg, client)
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	defer h.Close()
	eventually(t, "enriched with namespace labels", func() bool { s := h.Load(); return s != nil && s.NamespaceLabels != nil && enriched(h)() })
	k := decode(t, h.Load()).Kubernetes
	for _, tc := range []struct {
		name      string
		got, want map[string]string
	}{
		{"labels", k.Labels, map[string]string{"app": "web", "team-a": "x"}},
		{"annotations", k.Annotations, map[string]string{"logrouter.io/parser": "json", "example.com/owner": "me"}},
		{"namespace labels", k.NamespaceLabels, map[string]string{"tier": "gold"}},
	} {
		if !maps.Equal(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestOtherNodesPodsIgnored(t *testing.T) {
	// The fake clientset ignores field selectors, so this checks the handler's own guard.
	client := newClient(namespace("shop", nil, nil), pod("shop", "elsewhere", "uid-e", nil, func(p *corev1.Pod) { p.Spec.NodeName = "node-b" }))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("shop", "elsewhere", "uid-e", "app"))
	defer h.Close()
	if s := h.Load(); s != nil {
		t.Errorf("a pod of another node enriched a file: %s", s.Fragment)
	}
}

func TestStatusUpdateDoesNotRerender(t *testing.T) {
	client := newClient(namespace("shop", nil, nil), pod("shop", "web", "uid-web", map[string]string{"app": "web"}))
	e := start(t, testConfig(), client)
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	defer h.Close()
	eventually(t, "enriched", enriched(h))
	ctx := context.Background()
	p, err := client.CoreV1().Pods("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if _, err := client.CoreV1().Pods("shop").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.Labels["app"] = "web2"
	if _, err := client.CoreV1().Pods("shop").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "label change", func() bool { return labelsOf(t, h)["app"] == "web2" })
	// Events arrive in order: the status update came before the label change and rendered nothing.
	if got := testutil.ToFloat64(e.metrics.renders); got != 2 {
		t.Errorf("renders = %v, want 2 (open, label change)", got)
	}
}

func TestCloseIsIdempotentAndCounts(t *testing.T) {
	e := start(t, testConfig(), newClient())
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	h.Close()
	h.Close()
	if got := gauge(t, e.reg, "logrouter_enricher_open_files"); got != 0 {
		t.Errorf("open files = %v", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_waiting_files"); got != 0 {
		t.Errorf("waiting files = %v", got)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.waitUID)+len(e.waitName)+len(e.handles) != 0 {
		t.Errorf("closed handle still indexed: %v %v %v", e.waitUID, e.waitName, e.handles)
	}
}

func TestRunTwice(t *testing.T) {
	e := start(t, testConfig(), newClient())
	eventually(t, "running", e.running.Load)
	if err := e.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestZeroWaitShipsAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.MetadataWait = 0
	e := start(t, cfg, newClient())
	h := e.Open(pathMeta("shop", "web", "uid-web", "app"))
	defer h.Close()
	s := h.Load()
	if s == nil || decode(t, s).Metadata != record.MetadataPartial {
		t.Fatalf("zero wait: %v, want a partial snapshot at once", s)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_partial_files_total"); got != 1 {
		t.Errorf("partial files = %v", got)
	}
	if got := gauge(t, e.reg, "logrouter_enricher_waiting_files"); got != 0 {
		t.Errorf("waiting files = %v", got)
	}
}

func TestNamespaceDeletedWithOpenFiles(t *testing.T) {
	cfg := testConfig()
	cfg.DeletedPodGrace = time.Minute
	client := newClient(namespace("gone", map[string]string{"team": "t"}, map[string]string{AnnotationRetention: "2d"}), pod("gone", "web", "uid-web", nil))
	e := start(t, cfg, client)
	h := e.Open(pathMeta("gone", "web", "uid-web", "app"))
	eventually(t, "enriched", enriched(h))
	if err := client.CoreV1().Namespaces().Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "informer saw the deletion", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.namespaces["gone"].deleted
	})
	e.clock.Add(time.Hour)
	e.sweep()
	if s := h.Load(); s.NamespaceLabels["team"] != "t" || s.Retention != 48*time.Hour {
		t.Errorf("open file lost its namespace settings: %+v", s)
	}
	h.Close()
	e.clock.Add(cfg.DeletedPodGrace - time.Second)
	e.sweep()
	if got := gauge(t, e.reg, "logrouter_enricher_cached_namespaces"); got != 1 {
		t.Errorf("cached namespaces within the grace period = %v, want 1", got)
	}
	e.clock.Add(2 * time.Second)
	e.sweep()
	if got := gauge(t, e.reg, "logrouter_enricher_cached_namespaces"); got != 0 {
		t.Errorf("cached namespaces after the grace period = %v, want 0", got)
	}
}
