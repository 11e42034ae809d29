// Package v1alpha1 holds the logrouter.io/v1alpha1 API: LogPipeline (namespaced, written by a
// team) and LogRouterPolicy (cluster-scoped, written by the platform team). The CRDs in
// deploy/crds are generated from these types by controller-gen (see deploy/crds/generate.go).
//
// +kubebuilder:object:generate=true
// +groupName=logrouter.io
package v1alpha1
