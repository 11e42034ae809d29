// Package kafkaacl is the one definition of the Kafka ACLs logrouter grants: those of a
// team's namespace principal (provisioned by the controller) and those of logrouter's own
// components (`logrouter kafka acls`). It creates, lists and deletes them through the Kafka
// admin API.
package kafkaacl

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Binding is one ALLOW ACL for any host.
type Binding struct {
	Principal string // User:<name>
	Resource  kmsg.ACLResourceType
	Name      string
	Prefixed  bool
	Operation kmsg.ACLOperation
}

// String is the ACL as the table in docs/kafka-access.md writes it.
func (b Binding) String() string {
	pat := "literal"
	if b.Prefixed {
		pat = "prefixed"
	}
	return fmt.Sprintf("ALLOW %s %s %s %s %q", b.Principal, b.Operation, b.Resource, pat, b.Name)
}

func (b Binding) pattern() kmsg.ACLResourcePatternType {
	if b.Prefixed {
		return kmsg.ACLResourcePatternTypePrefixed
	}
	return kmsg.ACLResourcePatternTypeLiteral
}

// User is the principal of a SASL user.
func User(name string) string { return "User:" + name }

// ClusterName is the one cluster resource's name.
const ClusterName = "kafka-cluster"

// Namespace is what a team's principal may do, and nothing more: READ and DESCRIBE on its
// topic and on the topics prefixed by topic+"." (pipeline suffix topics), READ on the
// consumer groups prefixed by namespace+".".
func Namespace(principal, topic, namespace string) []Binding {
	var out []Binding
	for _, t := range []struct {
		name     string
		prefixed bool
	}{{topic, false}, {topic + ".", true}} {
		for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe} {
			out = append(out, Binding{Principal: principal, Resource: kmsg.ACLResourceTypeTopic, Name: t.name, Prefixed: t.prefixed, Operation: op})
		}
	}
	return append(out, Binding{Principal: principal, Resource: kmsg.ACLResourceTypeGroup, Name: namespace + ".", Prefixed: true, Operation: kmsg.ACLOperationRead})
}

// Components names logrouter's own principals and the resources they use.
type Components struct {
	Collector, Archiver, Gateway, Controller string // principals (User:<name>); empty: not printed
	TopicPrefix                              string // namespace topics' prefix (logs.)
	ArchiverGroup                            string
	TokenTopic                               string // the gateway's token store
	CountersTopic                            string // collectors' pipeline counters, folded by the controller
	// KafkaAccess: the controller provisions teams' credentials and ACLs (cluster ALTER/DESCRIBE).
	KafkaAccess bool
}

// Component names, in the order they are printed.
var ComponentNames = []string{"collector", "archiver", "gateway", "controller"}

// Bindings returns each component's ACLs (component name -> ACLs), for the principals set.
func (c Components) Bindings() map[string][]Binding {
	topic := func(p, name string, prefixed bool, ops ...kmsg.ACLOperation) []Binding {
		var out []Binding
		for _, op := range ops {
			out = append(out, Binding{Principal: p, Resource: kmsg.ACLResourceTypeTopic, Name: name, Prefixed: prefixed, Operation: op})
		}
		return out
	}
	const (
		read     = kmsg.ACLOperationRead
		write    = kmsg.ACLOperationWrite
		create   = kmsg.ACLOperationCreate
		alter    = kmsg.ACLOperationAlter
		describe = kmsg.ACLOperationDescribe
		descCfg  = kmsg.ACLOperationDescribeConfigs
		alterCfg = kmsg.ACLOperationAlterConfigs
	)
	out := map[string][]Binding{}
	if p := c.Collector; p != "" {
		// The collector creates a namespace's topic on first use and reads its
		// max.message.bytes; it reads its node's pipeline counters back at start and publishes
		// them (no CREATE there: the controller creates that topic compacted, and a collector
		// must not create it with Kafka's defaults); Kafka before 3.0 wants IDEMPOTENT_WRITE on
		// the cluster for an idempotent producer (later versions imply it from WRITE).
		b := topic(p, c.TopicPrefix, true, write, create, descCfg)
		b = append(b, topic(p, c.CountersTopic, false, read, write)...)
		b = append(b, Binding{Principal: p, Resource: kmsg.ACLResourceTypeCluster, Name: ClusterName, Operation: kmsg.ACLOperationIdempotentWrite})
		out["collector"] = b
	}
	if p := c.Archiver; p != "" {
		b := topic(p, c.TopicPrefix, true, read)
		b = append(b, Binding{Principal: p, Resource: kmsg.ACLResourceTypeGroup, Name: c.ArchiverGroup, Operation: read})
		out["archiver"] = b
	}
	if p := c.Gateway; p != "" {
		b := topic(p, c.TopicPrefix, true, read)
		b = append(b, topic(p, c.TokenTopic, false, read, write, create, descCfg)...)
		out["gateway"] = b
	}
	if p := c.Controller; p != "" {
		b := topic(p, c.TopicPrefix, true, create, alter, describe, descCfg, alterCfg)
		// The counters topic: folded (READ), tombstones for deleted pipelines (WRITE), created
		// compacted (CREATE, the CONFIGS).
		b = append(b, topic(p, c.CountersTopic, false, read, write, create, descCfg, alterCfg)...)
		if c.KafkaAccess {
			for _, op := range []kmsg.ACLOperation{alter, describe} {
				b = append(b, Binding{Principal: p, Resource: kmsg.ACLResourceTypeCluster, Name: ClusterName, Operation: op})
			}
		}
		out["controller"] = b
	}
	return out
}

