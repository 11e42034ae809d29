package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of this package.
var GroupVersion = schema.GroupVersion{Group: "logrouter.io", Version: "v1alpha1"}

// Resource names, for dynamic clients and informers.
var (
	LogPipelines      = GroupVersion.WithResource("logpipelines")
	LogRouterPolicies = GroupVersion.WithResource("logrouterpolicies")
)

// AddToScheme registers the types with a scheme. It is a function, not a package-level
// SchemeBuilder, so that importing the package registers nothing anywhere.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &LogPipeline{}, &LogPipelineList{}, &LogRouterPolicy{}, &LogRouterPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
