package enricher

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/enricher/owner"
)

// podMeta is what the pod informer stores instead of a *corev1.Pod: what records carry and
// nothing else. A corev1.Pod is about 1.5 KB of structs before any content (each Container
// alone is ~600 bytes of mostly empty fields), so even a stripped Pod costs several times this.
type podMeta struct {
	metav1.ObjectMeta // name, namespace, UID, resourceVersion, allowed labels and annotations
	Node              string
	Owner             owner.Workload
	Images            []containerImage
}

type containerImage struct{ Name, Image string }

func (p *podMeta) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object; the informer machinery copies objects rarely.
func (p *podMeta) DeepCopyObject() runtime.Object {
	q := *p
	p.ObjectMeta.DeepCopyInto(&q.ObjectMeta)
	q.Images = append([]containerImage(nil), p.Images...)
	return &q
}

func (p *podMeta) image(container string) string {
	for _, c := range p.Images {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

// nsMeta is what the namespace informer stores: name, UID, allowed labels and the
// logrouter.io/ annotations (the settings the enricher reads).
type nsMeta struct {
	metav1.ObjectMeta
}

func (n *nsMeta) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (n *nsMeta) DeepCopyObject() runtime.Object {
	q := &nsMeta{}
	n.ObjectMeta.DeepCopyInto(&q.ObjectMeta)
	return q
}

// podTransform returns the informer transform for pods. The owner is resolved here, while
// the pod-template-hash label is still present even when the allow-list drops it. Objects that
// are not pods (already transformed ones, tombstones) pass through, so it is idempotent.
func podTransform(labels, annotations *allowlist.List) cache.TransformFunc {
	return func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil
		}
		return stripPod(p, labels, annotations), nil
	}
}

func stripPod(p *corev1.Pod, labels, annotations *allowlist.List) *podMeta {
	out := &podMeta{
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       p.Namespace,
			UID:             p.UID,
			ResourceVersion: p.ResourceVersion,
			Labels:          labels.Filter(p.Labels),
			Annotations:     annotations.Filter(p.Annotations),
		},
		Node:  p.Spec.NodeName,
		Owner: owner.Resolve(p.OwnerReferences, p.Labels),
	}
	n := len(p.Spec.Containers) + len(p.Spec.InitContainers) + len(p.Spec.EphemeralContainers)
	if n > 0 {
		out.Images = make([]containerImage, 0, n)
	}
	for _, c := range p.Spec.Containers {
		out.Images = append(out.Images, containerImage{c.Name, c.Image})
	}
	for _, c := range p.Spec.InitContainers {
		out.Images = append(out.Images, containerImage{c.Name, c.Image})
	}
	for _, c := range p.Spec.EphemeralContainers {
		out.Images = append(out.Images, containerImage{c.Name, c.Image})
	}
	return out
}

// namespaceTransform returns the informer transform for namespaces.
func namespaceTransform(labels *allowlist.List) cache.TransformFunc {
	return func(obj any) (any, error) {
		ns, ok := obj.(*corev1.Namespace)
		if !ok {
			return obj, nil
		}
		out := &nsMeta{metav1.ObjectMeta{
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
