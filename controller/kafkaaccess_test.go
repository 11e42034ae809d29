package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

const (
	adminUser, adminPass = "admin", "admin-secret"
	optInLabel           = "logrouter.io/kafka-access"
)

// accessSetup is the Kafka a test's controller provisions against.
type accessSetup struct {
	// leastPrivilege: the controller logs in as its own user with only the ACLs
	// `logrouter kafka acls` grants it (internal/kafkaacl), not as the superuser.
	leastPrivilege bool
	noACLs         bool // kfake does not enforce ACLs (it accepts them all the same)
	noSASL         bool // kfake has no SASL (and so no ACL enforcement): the controller connects in plaintext
}

const ctrlUser, ctrlPass = "logrouter-controller", "controller-secret"

// secureKafka is a kfake with SASL and ACL enforcement on, the controller's user its superuser.
func secureKafka(t *testing.T, topics ...string) (*kfake.Cluster, *kgo.Client) {
	return kafkaFor(t, accessSetup{}, topics...)
}

// kafkaFor is a kfake as the setup says (SASL and ACLs enforced unless told otherwise, an
// admin superuser, the controller's own user) and an admin client of it.
func kafkaFor(t *testing.T, setup accessSetup, topics ...string) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1), kfake.SeedTopics(1, topics...)}
	if !setup.noSASL {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", adminUser, adminPass), kfake.User("SCRAM-SHA-512", ctrlUser, ctrlPass))
		if !setup.noACLs {
			opts = append(opts, kfake.EnableACLs())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	copts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	if !setup.noSASL {
		copts = append(copts, kgo.SASL(scram.Auth{User: adminUser, Pass: adminPass}.AsSha512Mechanism()))
	}
	admin, err := kgo.NewClient(copts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if !setup.noSASL {
		advertiseSASLHandshakeV0(t, c, admin)
	}
	for _, tp := range topics {
		if err := admin.ProduceSync(context.Background(), &kgo.Record{Topic: tp, Value: []byte("line of " + tp)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return c, admin
}

// advertiseSASLHandshakeV0 makes kfake advertise SaslHandshake from version 0, as Kafka does:
// kfake serves only v1 and says so, and librdkafka (kcat) refuses SCRAM unless the broker's
// range includes v0, although it then sends v1.
func advertiseSASLHandshakeV0(t *testing.T, c *kfake.Cluster, admin *kgo.Client) {
	t.Helper()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	for i := range resp.ApiKeys {
		if resp.ApiKeys[i].ApiKey == kmsg.SASLHandshake.Int16() {
			resp.ApiKeys[i].MinVersion = 0
		}
	}
	c.ControlKey(kmsg.ApiVersions.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if req.GetVersion() < 3 {
			return nil, nil, false
		}
		r := *resp
		r.SetVersion(req.GetVersion())
		return &r, nil, true
	})
}

// login authenticates with a credential and asks for a topic's metadata.
func login(brokers, user, pass, tp string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(tp)
	req.Topics = append(req.Topics, mt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].ErrorCode)
}

// accessEnv is a real kube-apiserver and a secure kfake with a controller running as the
// RBAC-limited controller user.
type accessEnv struct {
	c       client.Client
	kfake   *kfake.Cluster
	admin   *kgo.Client
	reg     *prometheus.Registry
	log     *syncbuf.Buffer
	brokers string
	ctrlACL []kafkaacl.Binding             // leastPrivilege: the controller's ACLs
	start   func(*testing.T) (stop func()) // starts a controller (a new registry in reg)
	stop    func()                         // stops the running one
}

func startAccessEnv(t *testing.T, topics ...string) *accessEnv {
	return startAccessEnvWith(t, accessSetup{}, topics...)
}

func startAccessEnvWith(t *testing.T, setup accessSetup, topics ...string) *accessEnv {
	t.Helper()
	base := startEnv(t) // the kube-apiserver, CRDs and the controller user's RBAC (its kfake is unused)
	kc, admin := kafkaFor(t, setup, topics...)
	e := &accessEnv{c: base.c, kfake: kc, admin: admin, reg: prometheus.NewRegistry(), log: &syncbuf.Buffer{}, brokers: strings.Join(kc.ListenAddrs(), ",")}
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = e.brokers
	switch {
	case setup.noSASL:
	case setup.leastPrivilege:
		cfg.Kafka.SASLMechanism, cfg.Kafka.SASLUser, cfg.Kafka.SASLPassword = "SCRAM-SHA-512", ctrlUser, ctrlPass
		e.ctrlACL = kafkaacl.Components{Controller: kafkaacl.User(ctrlUser), TopicPrefix: "logs.", CountersTopic: cfg.Counters.Topic, KafkaAccess: true}.Bindings()["controller"]
		if err := kafkaacl.Create(context.Background(), admin, e.ctrlACL); err != nil {
			t.Fatal(err)
		}
	default:
		cfg.Kafka.SASLMechanism, cfg.Kafka.SASLUser, cfg.Kafka.SASLPassword = "SCRAM-SHA-512", adminUser, adminPass
	}
	cfg.LeaderElectionNamespace = "default"
	e.start = func(t *testing.T) (stop func()) {
		t.Helper()
		e.reg = prometheus.NewRegistry()
		ctrlr, err := New(cfg, base.rc, e.reg, slog.New(slog.NewTextHandler(e.log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ctrlr.Run(ctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("controller: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	e.stop = e.start(t)
	return e
}

func (e *accessEnv) policy(t *testing.T, grace time.Duration) {
	t.Helper()
	p := &v1alpha1.LogRouterPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.PolicyName}, Spec: v1alpha1.LogRouterPolicySpec{
		AllowedSuffixes: []string{"debug"},
		KafkaAccess: &v1alpha1.KafkaAccess{
			Namespaces:          metav1.LabelSelector{MatchLabels: map[string]string{optInLabel: "true"}},
			RotationGracePeriod: &metav1.Duration{Duration: grace},
		},
	}}
	if err := e.c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func (e *accessEnv) namespace(t *testing.T, name string, optIn bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if optIn {
		ns.Labels = map[string]string{optInLabel: "true"}
	}
	if err := e.c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// access waits until the namespace's status (its Secret's annotation) has this reason.
func (e *accessEnv) access(t *testing.T, ns, reason string) v1alpha1.NamespaceKafkaAccess {
	t.Helper()
	var got v1alpha1.NamespaceKafkaAccess
	waitFor(t, fmt.Sprintf("kafka access of %s: %s", ns, reason), func() (bool, string) {
		var s corev1.Secret
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: KafkaSecretName}, &s); err != nil {
			return false, err.Error()
		}
		raw, ok := s.Annotations[AnnotationKafkaAccess]
		var a v1alpha1.NamespaceKafkaAccess
		if err := json.Unmarshal([]byte(raw), &a); !ok || err != nil {
			return false, fmt.Sprintf("annotation %s %q: %v", AnnotationKafkaAccess, raw, err)
		}
		got = a
		c := meta.FindStatusCondition(a.Conditions, v1alpha1.ConditionKafkaAccessReady)
		return a.Namespace == ns && c != nil && c.Reason == reason, raw
	})
	return got
}

// summary waits until the policy's status.kafkaAccessSummary is want.
func (e *accessEnv) summary(t *testing.T, want v1alpha1.KafkaAccessSummary) {
	t.Helper()
	waitFor(t, fmt.Sprintf("kafkaAccessSummary %+v", want), func() (bool, string) {
		var p v1alpha1.LogRouterPolicy
		if err := e.c.Get(context.Background(), types.NamespacedName{Name: v1alpha1.PolicyName}, &p); err != nil {
			return false, err.Error()
		}
		s := p.Status.KafkaAccessSummary
		return s != nil && *s == want, fmt.Sprintf("%+v", s)
	})
}

func (e *accessEnv) secret(t *testing.T, ns string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: KafkaSecretName}, &s); err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, KafkaSecretName, err)
	}
	return &s
}

// teamClient is franz-go with a Secret's credentials, as docs/kafka-access.md shows.
func teamClient(t *testing.T, s *corev1.Secret, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(string(s.Data["bootstrap.servers"]), ",")...),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
		kgo.RequestRetries(2), kgo.RetryTimeout(5 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func creds(s *corev1.Secret) (string, string) {
	return string(s.Data["username"]), string(s.Data["password"])
}

// readAll consumes a topic from the start in a group and commits; it returns the values.
func readAll(ctx context.Context, s *corev1.Secret, user, pass, group string, topics ...string) ([]string, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(string(s.Data["bootstrap.servers"]), ",")...),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
		kgo.ConsumeTopics(topics...), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequestRetries(2), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < len(topics) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return got, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return got, ferr
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got, cl.CommitUncommittedOffsets(ctx)
}

func wantCode(t *testing.T, what string, err, code error) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Errorf("%s: got %v, want %v", what, err, code)
	}
}

// TestKafkaAccess: the controller provisions two opted-in namespaces against a Kafka with
// SASL and ACLs enforced; each Secret's credentials read their own topics and groups with
// franz-go, sarama and kcat, and nothing else. Then rotation, opt-out and namespace deletion.
func TestKafkaAccess(t *testing.T) {
	topics := []string{"logs.team-a", "logs.team-a.debug", "logs.team-b", "logs.team-b.debug", "logs.other"}
	e := startAccessEnv(t, topics...)
	e.policy(t, 8*time.Second)
	e.namespace(t, "team-a", true)
	e.namespace(t, "team-b", true)
	e.namespace(t, "team-c", false)
	ctx := context.Background()

	a := e.access(t, "team-a", v1alpha1.ReasonProvisioned)
	e.access(t, "team-b", v1alpha1.ReasonProvisioned)
	if a.User != "logrouter-ns-team-a" || a.CredentialCreatedAt == nil || a.SecretUpdatedAt == nil {
		t.Errorf("team-a status: %+v", a)
	}
	sa, sb := e.secret(t, "team-a"), e.secret(t, "team-b")
	for k, want := range map[string]string{"username": "logrouter-ns-team-a", "sasl.mechanism": "SCRAM-SHA-512", "topic": "logs.team-a",
		"topic.prefix": "logs.team-a.", "group.prefix": "team-a.", "bootstrap.servers": e.brokers, "security.protocol": "SASL_PLAINTEXT"} {
		if got := string(sa.Data[k]); got != want {
			t.Errorf("Secret team-a %s = %q, want %q", k, got, want)
		}
	}
	if len(sa.Data["password"]) < 32 || bytes.Equal(sa.Data["password"], sb.Data["password"]) {
		t.Errorf("passwords are not random: %q %q", sa.Data["password"], sb.Data["password"])
	}
	// Exactly the documented ACLs.
	acls, err := kafkaacl.List(ctx, e.admin, "User:logrouter-ns-team-a")
	if err != nil {
		t.Fatal(err)
	}
	want := kafkaacl.Namespace("User:logrouter-ns-team-a", "logs.team-a", "team-a")
	kafkaacl.Sort(want)
	if fmt.Sprint(acls) != fmt.Sprint(want) {
		t.Errorf("ACLs of team-a:\n got %v\nwant %v", acls, want)
	}
	var c corev1.Secret
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-c", Name: KafkaSecretName}, &c); !apierrors.IsNotFound(err) {
		t.Errorf("team-c (not opted in) has a Secret: %v", err)
	}

	for _, tc := range []struct {
		ns, other string
		s         *corev1.Secret
	}{{"team-a", "team-b", sa}, {"team-b", "team-a", sb}} {
		u, p := creds(tc.s)
		t.Run("franz-go "+tc.ns, func(t *testing.T) {
			got, err := readAll(ctx, tc.s, u, p, tc.ns+".readers", "logs."+tc.ns, "logs."+tc.ns+".debug")
			if err != nil || len(got) != 2 {
				t.Fatalf("own topics: %v %v", got, err)
			}
			_, err = readAll(ctx, tc.s, u, p, tc.ns+".readers", "logs."+tc.other)
			wantCode(t, "other namespace's topic", err, kerr.TopicAuthorizationFailed)
			_, err = readAll(ctx, tc.s, u, p, tc.other+".readers", "logs."+tc.ns)
			wantCode(t, "other namespace's group", err, kerr.GroupAuthorizationFailed)
			_, err = readAll(ctx, tc.s, u, p, "readers", "logs."+tc.ns)
			wantCode(t, "group without the prefix", err, kerr.GroupAuthorizationFailed)
			cl := teamClient(t, tc.s, u, p)
			// An idempotent producer (franz-go's default) is refused its producer ID; any producer
			// is refused the write.
			wantCode(t, "idempotent write", cl.ProduceSync(ctx, &kgo.Record{Topic: "logs." + tc.ns, Value: []byte("x")}).FirstErr(), kerr.ClusterAuthorizationFailed)
			plain := teamClient(t, tc.s, u, p, kgo.DisableIdempotentWrite())
			wantCode(t, "write", plain.ProduceSync(ctx, &kgo.Record{Topic: "logs." + tc.ns, Value: []byte("x")}).FirstErr(), kerr.TopicAuthorizationFailed)
			_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "logs."+tc.ns+".new")
			wantCode(t, "create topic", err, kerr.TopicAuthorizationFailed)
			_, err = kafkaacl.List(ctx, cl, kafkaacl.User(u))
			wantCode(t, "describe ACLs (a cluster operation)", err, kerr.ClusterAuthorizationFailed)
		})
		t.Run("sarama "+tc.ns, func(t *testing.T) { saramaChecks(t, tc.s, tc.ns, tc.other) })
		t.Run("kcat "+tc.ns, func(t *testing.T) { kcatChecks(t, tc.s, tc.ns, tc.other) })
	}

	t.Run("docs/kafka-access.md", func(t *testing.T) { checkAccessDoc(t, e, sa) })

	t.Run("rotation", func(t *testing.T) {
		oldUser, oldPass := creds(sa)
		patchNS(t, e.c, "team-a", func(ns *corev1.Namespace) {
			ns.Annotations = map[string]string{AnnotationKafkaRotate: "2026-12-01"}
		})
		r := e.access(t, "team-a", v1alpha1.ReasonRotating)
		if r.User != "logrouter-ns-team-a.2" || r.PreviousUser != oldUser || r.PreviousRemoveAfter == nil || r.Rotation != "2026-12-01" {
			t.Fatalf("rotating status: %+v", r)
		}
		ns := e.secret(t, "team-a")
		newUser, newPass := creds(ns)
		if newUser != r.User || newPass == oldPass {
			t.Fatalf("Secret not updated: %s", newUser)
		}
		// Both work during the grace period.
		if got, err := readAll(ctx, ns, newUser, newPass, "team-a.rotated", "logs.team-a"); err != nil || len(got) != 1 {
			t.Fatalf("new credential: %v %v", got, err)
		}
		if err := login(e.brokers, oldUser, oldPass, "logs.team-a"); err != nil && time.Now().Before(r.PreviousRemoveAfter.Add(-time.Second)) {
			t.Errorf("old credential within the grace period: %v", err)
		}
		done := e.access(t, "team-a", v1alpha1.ReasonProvisioned)
		if done.PreviousUser != "" || done.PreviousRemovedAt == nil || done.PreviousRemovedAt.Before(r.PreviousRemoveAfter) {
			t.Errorf("after the grace period: %+v", done)
		}
		// kfake closes the connection of an unknown SCRAM user (EOF); Kafka answers
		// SASL_AUTHENTICATION_FAILED. The new credential logs in over the same path.
		if err := login(e.brokers, oldUser, oldPass, "logs.team-a"); err == nil {
			t.Error("the old credential works after the grace period")
		}
		if err := login(e.brokers, newUser, newPass, "logs.team-a"); err != nil {
			t.Errorf("new credential: %v", err)
		}
		if l, _ := kafkaacl.List(ctx, e.admin, kafkaacl.User(oldUser)); len(l) != 0 {
			t.Errorf("old user keeps ACLs: %v", l)
		}
		if got, err := readAll(ctx, ns, newUser, newPass, "team-a.rotated2", "logs.team-a"); err != nil || len(got) != 1 {
			t.Fatalf("new credential after the grace period: %v %v", got, err)
		}
	})

	t.Run("opt-out and namespace deletion remove everything", func(t *testing.T) {
		patchNS(t, e.c, "team-b", func(ns *corev1.Namespace) { delete(ns.Labels, optInLabel) })
		e.gone(t, "team-b", "logrouter-ns-team-b")
		if err := e.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
			t.Fatal(err)
		}
		e.gone(t, "team-a", "logrouter-ns-team-a.2")
	})

	t.Run("refused provisioning is reported on that namespace only", func(t *testing.T) {
		// Refusals are injected for one namespace each, to show that the others go on: a Kafka
		// with an authorizer that refuses ACLs answers SECURITY_DISABLED (team-d; kfake never
		// does: TestKafkaAccessRefusals has kfake's own refusals, which hit every namespace);
		// CLUSTER_AUTHORIZATION_FAILED (team-f); the login with the new credential refused
		// (team-g's user).
		faults := []*kfake.FaultHandle{
			e.kfake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateACLs}, Resource: "logs.team-d", Err: kerr.SecurityDisabled, Count: -1}),
			e.kfake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateACLs}, Resource: "logs.team-f", Err: kerr.ClusterAuthorizationFailed, Count: -1}),
			e.kfake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.SASLAuthenticate}, TopLevel: true, Err: kerr.SaslAuthenticationFailed, Count: -1,
				When: func(r kmsg.Request) bool {
					a, ok := r.(*kmsg.SASLAuthenticateRequest)
					return ok && bytes.Contains(a.SASLAuthBytes, []byte("n=logrouter-ns-team-g,"))
				}}),
		}
		defer func() {
			for _, f := range faults {
				f.Remove()
			}
		}()
		for _, ns := range []string{"team-d", "team-e", "team-f", "team-g"} {
			e.namespace(t, ns, true)
		}
		e.access(t, "team-e", v1alpha1.ReasonProvisioned)
		for _, tc := range []struct{ ns, reason, msg string }{
			{"team-d", v1alpha1.ReasonSecurityDisabled, "no ACL authorizer"},
			{"team-f", v1alpha1.ReasonKafkaNotAuthorized, "needs ALTER and DESCRIBE on the cluster"},
			{"team-g", v1alpha1.ReasonSASLUnavailable, "logging in to Kafka as logrouter-ns-team-g fails"},
		} {
			a := e.access(t, tc.ns, tc.reason)
			c := meta.FindStatusCondition(a.Conditions, v1alpha1.ConditionKafkaAccessReady)
			if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, tc.msg) {
				t.Errorf("%s condition: %+v", tc.ns, c)
			}
			if n := testutil.ToFloat64(accessFailures(e.reg, tc.reason)); n < 1 {
				t.Errorf("failures metric for %s = %v", tc.reason, n)
			}
		}
		// Refused: a Secret with the status and no credential, and nothing left in Kafka.
		for _, ns := range []string{"team-d", "team-f", "team-g"} {
			e.nothingLeft(t, ns, "logrouter-ns-"+ns)
		}
		for _, f := range faults {
			f.Remove()
		}
		for _, ns := range []string{"team-d", "team-f", "team-g"} {
			e.access(t, ns, v1alpha1.ReasonProvisioned) // retried with backoff
		}
		e.access(t, "team-e", v1alpha1.ReasonProvisioned)
	})
}

