package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// TestKafkaAccessLeastPrivilege: the controller logs in as its own user with only the ACLs
// `logrouter kafka acls` grants it, against a Kafka that enforces them. It creates the
// compacted counters topic, provisions two namespaces, rotates one and cleans up the other.
// Then, without ALTER on the cluster, a new namespace is refused by Kafka itself: the log,
// the failures metric and that namespace's condition name CLUSTER_AUTHORIZATION_FAILED,
// nothing of its user is left in Kafka, and the namespace already provisioned is untouched.
func TestKafkaAccessLeastPrivilege(t *testing.T) {
	e := startAccessEnvWith(t, accessSetup{leastPrivilege: true}, "logs.team-a", "logs.team-b", "logs.team-c")
	ctx := context.Background()
	e.policy(t, 2*time.Second)
	e.namespace(t, "team-a", true)
	e.namespace(t, "team-b", true)
	e.access(t, "team-a", v1alpha1.ReasonProvisioned)
	e.access(t, "team-b", v1alpha1.ReasonProvisioned)
	e.summary(t, v1alpha1.KafkaAccessSummary{Provisioned: 2})
	sa := e.secret(t, "team-a")
	u, p := creds(sa)
	if got, err := readAll(ctx, sa, u, p, "team-a.reader", "logs.team-a"); err != nil || len(got) != 1 {
		t.Fatalf("team-a reads its topic: %v %v", got, err)
	}
	// The counters topic, made by the controller as its own user (CREATE, DESCRIBE_CONFIGS).
	waitFor(t, "the compacted counters topic", func() (bool, string) {
		rc, err := kadm.NewClient(e.admin).DescribeTopicConfigs(ctx, DefaultConfig().Counters.Topic)
		if err != nil {
			return false, err.Error()
		}
		r, err := rc.On(DefaultConfig().Counters.Topic, nil)
		if err != nil || r.Err != nil {
			return false, errString(err, r.Err)
		}
		for _, c := range r.Configs {
			if c.Key == "cleanup.policy" {
				return c.MaybeValue() == "compact", c.MaybeValue()
			}
		}
		return false, "no cleanup.policy"
	})

	// Rotation: the second user, then the first removed after the grace period.
	patchNS(t, e.c, "team-a", func(ns *corev1.Namespace) { ns.Annotations = map[string]string{AnnotationKafkaRotate: "1"} })
	e.access(t, "team-a", v1alpha1.ReasonRotating)
	done := e.access(t, "team-a", v1alpha1.ReasonProvisioned)
	if done.User != "logrouter-ns-team-a.2" || done.PreviousRemovedAt == nil {
		t.Errorf("after the rotation: %+v", done)
	}
	if l, err := kafkaacl.List(ctx, e.admin, "User:logrouter-ns-team-a"); err != nil || len(l) != 0 {
		t.Errorf("the rotated-out user keeps ACLs: %v %v", l, err)
	}
	// Clean up: opted out.
	patchNS(t, e.c, "team-b", func(ns *corev1.Namespace) { delete(ns.Labels, optInLabel) })
	e.gone(t, "team-b", "logrouter-ns-team-b")
	e.summary(t, v1alpha1.KafkaAccessSummary{Provisioned: 1})
	if s := e.log.String(); strings.Contains(s, "AUTHORIZATION_FAILED") {
		t.Fatalf("the controller was refused something with its documented ACLs:\n%s", s)
	}

	// Without ALTER on the cluster.
	var alter kafkaacl.Binding
	for _, b := range e.ctrlACL {
		if b.Resource.String() == "CLUSTER" && b.Operation.String() == "ALTER" {
			alter = b
		}
	}
	if alter.Principal == "" {
		t.Fatalf("the controller's ACLs have no ALTER on the cluster: %v", e.ctrlACL)
	}
	if err := kafkaacl.Delete(ctx, e.admin, []kafkaacl.Binding{alter}); err != nil {
		t.Fatal(err)
	}
	mark := len(e.log.String())
	e.namespace(t, "team-c", true)
	a := e.access(t, "team-c", v1alpha1.ReasonKafkaNotAuthorized)
	c := meta.FindStatusCondition(a.Conditions, v1alpha1.ConditionKafkaAccessReady)
	for _, want := range []string{"CLUSTER_AUTHORIZATION_FAILED", "needs ALTER and DESCRIBE on the cluster", "nothing of logrouter-ns-team-c is left in Kafka"} {
		if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, want) {
			t.Errorf("team-c condition lacks %q: %+v", want, c)
		}
	}
	waitFor(t, "the log names the refusal", func() (bool, string) {
		s := e.log.String()[mark:]
		return strings.Contains(s, "namespace=team-c") && strings.Contains(s, "reason=KafkaNotAuthorized") && strings.Contains(s, "CLUSTER_AUTHORIZATION_FAILED"), s
	})
	if n := testutil.ToFloat64(accessFailures(e.reg, v1alpha1.ReasonKafkaNotAuthorized)); n < 1 {
		t.Errorf("logrouter_controller_kafka_access_failures_total{reason=KafkaNotAuthorized} = %v", n)
	}
	e.nothingLeft(t, "team-c", "logrouter-ns-team-c")
	e.summary(t, v1alpha1.KafkaAccessSummary{Provisioned: 1, Failed: 1})
	if a := e.access(t, "team-a", v1alpha1.ReasonProvisioned); a.User != "logrouter-ns-team-a.2" {
		t.Errorf("team-a changed: %+v", a)
	}
	// The Event on team-c says it too.
	waitFor(t, "a Warning Event on team-c", func() (bool, string) {
		var l corev1.EventList
		if err := e.c.List(ctx, &l, client.InNamespace("team-c")); err != nil {
			return false, err.Error()
		}
		for _, ev := range l.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == v1alpha1.ReasonKafkaNotAuthorized && ev.InvolvedObject.Name == KafkaSecretName && strings.Contains(ev.Message, "CLUSTER_AUTHORIZATION_FAILED") {
				return true, ""
			}
		}
		var seen []string
		for _, ev := range l.Items {
			seen = append(seen, ev.Type+" "+ev.Reason+" "+ev.InvolvedObject.Name)
		}
		return false, fmt.Sprintf("no such Event among %v", seen)
	})

	// ALTER given back: team-c is provisioned at the next retry.
	if err := kafkaacl.Create(ctx, e.admin, []kafkaacl.Binding{alter}); err != nil {
		t.Fatal(err)
	}
	e.access(t, "team-c", v1alpha1.ReasonProvisioned)
	e.summary(t, v1alpha1.KafkaAccessSummary{Provisioned: 2})
	var s corev1.Secret
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-c", Name: KafkaSecretName}, &s); err != nil || string(s.Data["username"]) != "logrouter-ns-team-c" {
		t.Errorf("team-c Secret after the retry: %v %q", err, s.Data["username"])
	}
}

