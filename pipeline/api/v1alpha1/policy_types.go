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
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Lines/s",type=integer,JSONPath=`.spec.limits.linesPerSecond`,description="Lines per second per namespace per node (0: unlimited)"
// +kubebuilder:printcolumn:name="Bytes/s",type=string,JSONPath=`.spec.limits.bytesPerSecond`,description="Bytes per second per namespace per node"
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.limits.action`,description="Beyond the limit: throttle or drop"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].reason`,priority=1
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
	//
	// The byte quantities are checked here by CEL rules; in overrides the API server cannot
	// afford them (CEL cost of unbounded quantity strings times 100 overrides), so the
	// controller checks those (status condition Accepted).
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.bytesPerSecond) || (quantity(string(self.bytesPerSecond)).isGreaterThan(quantity('0')) && quantity(string(self.bytesPerSecond)).isInteger())",message="bytesPerSecond must be a positive whole number of bytes"
	// +kubebuilder:validation:XValidation:rule="!has(self.burstBytes) || (quantity(string(self.burstBytes)).isGreaterThan(quantity('0')) && quantity(string(self.burstBytes)).isInteger())",message="burstBytes must be a positive whole number of bytes"
	// +kubebuilder:validation:XValidation:rule="!has(self.burstBytes) || !has(self.bytesPerSecond) || quantity(string(self.burstBytes)).compareTo(quantity(string(self.bytesPerSecond))) >= 0",message="burstBytes must be at least bytesPerSecond"
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
	// AllowedSuffixes are the output suffixes pipelines may use (logs.<ns>.<suffix>): each one
	// lowercase label without dots, like a pipeline's output.suffix.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AllowedSuffixes []string `json:"allowedSuffixes,omitempty"`
	// KafkaAccess, when set, has the controller provision Kafka credentials and ACLs for the
	// namespaces it selects (opt-in): see docs/kafka-access.md.
	// +optional
	KafkaAccess *KafkaAccess `json:"kafkaAccess,omitempty"`
}

