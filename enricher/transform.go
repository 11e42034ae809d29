package enricher

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/enricher/owner"
)

// podTransform returns the informer transform for pods: it keeps only what records carry
// (name, namespace, UID, allowed labels and annotations, the resolved owner, container names
// and images, the node name), so the cache holds a few hundred bytes per pod instead of the
// tens of kilobytes of a full pod with managedFields and status.
//
// The owner is resolved here, while the pod-template-hash label is still present, and stored
// as the single owner reference. The transform is idempotent: a resolved owner (Deployment,
// CronJob) resolves to itself and filtering twice is filtering once.
func podTransform(labels, annotations *allowlist.List) cache.TransformFunc {
	return func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil // tombstones and anything unexpected pass through
		}
		return stripPod(p, labels, annotations), nil
	}
}

func stripPod(p *corev1.Pod, labels, annotations *allowlist.List) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       p.Namespace,
			UID:             p.UID,
			ResourceVersion: p.ResourceVersion,
			Labels:          labels.Filter(p.Labels),
			Annotations:     annotations.Filter(p.Annotations),
		},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName},
	}
	if w := owner.Resolve(p.OwnerReferences, p.Labels); w.Kind != "" {
		ctrl := true
		out.OwnerReferences = []metav1.OwnerReference{{Kind: w.Kind, Name: w.Name, APIVersion: resolvedAPIVersion(w.Kind, p.OwnerReferences), Controller: &ctrl}}
	}
	out.Spec.Containers = stripContainers(p.Spec.Containers)
	out.Spec.InitContainers = stripContainers(p.Spec.InitContainers)
	if len(p.Spec.EphemeralContainers) > 0 {
		out.Spec.EphemeralContainers = make([]corev1.EphemeralContainer, len(p.Spec.EphemeralContainers))
		for i, c := range p.Spec.EphemeralContainers {
			out.Spec.EphemeralContainers[i].Name = c.Name
			out.Spec.EphemeralContainers[i].Image = c.Image
		}
	}
	return out
}

// resolvedAPIVersion keeps the group of a resolved owner so a second pass of the transform
// sees the same group (owner.Resolve only rewrites apps/batch kinds it knows).
func resolvedAPIVersion(kind string, refs []metav1.OwnerReference) string {
	switch kind {
	case "Deployment":
		return "apps/v1"
	case "CronJob":
		return "batch/v1"
	}
	for _, r := range refs {
		if r.Kind == kind {
			return r.APIVersion
		}
	}
	return ""
}

func stripContainers(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image}
	}
	return out
}

// namespaceTransform keeps a namespace's name, UID, allowed labels and logrouter.io/
// annotations (the settings the enricher reads).
func namespaceTransform(labels *allowlist.List) cache.TransformFunc {
	return func(obj any) (any, error) {
		ns, ok := obj.(*corev1.Namespace)
		if !ok {
			return obj, nil
		}
		out := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion,
			Labels: labels.Filter(ns.Labels),
		}}
		for k, v := range ns.Annotations {
			if strings.HasPrefix(k, AnnotationPrefix) {
				if out.Annotations == nil {
					out.Annotations = map[string]string{}
				}
				out.Annotations[k] = v
			}
		}
		return out, nil
	}
}