// TestKafkaAccessRefusals: kfake's own refusals, not injected ones. A Kafka that accepts ACLs
// without enforcing them (kfake without EnableACLs; Apache Kafka without an authorizer answers
// SECURITY_DISABLED instead, which kfake never does: see TestKafkaAccess), with SASL required
// or not: the namespace's condition says so, with the metric, and its user is removed again.
func TestKafkaAccessRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  accessSetup
		reason string
		msg    string
	}{
		{"ACLs not enforced", accessSetup{noACLs: true}, v1alpha1.ReasonSecurityDisabled, "does not enforce ACLs"},
		// kfake serves SASL logins also when it does not require them (no EnableSASL), so the
		// login works and what the check finds is that nothing is enforced. (A listener without
		// SASL, SASLUnavailable, is injected in TestKafkaAccess.)
		{"no SASL", accessSetup{noSASL: true}, v1alpha1.ReasonSecurityDisabled, "does not enforce ACLs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startAccessEnvWith(t, tc.setup, "logs.team-a")
			e.policy(t, time.Hour)
			e.namespace(t, "team-a", true)
			a := e.access(t, "team-a", tc.reason)
			c := meta.FindStatusCondition(a.Conditions, v1alpha1.ConditionKafkaAccessReady)
			if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, tc.msg) || !strings.Contains(c.Message, "nothing of logrouter-ns-team-a is left in Kafka") {
				t.Errorf("condition: %+v", c)
			}
			if n := testutil.ToFloat64(accessFailures(e.reg, tc.reason)); n < 1 {
				t.Errorf("failures metric for %s = %v", tc.reason, n)
			}
			e.nothingLeft(t, "team-a", "logrouter-ns-team-a")
			e.summary(t, v1alpha1.KafkaAccessSummary{Failed: 1})
		})
	}
}

