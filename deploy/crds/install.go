package crds

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// FieldManager is the server-side apply field manager Install uses.
const FieldManager = "logrouter-crds"

// Install applies the CRDs (server-side apply, strict field validation) and waits until the
// server reports each one Established and serves its resource, so that the caller's next
// create does not race the API server. Tests of the controller and the collector's informers
// use it against the kube-apiserver fixture.
func Install(ctx context.Context, cfg *rest.Config) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var names []string
	for file, b := range Files() {
		var obj map[string]any
		if err := yaml.UnmarshalStrict(b, &obj); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		body, err := u.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		force := true
		_, err = dyn.Resource(crdResource).Patch(ctx, u.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: FieldManager, FieldValidation: "Strict", Force: &force})
		if err != nil {
			return fmt.Errorf("apply %s: %w", file, err)
		}
		names = append(names, u.GetName())
	}
	for _, n := range names {
		if err := waitServed(ctx, dyn, n); err != nil {
			return err
		}
	}
	return nil
}

func waitServed(ctx context.Context, dyn dynamic.Interface, name string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = served(ctx, dyn, name)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not served: %w (%w)", name, last, ctx.Err())
		case <-tick.C:
		}
	}
}

var errNotEstablished = errors.New("not Established")

func served(ctx context.Context, dyn dynamic.Interface, name string) error {
	u, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	established := false
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			established = true
		}
	}
	if !established {
		return errNotEstablished
	}
	// Established can precede the resource's handler: list it once.
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); !served {
			continue
		}
		ver, _ := m["name"].(string)
		gvr := schema.GroupVersionResource{Group: group, Version: ver, Resource: plural}
		if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return fmt.Errorf("list %s: %w", gvr, err)
		}
	}
	return nil
}