// nothingLeft checks that a refused namespace's Secret has no credential and that Kafka
// has no credential and no ACL of its user.
func (e *accessEnv) nothingLeft(t *testing.T, ns, user string) {
	t.Helper()
	ctx := context.Background()
	var s corev1.Secret
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: KafkaSecretName}, &s); err != nil {
		t.Errorf("%s: no Secret with the status: %v", ns, err)
	} else if len(s.Data["password"]) != 0 || len(s.Data["username"]) != 0 {
		t.Errorf("%s: the Secret has a credential after a refused provisioning: %v", ns, s.Data)
	}
	// Waited for: the controller retries with backoff, and each retry creates the user again
	// before it is refused and removes it.
	waitFor(t, "nothing of "+user+" in Kafka", func() (bool, string) {
		if d, err := kadm.NewClient(e.admin).DescribeUserSCRAMs(ctx, user); err == nil && d.Error() == nil {
			return false, fmt.Sprintf("%s: a half-provisioned credential is left: %+v", ns, d)
		}
		if l, err := kafkaacl.List(ctx, e.admin, kafkaacl.User(user)); err != nil || len(l) != 0 {
			return false, fmt.Sprintf("%s: ACLs of %s left: %v %v", ns, user, l, err)
		}
		return true, ""
	})
}