// TestKafkaAccessSweep: a namespace deleted, Secret and all, while no controller ran leaves
// nothing to reconcile in Kubernetes; the next controller finds its users in Kafka (SCRAM
// credentials and ACLs, through the principal template) and removes them. A namespace that is
// there and opted in is left alone.
func TestKafkaAccessSweep(t *testing.T) {
	e := startAccessEnv(t, "logs.team-x", "logs.team-y")
	ctx := context.Background()
	e.policy(t, time.Hour)
	e.namespace(t, "team-x", true)
	e.namespace(t, "team-y", true)
	e.access(t, "team-x", v1alpha1.ReasonProvisioned)
	y := e.access(t, "team-y", v1alpha1.ReasonProvisioned)
	e.stop()
	// Deleted for good: the Secret, then the namespace (the fixture runs no namespace
	// controller: its finalizer is removed as that controller would).
	if err := e.c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-x", Name: KafkaSecretName}}); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-x"}}
	if err := e.c.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Get(ctx, types.NamespacedName{Name: "team-x"}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Spec.Finalizers = nil
	if err := e.c.SubResource("finalize").Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "namespace team-x gone", func() (bool, string) {
		err := e.c.Get(ctx, types.NamespacedName{Name: "team-x"}, &corev1.Namespace{})
		return apierrors.IsNotFound(err), errString(err)
	})
	if l, err := kafkaacl.List(ctx, e.admin, "User:logrouter-ns-team-x"); err != nil || len(l) == 0 {
		t.Fatalf("team-x's ACLs are already gone before a controller runs: the test shows nothing (%v)", err)
	}
	e.start(t)
	waitFor(t, "team-x's user removed from Kafka", func() (bool, string) {
		l, err := kafkaacl.List(ctx, e.admin, "User:logrouter-ns-team-x")
		if err != nil || len(l) != 0 {
			return false, fmt.Sprintf("ACLs %v %v", l, err)
		}
		d, err := kadm.NewClient(e.admin).DescribeUserSCRAMs(ctx, "logrouter-ns-team-x")
		if err == nil && d.Error() == nil {
			return false, "credential left"
		}
		return true, ""
	})
	if a := e.access(t, "team-y", v1alpha1.ReasonProvisioned); a.User != y.User || !a.CredentialCreatedAt.Equal(y.CredentialCreatedAt) {
		t.Errorf("team-y changed: %+v, was %+v", a, y)
	}
	e.summary(t, v1alpha1.KafkaAccessSummary{Provisioned: 1})
}

// TestEventNote: a long message fits an Event's note (at most 1 KiB, cut on a rune).
func TestEventNote(t *testing.T) {
	for _, msg := range []string{"short", strings.Repeat("é", 2000), strings.Repeat("a", 1024), strings.Repeat("a", 1025)} {
		n := eventNote(msg)
		if len(n) > 1024 || !utf8.ValidString(n) || (len(msg) <= 1024 && n != msg) || (len(msg) > 1024 && !strings.Contains(n, AnnotationKafkaAccess)) {
			t.Errorf("eventNote of %d bytes: %d bytes, %q...", len(msg), len(n), n[:min(len(n), 40)])
		}
	}
}

// TestNamespaceOf: the namespace a Kafka user belongs to, by the principal template.
func TestNamespaceOf(t *testing.T) {
	for _, tc := range []struct {
		tmpl, user, ns string
		ok             bool
	}{
		{DefaultPrincipalTemplate, "logrouter-ns-team-a", "team-a", true},
		{DefaultPrincipalTemplate, "logrouter-ns-team-a.2", "team-a", true},
		{DefaultPrincipalTemplate, "logrouter-ns-", "", false},
		{DefaultPrincipalTemplate, "logrouter-collector", "", false},
		{DefaultPrincipalTemplate, "logrouter-ns-Team_A", "", false}, // not a namespace name
		{DefaultPrincipalTemplate, "logrouter-ns-a.b", "", false},
		{"{namespace}-kafka", "team-a-kafka", "team-a", true},
		{"{namespace}-kafka", "team-a-kafka.2", "team-a", true},
		{"{namespace}-kafka", "admin", "", false},
		{"no-placeholder", "no-placeholder", "", false},
	} {
		ns, ok := namespaceOf(tc.tmpl, tc.user)
		if ns != tc.ns || ok != tc.ok {
			t.Errorf("namespaceOf(%q, %q) = %q %v, want %q %v", tc.tmpl, tc.user, ns, ok, tc.ns, tc.ok)
		}
	}
}

func errString(errs ...error) string {
	for _, err := range errs {
		if err != nil {
			return err.Error()
		}
	}
	return ""
}
