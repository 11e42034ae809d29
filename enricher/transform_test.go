package enricher

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/enricher/owner"
)

// fullPod is a pod as the API server returns it: managedFields, a last-applied annotation,
// env, volumes and status, none of which records carry.
func fullPod() *corev1.Pod {
	ctrl := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-5d8f7c9b6-x2x4z", Namespace: "shop", UID: "3f0c8a5e-0d7b-4a51-9c56-1f7d6f3b2a10",
			ResourceVersion: "123456", GenerateName: "web-5d8f7c9b6-",
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6", "app.kubernetes.io/name": "web",
				"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/version": "1.2.3", "team": "payments"},
			Annotations: map[string]string{"logrouter.io/parser": "json",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat(`{"apiVersion":"v1"}`, 100),
				"prometheus.io/scrape":                             "true", "prometheus.io/port": "9090"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c9b6", UID: "rs-uid", Controller: &ctrl}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(strings.Repeat(`{"f:metadata":{}}`, 200))}}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/shop/web:1.2.3", Command: []string{"/web", "--port=8080"},
					Env:          []corev1.EnvVar{{Name: "A", Value: strings.Repeat("x", 200)}, {Name: "B", Value: "y"}},
					VolumeMounts: []corev1.VolumeMount{{Name: "tok", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}},
				{Name: "proxy", Image: "registry.example/proxy:3"},
			},
			InitContainers: []corev1.Container{{Name: "migrate", Image: "registry.example/shop/migrate:1"}},
			Volumes:        []corev1.Volume{{Name: "tok"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.12", ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", ContainerID: "containerd://0123456789abcdef", ImageID: "sha256:abcdef", Ready: true}}},
	}
}

func TestPodTransform(t *testing.T) {
	tr := podTransform(allowlist.MustParse("*,!pod-template-hash"), allowlist.MustParse("logrouter.io/*"))
	out, err := tr(fullPod())
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*podMeta)
	want := &podMeta{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-5d8f7c9b6-x2x4z", Namespace: "shop", UID: "3f0c8a5e-0d7b-4a51-9c56-1f7d6f3b2a10", ResourceVersion: "123456",
			Labels: map[string]string{"app": "web", "app.kubernetes.io/name": "web",
				"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/version": "1.2.3", "team": "payments"},
			Annotations: map[string]string{"logrouter.io/parser": "json"},
		},
		Node:  node,
		Owner: owner.Workload{Kind: "Deployment", Name: "web"},
		Images: []containerImage{{"app", "registry.example/shop/web:1.2.3"}, {"proxy", "registry.example/proxy:3"},
			{"migrate", "registry.example/shop/migrate:1"}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("transform =\n%+v\nwant\n%+v", p, want)
	}
	// Idempotent: a transformed pod passes through unchanged.
	again, _ := tr(p)
	if again != any(p) {
		t.Errorf("second transform =\n%+v\nwant\n%+v", again, want)
	}
	// Tombstones pass through.
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/web"}
	if got, _ := tr(tomb); got != tomb {
		t.Errorf("tombstone transformed to %v", got)
	}
}

func TestNamespaceTransform(t *testing.T) {
	tr := namespaceTransform(allowlist.MustParse("team"))
	out, _ := tr(&corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "u", ResourceVersion: "9",
			Labels:        map[string]string{"team": "payments", "kubernetes.io/metadata.name": "shop"},
			Annotations:   map[string]string{AnnotationExclude: "true", "other.io/x": "y"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
	})
	want := &nsMeta{metav1.ObjectMeta{Name: "shop", UID: "u", ResourceVersion: "9",
		Labels: map[string]string{"team": "payments"}, Annotations: map[string]string{AnnotationExclude: "true"}}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("transform = %+v, want %+v", out, want)
	}
}

func TestDeepCopy(t *testing.T) {
	p := stripPod(fullPod(), allowlist.MustParse("*"), allowlist.MustParse("*"))
	q := p.DeepCopyObject().(*podMeta)
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("copy differs:\n%+v\n%+v", p, q)
	}
	q.Labels["app"] = "changed"
	q.Images[0].Image = "changed"
	if p.Labels["app"] != "web" || p.Images[0].Image != "registry.example/shop/web:1.2.3" {
		t.Error("DeepCopyObject shares labels or images with the original")
	}
	ns := &nsMeta{metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "y"}}}
	nc := ns.DeepCopyObject().(*nsMeta)
	nc.Labels["x"] = "z"
	if ns.Labels["x"] != "y" {
		t.Error("nsMeta DeepCopyObject shares labels")
	}
}
