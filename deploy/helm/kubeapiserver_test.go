package helm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/integration/kubeapiserver"
)

// TestKubeAPIServerAcceptsEverything applies every rendered object of every case to a real
// kube-apiserver with server-side apply, dry-run, strict field validation: the server's
// schema validation and admission must accept each one, the chart's CRDs included. The
// PodMonitor and PrometheusRule CRDs (Prometheus Operator's) are installed first so those
// objects are checked too.
func TestKubeAPIServerAcceptsEverything(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	admin := srv.Client(t)
	warnings := &warningRecorder{}
	cfg := rest.CopyConfig(srv.Config)
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs := cases(t)
	nss := map[string]bool{"team-a": true, "monitoring": true}
	for _, c := range cs {
		nss[c.release.Namespace] = true
	}
	for ns := range nss {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(admin.Discovery()))
	for _, f := range []string{"testdata/monitoring.coreos.com_podmonitors.yaml", "testdata/monitoring.coreos.com_prometheusrules.yaml"} {
		crd, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, dyn, mapper, string(crd), "", false)
	}
	// Wait until the API server serves the new types.
	deadline := time.Now().Add(time.Minute)
	for {
		mapper.Reset()
		_, err1 := mapper.RESTMapping(monitoringGK, "v1")
		_, err2 := mapper.RESTMapping(schemaGK("monitoring.coreos.com", "PrometheusRule"), "v1")
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PodMonitor CRD not served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The server does refuse: an unknown field, an invalid value, a PodMonitor with a typo.
	for _, bad := range []string{
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: logrouter}\nautomountToken: false\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: logrouter}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: Not_A_DNS_Label, image: i}]\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x, namespace: logrouter}\nspec:\n  selector: {}\n  podMetricsEndpoints: [{port: metrics, intervall: 30s}]\n",
	} {
		if err := tryApply(t, dyn, mapper, bad, "logrouter", true); err == nil {
			t.Errorf("the server accepted an invalid object:\n%s", bad)
		}
	}
	warnings.take()
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				// A warning (deprecated API or field, a value the server corrects) is a defect too.
				for _, w := range warnings.take() {
					t.Errorf("server warning: %s", w)
				}
			}()
			n := 0
			for _, d := range render(t, c) {
				apply(t, dyn, mapper, d.YAML, c.release.Namespace, true)
				n++
			}
			t.Logf("%d objects accepted", n)
		})
	}
}

var monitoringGK = schemaGK("monitoring.coreos.com", "PodMonitor")

func apply(t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, doc, namespace string, dryRun bool) {
	t.Helper()
	if err := tryApply(t, dyn, mapper, doc, namespace, dryRun); err != nil {
		t.Errorf("%v\n%s", err, firstLines(doc, 80))
	}
}

func tryApply(t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, doc, namespace string, dryRun bool) error {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			t.Errorf("%s %s has no namespace", gvk.Kind, u.GetName())
			ns = namespace
		}
		ri = dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.PatchOptions{FieldManager: "logrouter-chart-test", FieldValidation: "Strict", Force: ptr(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Patch(context.Background(), u.GetName(), types.ApplyPatchType, body, opts); err != nil {
		return fmt.Errorf("%s %s/%s refused: %w", gvk.Kind, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

func firstLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

func ptr[T any](v T) *T { return &v }

func schemaGK(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }

type warningRecorder struct {
	mu sync.Mutex
	w  []string
}

func (r *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	r.w = append(r.w, text)
	r.mu.Unlock()
}

func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.w
	r.w = nil
	return w
}
