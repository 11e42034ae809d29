package helm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/logrouter/logrouter/integration/kubeapiserver"
)

var rbacKinds = map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

// TestRBACAgainstKubeAPIServer creates the chart's ServiceAccounts and RBAC objects for real and
// asks the API server's authorizer (SubjectAccessReview, what kubectl auth can-i does) what each
// component may do: what it needs, and nothing more.
func TestRBACAgainstKubeAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := srv.Client(t)
	for _, ns := range []string{"logrouter", "team-a"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(admin.Discovery()))
	n := 0
	for _, d := range render(t, renderCase{name: "minimal", release: defaultRelease, values: minimalValues(t)}) {
		kind := ""
		for _, l := range strings.Split(d.YAML, "\n") {
			if k, ok := strings.CutPrefix(l, "kind: "); ok {
				kind = k
				break
			}
		}
		if rbacKinds[kind] {
			apply(t, dyn, mapper, d.YAML, "logrouter", false)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("applied %d RBAC objects", n)
	}
	type check struct {
		sa        string
		verb      string
		group     string
		resource  string
		sub       string
		namespace string
		name      string
		allowed   bool
	}
	checks := []check{
		{"controller", "list", "logrouter.io", "logpipelines", "", "", "", true},
		{"controller", "watch", "logrouter.io", "logpipelines", "", "team-a", "", true},
		{"controller", "get", "logrouter.io", "logrouterpolicies", "", "", "default", true},
		{"controller", "update", "logrouter.io", "logpipelines", "status", "team-a", "web", true},
		{"controller", "patch", "logrouter.io", "logpipelines", "status", "team-a", "web", true},
		{"controller", "patch", "logrouter.io", "logrouterpolicies", "status", "", "default", true},
		{"controller", "list", "", "namespaces", "", "", "", true},
		{"controller", "create", "", "events", "", "team-a", "", true},
		{"controller", "patch", "events.k8s.io", "events", "", "team-a", "", true},
		{"controller", "create", "coordination.k8s.io", "leases", "", "logrouter", "", true},
		{"controller", "update", "coordination.k8s.io", "leases", "", "logrouter", "logrouter-controller", true},
		{"controller", "get", "coordination.k8s.io", "leases", "", "logrouter", "logrouter-controller", true},
		// Never the spec: teams own it.
		{"controller", "update", "logrouter.io", "logpipelines", "", "team-a", "web", false},
		{"controller", "create", "logrouter.io", "logpipelines", "", "team-a", "", false},
		{"controller", "delete", "logrouter.io", "logpipelines", "", "team-a", "web", false},
		{"controller", "update", "logrouter.io", "logrouterpolicies", "", "", "default", false},
		{"controller", "update", "coordination.k8s.io", "leases", "", "logrouter", "someone-else", false},
		{"controller", "create", "coordination.k8s.io", "leases", "", "kube-system", "", false},
		{"controller", "update", "", "namespaces", "", "", "team-a", false},
		{"controller", "list", "", "secrets", "", "team-a", "", false},
		// Kafka access: the Secret logrouter-kafka of any namespace, no other Secret.
		{"controller", "create", "", "secrets", "", "team-a", "", true},
		{"controller", "get", "", "secrets", "", "team-a", "logrouter-kafka", true},
		{"controller", "update", "", "secrets", "", "team-a", "logrouter-kafka", true},
		{"controller", "delete", "", "secrets", "", "team-a", "logrouter-kafka", true},
		{"controller", "get", "", "secrets", "", "team-a", "other", false},
		{"controller", "update", "", "secrets", "", "team-a", "other", false},
		{"controller", "watch", "", "secrets", "", "", "", false},
		{"controller", "list", "", "pods", "", "", "", false},
		{"collector", "list", "logrouter.io", "logpipelines", "", "", "", true},
		{"collector", "watch", "logrouter.io", "logpipelines", "", "", "", true},
		{"collector", "get", "logrouter.io", "logrouterpolicies", "", "", "default", true},
		{"collector", "watch", "logrouter.io", "logrouterpolicies", "", "", "", true},
		{"collector", "update", "logrouter.io", "logpipelines", "status", "team-a", "web", false},
		{"collector", "update", "logrouter.io", "logpipelines", "", "team-a", "web", false},
		{"collector", "create", "", "events", "", "team-a", "", false},
		{"gateway", "list", "logrouter.io", "logpipelines", "", "", "", true},
		{"gateway", "get", "logrouter.io", "logpipelines", "", "team-a", "web", false},
		{"gateway", "update", "logrouter.io", "logpipelines", "status", "team-a", "web", false},
		{"archiver", "list", "logrouter.io", "logpipelines", "", "", "", false},
	}
	ask := func(c check) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   fmt.Sprintf("system:serviceaccount:logrouter:logrouter-%s", c.sa),
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:logrouter", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub, Namespace: c.namespace, Name: c.name,
			},
		}}
		r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return r.Status.Allowed, nil
	}
	// The authorizer sees new bindings through its informers: give each allowed check a few
	// seconds to become true.
	for _, c := range checks {
		if !c.allowed {
			continue
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			ok, err := ask(c)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s may not %s %s/%s %s (namespace %q, name %q)", c.sa, c.verb, c.resource, c.sub, c.group, c.namespace, c.name)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, c := range checks {
		if c.allowed {
			continue
		}
		ok, err := ask(c)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Errorf("%s may %s %s/%s %s (namespace %q, name %q): more than it needs", c.sa, c.verb, c.resource, c.sub, c.group, c.namespace, c.name)
		}
	}
}