// Errors callers branch on (each wraps Kafka's error code).
var (
	// ErrSecurityDisabled: the brokers have no authorizer (SECURITY_DISABLED).
	ErrSecurityDisabled = errors.New("the Kafka cluster has no ACL authorizer (SECURITY_DISABLED)")
	// ErrNotAuthorized: our principal may not manage ACLs or credentials.
	ErrNotAuthorized = errors.New("not authorized to manage ACLs or SCRAM credentials (needs ALTER and DESCRIBE on the cluster)")
)

// classify wraps a Kafka error code with the sentinel callers branch on.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.SecurityDisabled):
		return fmt.Errorf("%s: %w: %w", what, ErrSecurityDisabled, err)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("%s: %w: %w", what, ErrNotAuthorized, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Create creates the bindings (creating an existing ACL is a no-op in Kafka).
func Create(ctx context.Context, cl *kgo.Client, bs []Binding) error {
	if len(bs) == 0 {
		return nil
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for _, b := range bs {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = b.Resource, b.Name, b.pattern()
		c.Principal, c.Host, c.Operation, c.PermissionType = b.Principal, "*", b.Operation, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return classify(err, "create ACLs")
	}
	var errs []error
	for i, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil && i < len(bs) {
			errs = append(errs, classify(err, "create ACL "+bs[i].String()))
		}
	}
	return errors.Join(errs...)
}

// List returns every ACL of principal (any resource, pattern and operation).
func List(ctx context.Context, cl *kgo.Client, principal string) ([]Binding, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Principal, req.Operation, req.PermissionType = &principal, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, classify(err, "describe ACLs")
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, classify(err, "describe ACLs of "+principal)
	}
	var out []Binding
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			out = append(out, Binding{Principal: a.Principal, Resource: r.ResourceType, Name: r.ResourceName,
				Prefixed: r.ResourcePatternType == kmsg.ACLResourcePatternTypePrefixed, Operation: a.Operation})
		}
	}
	Sort(out)
	return out, nil
}

// Principals lists every principal that has an ACL.
func Principals(ctx context.Context, cl *kgo.Client) ([]string, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, classify(err, "describe ACLs")
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, classify(err, "describe ACLs")
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			if !seen[a.Principal] {
				seen[a.Principal] = true
				out = append(out, a.Principal)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete deletes exactly these bindings.
func Delete(ctx context.Context, cl *kgo.Client, bs []Binding) error {
	if len(bs) == 0 {
		return nil
	}
	req := kmsg.NewPtrDeleteACLsRequest()
	for _, b := range bs {
		f := kmsg.NewDeleteACLsRequestFilter()
		name, p, host := b.Name, b.Principal, "*"
		f.ResourceType, f.ResourceName, f.ResourcePatternType = b.Resource, &name, b.pattern()
		f.Principal, f.Host, f.Operation, f.PermissionType = &p, &host, b.Operation, kmsg.ACLPermissionTypeAllow
		req.Filters = append(req.Filters, f)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return classify(err, "delete ACLs")
	}
	var errs []error
	for i, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil && i < len(bs) {
			errs = append(errs, classify(err, "delete ACL "+bs[i].String()))
		}
	}
	return errors.Join(errs...)
}

// DeleteAll deletes every ACL of principal.
func DeleteAll(ctx context.Context, cl *kgo.Client, principal string) error {
	req := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Principal, f.Operation, f.PermissionType = &principal, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	req.Filters = append(req.Filters, f)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return classify(err, "delete ACLs")
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return classify(err, "delete ACLs of "+principal)
		}
	}
	return nil
}

// Sync makes principal's ACLs exactly want: it creates what is missing, then deletes what
// is not wanted.
func Sync(ctx context.Context, cl *kgo.Client, principal string, want []Binding) error {
	if err := Create(ctx, cl, want); err != nil {
		return err
	}
	have, err := List(ctx, cl, principal)
	if err != nil {
		return err
	}
	wanted := map[Binding]bool{}
	for _, b := range want {
		wanted[b] = true
	}
	var extra []Binding
	for _, b := range have {
		if !wanted[b] {
			extra = append(extra, b)
		}
	}
	return Delete(ctx, cl, extra)
}

// Sort orders bindings by principal, resource, name, then operation.
func Sort(bs []Binding) {
	sort.Slice(bs, func(i, j int) bool {
		a, b := bs[i], bs[j]
		if a.Principal != b.Principal {
			return a.Principal < b.Principal
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Prefixed != b.Prefixed {
			return !a.Prefixed
		}
		return a.Operation < b.Operation
	})
}

// KafkaACLsCommand is the equivalent `kafka-acls.sh` command line of a binding, for
// platform teams that apply ACLs with Kafka's own tools.
func KafkaACLsCommand(b Binding) string {
	var res string
	switch b.Resource {
	case kmsg.ACLResourceTypeTopic:
		res = "--topic " + b.Name
	case kmsg.ACLResourceTypeGroup:
		res = "--group " + b.Name
	case kmsg.ACLResourceTypeCluster:
		res = "--cluster"
	default:
		res = "--resource " + b.Name
	}
	pat := ""
	if b.Prefixed {
		pat = " --resource-pattern-type prefixed"
	}
	// kafka-acls.sh spells operations in CamelCase (DESCRIBE_CONFIGS is DescribeConfigs).
	var op strings.Builder
	for _, w := range strings.Split(b.Operation.String(), "_") {
		op.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return fmt.Sprintf("kafka-acls.sh --bootstrap-server $BROKERS --add --allow-principal %s --operation %s %s%s", b.Principal, op.String(), res, pat)
}
