package integration

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestEnricherRBACManifestReadOnly checks deploy/kubernetes/collector-rbac.yaml without an API
// server: the collector may only get, list and watch pods and namespaces.
// TestEnricherKubeAPIServer checks that this is enough.
func TestEnricherRBACManifestReadOnly(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubernetes/collector-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	kinds := map[string]int{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		kinds[gvk.Kind]++
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			rules = append(rules, o.Rules...)
		case *rbacv1.Role:
			rules = append(rules, o.Rules...)
		case *rbacv1.ClusterRoleBinding:
			if o.RoleRef.Name != "logrouter-collector" || len(o.Subjects) != 1 || o.Subjects[0].Name != "logrouter-collector" {
				t.Errorf("binding = %+v", o)
			}
		}
	}
	if kinds["ServiceAccount"] != 1 || kinds["ClusterRole"] != 1 || kinds["ClusterRoleBinding"] != 1 {
		t.Errorf("objects = %v", kinds)
	}
	var resources []string
	for _, r := range rules {
		// The core group for the enricher, logrouter.io for the pipelines the collector runs.
		if len(r.APIGroups) != 1 || r.APIGroups[0] != "" && r.APIGroups[0] != "logrouter.io" {
			t.Errorf("rule outside the core and logrouter.io groups: %+v", r)
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("verb %q: the collector is read-only", v)
			}
		}
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		resources = append(resources, r.Resources...)
	}
	slices.Sort(resources)
	if !slices.Equal(resources, []string{"logpipelines", "logrouterpolicies", "namespaces", "pods"}) {
		t.Errorf("resources = %v, want logpipelines, logrouterpolicies, namespaces and pods only", resources)
	}
}
