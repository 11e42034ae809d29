package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/filemeta"
)

// TestEnricherKubeAPIServer runs the enricher against a real kube-apiserver, authenticated as
// the collector's service account with only the RBAC of deploy/kubernetes/collector-rbac.yaml,
// through a kubeconfig file (the --kubeconfig path).
func TestEnricherKubeAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	admin := srv.Client(t)
	const node = "node-a"

	enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logrouter"}})
	enrApplyManifest(t, admin, "../deploy/kubernetes/collector-rbac.yaml")
	token := srv.ServiceAccountToken(t, "logrouter", "logrouter-collector")

	enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Labels:      map[string]string{"team": "payments"},
		Annotations: map[string]string{enricher.AnnotationRetention: "7d"}}})
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-5d8f7c9b6"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}},
			},
		},
	}
	rs, err := admin.AppsV1().ReplicaSets("shop").Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl := true
	web := enrPod("shop", "web-5d8f7c9b6-abcde", node, map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"})
	web.Annotations = map[string]string{"logrouter.io/parser": "json", "other.example/x": "y"}
	web.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &ctrl}}
	web = enrCreatePod(t, admin, web)
	elsewhere := enrCreatePod(t, admin, enrPod("shop", "elsewhere", "node-b", map[string]string{"app": "other"}))

	cfg := enricher.DefaultConfig()
	cfg.NodeName = node
	cfg.Kubeconfig = srv.WriteKubeconfig(t, token)
	cfg.MetadataWait = time.Hour
	cfg.DeletedPodGrace = time.Second
	client, err := enricher.ClientFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e, err := enricher.New(cfg, client, reg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	webFile := filemeta.PathMeta{Namespace: "shop", Pod: web.Name, PodUID: string(web.UID), Container: "app",
		File: "/var/log/pods/shop_" + web.Name + "_" + string(web.UID) + "/app/0.log"}
	h := e.Open(webFile)
	enrEventually(t, "synced", e.Synced)
	enrEventually(t, "web enriched", func() bool { return enrHasK8s(h) && h.Load().NamespaceLabels != nil })
	r := enrDecode(t, h.Load())
	k := r.Kubernetes
	if k.Image != "registry.example/web:1" || k.OwnerKind != "Deployment" || k.OwnerName != "web" ||
		k.Labels["app"] != "web" || k.Annotations["logrouter.io/parser"] != "json" || k.Annotations["other.example/x"] != "" ||
		k.NamespaceLabels["team"] != "payments" || k.NamespaceLabels["kubernetes.io/metadata.name"] != "shop" {
		t.Errorf("k8s metadata = %+v", *k)
	}
	if r.PodUID != string(web.UID) || r.Node != node || r.Metadata != "" {
		t.Errorf("record = %+v", r)
	}
	if got := h.Load().Retention; got != 7*24*time.Hour {
		t.Errorf("retention = %v", got)
	}

	// The field selector keeps other nodes' pods out of the cache.
	if got := enrMetric(t, reg, "logrouter_enricher_cached_pods"); got != 1 {
		t.Errorf("cached pods = %v, want 1 (only %s's)", got, node)
	}
	other := e.Open(filemeta.PathMeta{Namespace: "shop", Pod: elsewhere.Name, PodUID: string(elsewhere.UID), Container: "app"})
	if s := other.Load(); s != nil {
		t.Errorf("a pod of node-b enriched a file: %s", s.Fragment)
	}
	other.Close()

	// Namespace opt-out through the annotation.
	ns, err := admin.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations[enricher.AnnotationExclude] = "true"
	if _, err := admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	enrEventually(t, "excluded", func() bool { return h.Load().Excluded })

	// Deleted while its file still has unread lines: the metadata stays until Close + grace.
	if err := admin.CoreV1().Pods("shop").Delete(ctx, web.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	// The same name comes back with a new UID (a StatefulSet-style restart).
	reborn := enrPod("shop", web.Name, node, map[string]string{"app": "web-reborn"})
	reborn = enrCreatePod(t, admin, reborn)
	newFile := e.Open(filemeta.PathMeta{Namespace: "shop", Pod: reborn.Name, PodUID: string(reborn.UID), Container: "app"})
	defer newFile.Close()
	enrEventually(t, "reborn pod enriched", func() bool { return enrHasK8s(newFile) })
	if got := enrDecode(t, newFile.Load()).Kubernetes.Labels["app"]; got != "web-reborn" {
		t.Errorf("new UID's file labels app=%q", got)
	}
	enrEventually(t, "the old pod is deleted in the cache and a new one cached", func() bool {
		return enrMetric(t, reg, "logrouter_enricher_cached_pods") == 2
	})
	if got := enrDecode(t, h.Load()).Kubernetes.Labels["app"]; got != "web" {
		t.Errorf("old UID's file labels app=%q after the pod was deleted", got)
	}
	h.Close()
	enrEventually(t, "deleted pod dropped after Close + grace", func() bool {
		return enrMetric(t, reg, "logrouter_enricher_expired_pods_total") == 1
	})
	// The namespace is excluded, so a late file of the dropped pod ships (is skipped) at once,
	// with path metadata only.
	late := e.Open(webFile)
	defer late.Close()
	if s := late.Load(); s == nil || !s.Excluded || enrHasK8s(late) || enrDecode(t, s).Metadata != record.MetadataPartial {
		t.Errorf("a file of the dropped pod: %+v", s)
	}
}

// TestEnricherKubeAPIServerUnreachableAtStart: the API server cannot be reached when the
// enricher starts (nothing listens on its address yet); files ship with path metadata after
// the wait, and are enriched once the address answers and the informers sync.
func TestEnricherKubeAPIServerUnreachableAtStart(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	admin := srv.Client(t)
	const node = "node-a"
	enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late", Labels: map[string]string{"team": "t"}}})
	p := enrCreatePod(t, admin, enrPod("late", "web", node, map[string]string{"app": "web"}))

	// A port nobody listens on yet; later a proxy to the API server listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rc := rest.CopyConfig(srv.Config)
	rc.Host = "https://" + addr
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := enricher.DefaultConfig()
	cfg.NodeName = node
	cfg.MetadataWait = 50 * time.Millisecond
	reg := prometheus.NewRegistry()
	e, err := enricher.New(cfg, client, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	h := e.Open(filemeta.PathMeta{Namespace: "late", Pod: "web", PodUID: string(p.UID), Container: "app"})
	defer h.Close()
	enrEventually(t, "partial snapshot while the API is unreachable", func() bool { return h.Load() != nil })
	if r := enrDecode(t, h.Load()); r.Metadata != record.MetadataPartial || r.Kubernetes != nil || r.PodUID != string(p.UID) {
		t.Errorf("record while unreachable = %+v", r)
	}
	// client-go's watch-list retries connection errors inside the reflector without surfacing
	// them, so the visible signal is the informers not being synced.
	if e.Synced() || enrMetric(t, reg, "logrouter_enricher_informers_synced") != 0 {
		t.Fatal("synced while the API server is unreachable")
	}

	// The address starts answering: a TCP proxy to the API server.
	pl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s again: %v", addr, err)
	}
	defer pl.Close()
	target := strings.TrimPrefix(srv.URL, "https://")
	go enrProxy(pl, target)
	enrEventually(t, "enriched once the API answers", func() bool { return enrHasK8s(h) && h.Load().NamespaceLabels["team"] == "t" })
	enrEventually(t, "synced metric", func() bool { return enrMetric(t, reg, "logrouter_enricher_informers_synced") == 1 })
	if r := enrDecode(t, h.Load()); r.Metadata != "" || r.Kubernetes.Labels["app"] != "web" {
		t.Errorf("record after recovery = %+v", r)
	}
}

// enrProxy forwards every connection accepted on l to target until l is closed.
func enrProxy(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			_, _ = io.Copy(c, u)
		}()
	}
}

