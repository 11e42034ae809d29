package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyName is the only LogRouterPolicy in force: the cluster has one policy.
const PolicyName = "default"

// LogRouterPolicy is the platform team's policy for all namespaces: which are collected, their
// limits and topics, and what their pipelines may do. Only the one named "default" exists.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lrp,categories=logrouter
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the cluster has one LogRouterPolicy, named default"
// +kubebuilder:printcolumn:name="Lines/s",type=integer,JSONPath=`.spec.limits.linesPerSecond`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.limits.action`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LogRouterPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LogRouterPolicySpec   `json:"spec,omitempty"`
	Status LogRouterPolicyStatus `json:"status,omitempty"`
}

// LogRouterPolicyList is a list of LogRouterPolicies.
//
// +kubebuilder:object:root=true
type LogRouterPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LogRouterPolicy `json:"items"`
}

// LogRouterPolicySpec is what the platform team writes.
type LogRouterPolicySpec struct {
	// Namespaces selects the namespaces whose logs are collected; empty collects all.
	// +optional
	Namespaces *metav1.LabelSelector `json:"namespaces,omitempty"`
	// Limits apply to each namespace on each node.
	// +optional
	Limits Limits `json:"limits,omitempty"`
	// Topics are the defaults for each namespace's topics.
	// +optional
	Topics Topics `json:"topics,omitempty"`
	// Overrides change limits and topics for the namespaces they select; the first that
	// selects a namespace applies.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Overrides []Override `json:"overrides,omitempty"`
	// MaxStepsPerPipeline (default 20).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	MaxStepsPerPipeline int32 `json:"maxStepsPerPipeline,omitempty"`
	// MaxPipelinesPerNamespace (default 10).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxPipelinesPerNamespace int32 `json:"maxPipelinesPerNamespace,omitempty"`
	// AllowedSuffixes are the output suffixes pipelines may use (logs.<ns>.<suffix>).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	AllowedSuffixes []string `json:"allowedSuffixes,omitempty"`
}

// Limits bound one namespace's collection on one node. Zero means unlimited.
//
// +kubebuilder:validation:XValidation:rule="!has(self.burstLines) || has(self.linesPerSecond)",message="burstLines needs linesPerSecond"
// +kubebuilder:validation:XValidation:rule="!has(self.burstBytes) || has(self.bytesPerSecond)",message="burstBytes needs bytesPerSecond"
type Limits struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	LinesPerSecond int64 `json:"linesPerSecond,omitempty"`
	// +optional
	BytesPerSecond *resource.Quantity `json:"bytesPerSecond,omitempty"`
	// BurstLines defaults to one second of LinesPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=0
	BurstLines int64 `json:"burstLines,omitempty"`
	// BurstBytes defaults to one second of BytesPerSecond.
	// +optional
	BurstBytes *resource.Quantity `json:"burstBytes,omitempty"`
	// Action beyond the limit: throttle (read slower; the file is the buffer, the default) or
	// drop (counted).
	// +optional
	Action LimitAction `json:"action,omitempty"`
}

// LimitAction is what happens to lines beyond a namespace's limit.
// +kubebuilder:validation:Enum=throttle;drop
type LimitAction string

const (
	LimitThrottle LimitAction = "throttle"
	LimitDrop     LimitAction = "drop"
)

// Topics are the settings of a namespace's topics.
type Topics struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Partitions int32 `json:"partitions,omitempty"`
	// Retention of the topics; the namespace's logrouter.io/retention annotation overrides it.
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`
}

// Override changes limits and topics for the namespaces it selects.
type Override struct {
	Namespaces metav1.LabelSelector `json:"namespaces"`
	// +optional
	Limits *Limits `json:"limits,omitempty"`
	// +optional
	Topics *Topics `json:"topics,omitempty"`
}

// LogRouterPolicyStatus is written by the controller.
type LogRouterPolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