func accessFailures(reg *prometheus.Registry, reason string) prometheus.Collector {
	return gathered{reg, "logrouter_controller_kafka_access_failures_total", reason}
}

// gathered is one labelled series of a registry, for testutil.ToFloat64.
type gathered struct {
	reg          *prometheus.Registry
	name, reason string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == g.reason {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	}
}

// gone waits until the namespace's Secret, status entry, credential and ACLs are gone.
func (e *accessEnv) gone(t *testing.T, ns, user string) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "kafka access of "+ns+" removed", func() (bool, string) {
		var s corev1.Secret
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: KafkaSecretName}, &s); !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("Secret: %v", err)
		}
		return true, ""
	})
	if l, err := kafkaacl.List(ctx, e.admin, kafkaacl.User(user)); err != nil || len(l) != 0 {
		t.Errorf("ACLs of %s left: %v %v", user, l, err)
	}
	d, err := kadm.NewClient(e.admin).DescribeUserSCRAMs(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if d.Error() == nil {
		t.Errorf("credential of %s left: %+v", user, d)
	}
}

func patchNS(t *testing.T, c client.Client, name string, fn func(*corev1.Namespace)) {
	t.Helper()
	var ns corev1.Namespace
	if err := c.Get(context.Background(), types.NamespacedName{Name: name}, &ns); err != nil {
		t.Fatal(err)
	}
	orig := ns.DeepCopy()
	fn(&ns)
	if err := c.Patch(context.Background(), &ns, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
}

// saramaSCRAM is sarama's SCRAM client over franz-go's SCRAM implementation (sarama leaves
// SCRAM to the application; docs/kafka-access.md shows the same with xdg-go/scram).
type saramaSCRAM struct {
	sess  sasl.Session
	first []byte
	step  int
	done  bool
}

func (s *saramaSCRAM) Begin(user, pass, _ string) error {
	sess, first, err := scram.Auth{User: user, Pass: pass}.AsSha512Mechanism().Authenticate(context.Background(), "")
	s.sess, s.first = sess, first
	return err
}

func (s *saramaSCRAM) Step(challenge string) (string, error) {
	s.step++
	if s.step == 1 {
		return string(s.first), nil
	}
	done, msg, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(msg), err
}

func (s *saramaSCRAM) Done() bool { return s.done }

func saramaConfig(s *corev1.Secret) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = creds(s)
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{} }
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.Full = false // a team may not describe every topic
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 0
	// A refused group is retried as sarama always does (the coordinator lookup, then a new
	// session, each a few times); the defaults' backoffs (250 ms, 2 s) only make each refusal
	// take 18 s.
	cfg.Metadata.Retry.Backoff = 20 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