func enrPod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}},
	}
}

func enrCreatePod(t *testing.T, c kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	return out
}

func enrApply(t *testing.T, c kubernetes.Interface, obj runtime.Object) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = c.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ServiceAccount:
		_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		err = enrApplyRBAC(ctx, c, obj)
	}
	if err != nil {
		t.Fatalf("create %T: %v", obj, err)
	}
}

// enrApplyManifest creates every object of a multi-document YAML manifest.
func enrApplyManifest(t *testing.T, c kubernetes.Interface, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		enrApply(t, c, obj)
		n++
	}
	if n == 0 {
		t.Fatalf("%s: no objects", path)
	}
}

func enrHasK8s(h filemeta.Handle) bool {
	s := h.Load()
	return s != nil && strings.Contains(string(s.Fragment), `"k8s":`)
}

func enrDecode(t *testing.T, s *filemeta.Snapshot) record.Record {
	t.Helper()
	b, _ := record.AppendJSON(nil, s.Fragment, &record.Line{TS: []byte("2026-01-01T00:00:00Z"), Message: []byte("x")})
	r, err := record.Decode(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return r
}

func enrMetric(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0 // a vector with no series yet
}

// enrEventually polls cond; the timeout only bounds a broken test.
func enrEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func enrApplyRBAC(ctx context.Context, c kubernetes.Interface, obj runtime.Object) error {
	var err error
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("unsupported object %T", obj)
	}
	return err
}