// KafkaAccess is the opt-in to per-namespace Kafka credentials: a SCRAM-SHA-512 principal per
// selected namespace, READ/DESCRIBE on its topics and READ on its consumer groups, with the
// credentials in the Secret logrouter-kafka of the namespace.
type KafkaAccess struct {
	// Namespaces selects the namespaces that get credentials (for example
	// matchLabels: {logrouter.io/kafka-access: "true"}). Required: access is opt-in.
	Namespaces metav1.LabelSelector `json:"namespaces"`
	// PrincipalTemplate names a namespace's Kafka user; {namespace} is replaced by the
	// namespace's name (default logrouter-ns-{namespace}).
	// +optional
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]*\{namespace\}[A-Za-z0-9._-]*$`
	PrincipalTemplate string `json:"principalTemplate,omitempty"`
	// RotationGracePeriod is how long the previous credential keeps working after a rotation
	// (default 1h).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="rotationGracePeriod must be between 0s and 720h"
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
	// BootstrapServers written into the Secrets (what teams connect to); default: the
	// controller's --kafka-brokers.
	// +optional
	// +kubebuilder:validation:MaxLength=2000
	BootstrapServers string `json:"bootstrapServers,omitempty"`
}

// Limits bound one namespace's collection on one node. Zero means unlimited.
//
// +kubebuilder:validation:XValidation:rule="!has(self.burstLines) || has(self.linesPerSecond)",message="burstLines needs linesPerSecond"
// +kubebuilder:validation:XValidation:rule="!has(self.burstBytes) || has(self.bytesPerSecond)",message="burstBytes needs bytesPerSecond"
// +kubebuilder:validation:XValidation:rule="!has(self.burstLines) || !has(self.linesPerSecond) || self.burstLines >= self.linesPerSecond",message="burstLines must be at least linesPerSecond (a burst below one second of the rate starves the namespace)"
type Limits struct {
	// LinesPerSecond per namespace per node; 0 or unset: unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000000
	LinesPerSecond int64 `json:"linesPerSecond,omitempty"`
	// BytesPerSecond per namespace per node (a quantity: 10Mi); unset: unlimited.
	// +optional
	BytesPerSecond *resource.Quantity `json:"bytesPerSecond,omitempty"`
	// BurstLines defaults to one second of LinesPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=0
	BurstLines int64 `json:"burstLines,omitempty"`
	// BurstBytes defaults to one second of BytesPerSecond. A line longer than the burst still
	// passes, after waiting for a full bucket.
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
	// Partitions of a namespace's topics (created with it; Kafka can only add partitions).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Partitions int32 `json:"partitions,omitempty"`
	// Retention of the topics (a Go duration: 72h); the namespace's logrouter.io/retention
	// annotation overrides it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="retention must be at least 1m"
	Retention *metav1.Duration `json:"retention,omitempty"`
}

// Override changes limits and topics for the namespaces it selects.
//
// +kubebuilder:validation:XValidation:rule="has(self.limits) || has(self.topics)",message="an override sets limits or topics"
type Override struct {
	// Namespaces selects the namespaces the override applies to.
	Namespaces metav1.LabelSelector `json:"namespaces"`
	// Limits replace the policy's limits for these namespaces.
	// +optional
	Limits *Limits `json:"limits,omitempty"`
	// Topics replace the policy's topic settings for these namespaces.
	// +optional
	Topics *Topics `json:"topics,omitempty"`
}

// LogRouterPolicyStatus is written by the controller.
type LogRouterPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted (the policy is valid and in force).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// KafkaAccessSummary counts the namespaces with Kafka access by state. Each namespace's
	// own status is on its Secret logrouter-kafka (annotation logrouter.io/kafka-access) and
	// in its Events, not here: one entry per namespace would outgrow an object's size limit
	// with a few thousand namespaces (docs/kafka-access.md).
	// +optional
	KafkaAccessSummary *KafkaAccessSummary `json:"kafkaAccessSummary,omitempty"`
}

// KafkaAccessSummary counts the namespaces the controller has reconciled Kafka access for
// since it started (every namespace is reconciled at start).
type KafkaAccessSummary struct {
	// Provisioned: KafkaAccessReady is True (reason Provisioned).
	Provisioned int32 `json:"provisioned"`
	// Rotating: KafkaAccessReady is True (reason Rotating).
	Rotating int32 `json:"rotating"`
	// Failed: KafkaAccessReady is False; the namespace's Secret and Events say why.
	Failed int32 `json:"failed"`
}

// Kafka access condition and reasons (docs/kafka-access.md).
const (
	ConditionKafkaAccessReady = "KafkaAccessReady"

	ReasonProvisioned        = "Provisioned"
	ReasonRotating           = "Rotating"
	ReasonSecurityDisabled   = "KafkaSecurityDisabled"
	ReasonKafkaNotAuthorized = "KafkaNotAuthorized"
	ReasonSASLUnavailable    = "SASLUnavailable"
	ReasonKafkaError         = "KafkaError"
	ReasonSecretFailed       = "SecretFailed"
)

// NamespaceKafkaAccess is what the controller provisioned for one namespace: the JSON value
// of the annotation logrouter.io/kafka-access on the namespace's Secret logrouter-kafka.
type NamespaceKafkaAccess struct {
	// Namespace is the team's namespace.
	Namespace string `json:"namespace"`
	// User is the Kafka user (SCRAM-SHA-512) in the namespace's Secret.
	// +optional
	User string `json:"user,omitempty"`
	// PreviousUser is the user of the credential before the last rotation, removed at
	// PreviousRemoveAfter.
	// +optional
	PreviousUser string `json:"previousUser,omitempty"`
	// +optional
	PreviousRemoveAfter *metav1.Time `json:"previousRemoveAfter,omitempty"`
	// CredentialCreatedAt: when User's credential was written to Kafka.
	// +optional
	CredentialCreatedAt *metav1.Time `json:"credentialCreatedAt,omitempty"`
	// SecretUpdatedAt: when the Secret last received a credential.
	// +optional
	SecretUpdatedAt *metav1.Time `json:"secretUpdatedAt,omitempty"`
	// PreviousRemovedAt: when the previous credential and its ACLs were removed.
	// +optional
	PreviousRemovedAt *metav1.Time `json:"previousRemovedAt,omitempty"`
	// Rotation is the value of the namespace's logrouter.io/kafka-rotate annotation last acted on.
	// +optional
	Rotation string `json:"rotation,omitempty"`
	// Conditions: KafkaAccessReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