type saramaHandler struct {
	got  chan string
	stop context.CancelFunc
	want int
}

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		sess.MarkMessage(m, "")
		sess.Commit()
		h.got <- string(m.Value)
	}
	return nil
}

func saramaChecks(t *testing.T, s *corev1.Secret, ns, other string) {
	brokers := strings.Split(string(s.Data["bootstrap.servers"]), ",")
	consume := func(group string, topics ...string) ([]string, error) {
		g, err := sarama.NewConsumerGroup(brokers, group, saramaConfig(s))
		if err != nil {
			return nil, err
		}
		defer g.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got := make(chan string, 16)
		errc := make(chan error, 1)
		go func() { errc <- g.Consume(ctx, topics, saramaHandler{got: got}) }()
		var out []string
		for len(out) < len(topics) {
			select {
			case v := <-got:
				out = append(out, v)
			case err := <-errc:
				return out, err
			case err := <-g.Errors():
				return out, err
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
		return out, nil
	}
	got, err := consume(ns+".sarama", "logs."+ns, "logs."+ns+".debug")
	if err != nil || len(got) != 2 {
		t.Fatalf("sarama, own topics: %v %v", got, err)
	}
	// The committed offsets are the group's.
	cl, err := sarama.NewClient(brokers, saramaConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	om, err := sarama.NewOffsetManagerFromClient(ns+".sarama", cl)
	if err != nil {
		t.Fatal(err)
	}
	pom, err := om.ManagePartition("logs."+ns, 0)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := pom.NextOffset(); off != 1 {
		t.Errorf("sarama committed offset %d, want 1", off)
	}
	pom.Close()
	om.Close()
	_, err = consume(ns+".sarama", "logs."+other)
	wantSarama(t, "other namespace's topic", err, sarama.ErrTopicAuthorizationFailed)
	_, err = consume(other+".sarama", "logs."+ns)
	wantSarama(t, "other namespace's group", err, sarama.ErrGroupAuthorizationFailed)
	p, err := sarama.NewSyncProducer(brokers, saramaConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "logs." + ns, Value: sarama.StringEncoder("x")})
	wantSarama(t, "write", err, sarama.ErrTopicAuthorizationFailed)
}

func wantSarama(t *testing.T, what string, err error, code sarama.KError) {
	t.Helper()
	if !errors.Is(err, code) && !strings.Contains(fmt.Sprint(err), code.Error()) {
		t.Errorf("sarama, %s: got %v, want %v", what, err, code)
	}
}

// kcatChecks runs kcat with the Secret's librdkafka.conf, as docs/kafka-access.md shows.
func kcatChecks(t *testing.T, s *corev1.Secret, ns, other string) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH (apt-get install -y kcat)")
	}
	conf := filepath.Join(t.TempDir(), "librdkafka.conf")
	if err := os.WriteFile(conf, s.Data["librdkafka.conf"], 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-F", conf}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	for _, tp := range []string{"logs." + ns, "logs." + ns + ".debug"} {
		out, stderr, err := run("", "-C", "-t", tp, "-o", "beginning", "-e", "-q")
		if err != nil || strings.TrimSpace(out) != "line of "+tp {
			t.Errorf("kcat -C %s: %q %v\n%s", tp, out, err, stderr)
		}
	}
	// A balanced consumer in a group with the namespace's prefix commits its offsets.
	out, stderr, err := run("", "-G", ns+".kcat", "-o", "beginning", "-e", "-q", "logs."+ns)
	if err != nil || strings.TrimSpace(out) != "line of logs."+ns {
		t.Errorf("kcat -G %s.kcat: %q %v\n%s", ns, out, err, stderr)
	}
	_, stderr, err = run("", "-C", "-t", "logs."+other, "-o", "beginning", "-e", "-q")
	if err == nil || !strings.Contains(stderr, "Topic authorization failed") {
		t.Errorf("kcat on the other namespace's topic: %v\n%s", err, stderr)
	}
	_, stderr, err = run("", "-G", other+".kcat", "-o", "beginning", "-e", "logs."+ns)
	if err == nil || !strings.Contains(strings.ToLower(stderr), "group authorization failed") {
		t.Errorf("kcat in the other namespace's group: %v\n%s", err, stderr)
	}
	_, stderr, err = run("x\n", "-P", "-t", "logs."+ns)
	if err == nil || !strings.Contains(stderr, "Topic authorization failed") {
		t.Errorf("kcat -P: %v\n%s", err, stderr)
	}
}
