package controller

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Kafka access (docs/kafka-access.md): per opted-in namespace, a SCRAM-SHA-512 user whose
// ACLs let it read the namespace's topics and use its consumer groups, and nothing else.
const (
	// KafkaSecretName is the Secret, in the team's namespace, holding its credentials.
	KafkaSecretName = "logrouter-kafka"
	// AnnotationKafkaRotate on a namespace requests a rotation whenever its value changes.
	AnnotationKafkaRotate = "logrouter.io/kafka-rotate"
	// DefaultPrincipalTemplate names a namespace's Kafka user.
	DefaultPrincipalTemplate = "logrouter-ns-{namespace}"
	// RotatedSuffix: the credential alternates between <principal> and <principal>.2 at each
	// rotation, since Kafka keeps one SCRAM-SHA-512 password per user and the old password
	// must keep working through the grace period. Namespace names have no dots, so no other
	// namespace's principal can be <principal>.2.
	RotatedSuffix = ".2"
	// LabelManagedBy marks the Secrets the controller writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationKafkaAccess on the Secret is the namespace's status (v1alpha1.NamespaceKafkaAccess
	// as JSON). It lives with the namespace, not in the cluster's one LogRouterPolicy, whose
	// size would grow with every namespace (~500 B each: etcd's 1.5 MiB limit at ~3,000).
	AnnotationKafkaAccess = "logrouter.io/kafka-access"

	defaultRotationGrace = time.Hour
	scramIterations      = 4096 // Kafka's default (kafka-configs.sh); kfake also fails logins of other counts
	accessResync         = 10 * time.Minute
	summaryInterval      = time.Second // the policy's kafkaAccessSummary is written at most this often
)

// accessReconciler reconciles one namespace's Kafka access (the request's Name is the
// namespace).
type accessReconciler struct {
	c      client.Client // cached: namespaces, the policy
	api    client.Reader // uncached: Secrets (not cached cluster-wide), the policy's status before a write
	kafka  *kgo.Client
	conn   kafkaconn.Config // the controller's connection: verification logins use it with the new credential
	tmpl   topic.Template
	events interface {
		Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
	}
	m   *accessMetrics
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	done   map[string]accessDone // what the last successful pass left, per namespace
	states map[string]string     // provisioned, rotating or failed, per namespace: the policy's summary
	dirty  chan struct{}         // the summary changed (capacity 1)
	warn   rate.Sometimes
}

// accessDone is what a successful pass provisioned: nothing is asked of Kafka again while it
// holds.
type accessDone struct {
	user, topic, secretRV, rotation string
}

type accessMetrics struct {
	namespaces *prometheus.GaugeVec
	failures   *prometheus.CounterVec
}

func newAccessMetrics(reg prometheus.Registerer) *accessMetrics {
	m := &accessMetrics{
		namespaces: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logrouter_controller_kafka_access_namespaces",
			Help: "Namespaces with Kafka access by state: provisioned, rotating, failed."}, []string{"state"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_controller_kafka_access_failures_total",
			Help: "Failed attempts to provision a namespace's Kafka access, by reason (the namespace's KafkaAccessReady condition says which)."}, []string{"reason"}),
	}
	reg.MustRegister(m.namespaces, m.failures)
	return m
}

// principalFor renders the principal template.
func principalFor(tmpl, ns string) string {
	if tmpl == "" {
		tmpl = DefaultPrincipalTemplate
	}
	return strings.ReplaceAll(tmpl, "{namespace}", ns)
}

// newPassword is 32 random bytes, URL-safe base64 (no characters that need quoting in a
// JAAS line or a librdkafka config).
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Reconcile brings one namespace's Kafka access to what the policy asks.
func (r *accessReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	name := req.Name
	var pol v1alpha1.LogRouterPolicy
	if err := r.c.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &pol); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		pol = v1alpha1.LogRouterPolicy{}
	}
	var ns corev1.Namespace
	gone := false
	if err := r.c.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		gone = true
	}
	gone = gone || !ns.DeletionTimestamp.IsZero()
	ka := pol.Spec.KafkaAccess
	var secret corev1.Secret
	haveSecret := true
	if err := r.api.Get(ctx, types.NamespacedName{Namespace: name, Name: KafkaSecretName}, &secret); err != nil {
		if !apierrors.IsNotFound(err) && !(gone && apierrors.IsForbidden(err)) {
			r.m.failures.WithLabelValues(v1alpha1.ReasonSecretFailed).Inc()
			return ctrl.Result{}, fmt.Errorf("namespace %s: read Secret %s: %w", name, KafkaSecretName, err)
		}
		haveSecret = false
	}
	entry := r.statusOf(name, &secret, haveSecret)
	optedIn := false
	if ka != nil && !gone {
		sel, err := metav1.LabelSelectorAsSelector(&ka.Namespaces)
		if err != nil {
			return ctrl.Result{}, nil // the policy's own status reports it
		}
		optedIn = sel.Matches(labels.Set(ns.Labels))
	}
	if !optedIn {
		// A namespace deleted is cleaned up even without a Secret (Kubernetes may have deleted
		// it first): its principal's users are known from the policy's template.
		if entry == nil && !(gone && ka != nil) && !(haveSecret && secret.Labels[LabelManagedBy] == Name) {
			r.setState(name, "")
			return ctrl.Result{}, nil
		}
		var sp *corev1.Secret
		if haveSecret {
			sp = &secret
		}
		return r.cleanup(ctx, name, gone, ka, entry, sp)
	}
	var sp *corev1.Secret
	if haveSecret {
		sp = &secret
	}
	return r.provision(ctx, &ns, ka, entry, sp)
}

// statusOf is the namespace's status from its Secret's annotation (nil: none).
func (r *accessReconciler) statusOf(ns string, s *corev1.Secret, have bool) *v1alpha1.NamespaceKafkaAccess {
	raw, ok := s.Annotations[AnnotationKafkaAccess]
	if !have || !ok {
		return nil
	}
	var e v1alpha1.NamespaceKafkaAccess
	if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Namespace != ns {
		// Edited by hand: provisioned again from scratch (a new credential), said in the log.
		r.log.Warn("the Kafka access status on the Secret is not readable; provisioning anew", "namespace", ns, "annotation", AnnotationKafkaAccess, "err", err)
		return nil
	}
	return &e
}

// usersOf are the two users a namespace's credential alternates between.
func usersOf(principal string) [2]string { return [2]string{principal, principal + RotatedSuffix} }

// provision: the credential first, then its ACLs, then the Secret; the previous credential
// of a rotation goes once its grace period is over.
func (r *accessReconciler) provision(ctx context.Context, ns *corev1.Namespace, ka *v1alpha1.KafkaAccess, entry *v1alpha1.NamespaceKafkaAccess, cur0 *corev1.Secret) (ctrl.Result, error) {
	now := r.now()
	principal := principalFor(ka.PrincipalTemplate, ns.Name)
	users := usersOf(principal)
	grace := defaultRotationGrace
	if ka.RotationGracePeriod != nil {
		grace = ka.RotationGracePeriod.Duration
	}
	nsTopic, err := r.tmpl.Render(ns.Name, ns.Labels)
	if err != nil {
		return r.fail(ctx, ns.Name, cur0, entry, v1alpha1.ReasonKafkaError, fmt.Errorf("topic of namespace %s: %w", ns.Name, err))
	}
	next := &v1alpha1.NamespaceKafkaAccess{Namespace: ns.Name}
	if entry != nil {
		next = entry.DeepCopy()
	}
	cur := next.User
	if !slices.Contains(users[:], cur) {
		cur = "" // never provisioned, or under another principal template: start again
	}
	var secret corev1.Secret
	haveSecret := cur0 != nil
	if haveSecret {
		secret = *cur0
	}
	want := ns.Annotations[AnnotationKafkaRotate]
	rotate := cur != "" && want != "" && want != next.Rotation

	r.mu.Lock()
	d, ok := r.done[ns.Name]
	r.mu.Unlock()
	previousDue := next.PreviousUser != "" && next.PreviousRemoveAfter != nil && !now.Before(next.PreviousRemoveAfter.Time)
	if ok && !rotate && !previousDue && haveSecret && d == (accessDone{user: cur, topic: nsTopic, secretRV: secret.ResourceVersion, rotation: next.Rotation}) {
		return r.requeue(next, now), nil
	}

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(r.kafka)

	password := ""
	if cur != "" && haveSecret && string(secret.Data["username"]) == cur && len(secret.Data["password"]) > 0 {
		password = string(secret.Data["password"])
	}
	fresh := false // the password is new: not yet in the Secret
	if rotate {
		if next.PreviousUser != "" { // a rotation within the previous one's grace period ends it now
			if err := r.removeUser(ctx, adm, next.PreviousUser); err != nil {
				return r.fail(ctx, ns.Name, cur0, entry, reasonOf(err), err)
			}
		}
		prev := cur
		cur = users[0]
		if prev == users[0] {
			cur = users[1]
		}
		next.PreviousUser, next.PreviousRemoveAfter, next.PreviousRemovedAt = prev, &metav1.Time{Time: now.Add(grace)}, nil
		password, fresh = "", true
	}
	if cur == "" {
		cur = users[0]
	}
	if password == "" {
		if password, err = newPassword(); err != nil {
			return ctrl.Result{}, err
		}
		fresh = true
	}
	// rollback removes what a failed pass created for a password that never reached the
	// Secret (or, force, for a credential that must not work: ACLs not enforced), so that a
	// failure leaves no principal behind; the condition says what is left, as Kafka lists it.
	rollback := func(reason string, cause error, force bool) (ctrl.Result, error) {
		if fresh || force {
			cause = fmt.Errorf("%w; %s", cause, r.removeAndCheck(ctx, adm, cur))
		}
		return r.fail(ctx, ns.Name, cur0, entry, reason, cause)
	}
	// 1. The ACLs, exactly, before the credential: a Kafka that refuses ACLs gets no
	// credential at all, and ACLs of a user nobody can log in as grant nothing.
	if err := kafkaacl.Sync(ctx, r.kafka, kafkaacl.User(cur), kafkaacl.Namespace(kafkaacl.User(cur), nsTopic, ns.Name)); err != nil {
		return rollback(reasonOf(err), fmt.Errorf("ACLs of %s: %w", kafkaacl.User(cur), err), false)
	}
	// 2. The credential (upserting the password the Secret has is harmless: a new salt).
	if err := upsertSCRAM(ctx, adm, cur, password); err != nil {
		return rollback(reasonOf(err), err, false)
	}
	if fresh {
		next.CredentialCreatedAt = &metav1.Time{Time: now}
	}
	// 3. The credential works, and only as the ACLs say, before any team gets it: a Kafka
	// whose listener has no SASL accepts the admin calls above but no client using the
	// credential; one without an authorizer may accept ACLs it does not enforce.
	if err := r.verify(ctx, cur, password, nsTopic); err != nil {
		if errors.Is(err, errACLsNotEnforced) {
			return rollback(v1alpha1.ReasonSecurityDisabled, fmt.Errorf("%s: %w", cur, err), true)
		}
		return rollback(v1alpha1.ReasonSASLUnavailable, fmt.Errorf("logging in to Kafka as %s fails: %w", cur, err), false)
	}
	// 4. The previous credential, once its grace period is over.
	if next.PreviousUser != "" && next.PreviousRemoveAfter != nil && !now.Before(next.PreviousRemoveAfter.Time) {
		if err := r.removeUser(ctx, adm, next.PreviousUser); err != nil {
			return r.fail(ctx, ns.Name, cur0, next, reasonOf(err), fmt.Errorf("remove the previous credential %s: %w", next.PreviousUser, err))
		}
		next.PreviousUser, next.PreviousRemoveAfter, next.PreviousRemovedAt = "", nil, &metav1.Time{Time: now}
	}
	// 5. The Secret, with the status.
	data, err := r.secretData(ka, ns.Name, nsTopic, cur, password)
	if err != nil {
		return rollback(v1alpha1.ReasonSecretFailed, err, false)
	}
	if !haveSecret || !equality.Semantic.DeepEqual(secret.Data, data) {
		next.SecretUpdatedAt = &metav1.Time{Time: now}
	}
	next.User = cur
	if rotate || next.Rotation == "" {
		next.Rotation = want
	}
	reason, msg := v1alpha1.ReasonProvisioned, fmt.Sprintf("user %s (SCRAM-SHA-512) reads topic %s and topics %s.*, consumer groups %s.*; credentials in Secret %s", cur, nsTopic, nsTopic, ns.Name, KafkaSecretName)
	if next.PreviousUser != "" {
		reason = v1alpha1.ReasonRotating
		msg += fmt.Sprintf("; the previous user %s works until %s", next.PreviousUser, next.PreviousRemoveAfter.UTC().Format(time.RFC3339))
	}
	setAccessCondition(next, true, reason, msg, now)
	var sp *corev1.Secret
	if haveSecret {
		sp = &secret
	}
	rv, err := r.putSecret(ctx, ns.Name, sp, data, next)
	if err != nil {
		return rollback(v1alpha1.ReasonSecretFailed, fmt.Errorf("write Secret %s/%s: %w", ns.Name, KafkaSecretName, err), false)
	}
	r.report(ns.Name, entry, next)
	r.mu.Lock()
	r.done[ns.Name] = accessDone{user: cur, topic: nsTopic, secretRV: rv, rotation: next.Rotation}
	r.mu.Unlock()
	return r.requeue(next, now), nil
}

// removeAndCheck removes what exists of user after a failed pass and says, as Kafka then
// lists it, what is left.
func (r *accessReconciler) removeAndCheck(ctx context.Context, adm *kadm.Client, user string) string {
	rmErr := r.removeUser(ctx, adm, user)
	acls, aclErr := kafkaacl.List(ctx, r.kafka, kafkaacl.User(user))
	creds, credErr := adm.DescribeUserSCRAMs(ctx, user)
	if credErr == nil {
		credErr = creds.Error()
	}
	hasCred := credErr == nil
	if errors.Is(credErr, kerr.ResourceNotFound) {
		credErr = nil
	}
	switch {
	case aclErr != nil || credErr != nil:
		return fmt.Sprintf("what is left of %s in Kafka cannot be checked (%v): the controller retries the removal", user, errors.Join(rmErr, aclErr, credErr))
	case len(acls) > 0 || hasCred:
		return fmt.Sprintf("left in Kafka for %s: %d ACLs, credential %v (removal: %v): the controller retries the removal", user, len(acls), hasCred, rmErr)
	}
	return fmt.Sprintf("nothing of %s is left in Kafka", user)
}

// requeue comes back when the previous credential is due, else at the resync.
func (r *accessReconciler) requeue(e *v1alpha1.NamespaceKafkaAccess, now time.Time) ctrl.Result {
	if e.PreviousRemoveAfter != nil && e.PreviousUser != "" {
		return ctrl.Result{RequeueAfter: max(e.PreviousRemoveAfter.Sub(now), 0) + 10*time.Millisecond}
	}
	return ctrl.Result{RequeueAfter: accessResync}
}

func upsertSCRAM(ctx context.Context, adm *kadm.Client, user, password string) error {
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: scramIterations, Password: password}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return classifyKafka(fmt.Errorf("SCRAM-SHA-512 credential of %s: %w", user, err))
	}
	return nil
}

// removeUser deletes a user's SCRAM credential and every ACL of its principal; what is
// already gone is fine.
func (r *accessReconciler) removeUser(ctx context.Context, adm *kadm.Client, user string) error {
	var errs []error
	res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: kadm.ScramSha512}}, nil)
	if err == nil {
		err = res.Error()
	}
	if err != nil && !errors.Is(err, kerr.ResourceNotFound) {
		errs = append(errs, classifyKafka(fmt.Errorf("delete the credential of %s: %w", user, err)))
	}
	if err := kafkaacl.DeleteAll(ctx, r.kafka, kafkaacl.User(user)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func classifyKafka(err error) error {
	switch {
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("%w: %w", kafkaacl.ErrNotAuthorized, err)
	case errors.Is(err, kerr.SecurityDisabled):
		return fmt.Errorf("%w: %w", kafkaacl.ErrSecurityDisabled, err)
	}
	return err
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, kafkaacl.ErrSecurityDisabled):
		return v1alpha1.ReasonSecurityDisabled
	case errors.Is(err, kafkaacl.ErrNotAuthorized):
		return v1alpha1.ReasonKafkaNotAuthorized
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.SaslAuthenticationFailed):
		return v1alpha1.ReasonSASLUnavailable
	}
	return v1alpha1.ReasonKafkaError
}

// verify logs in with the credential and asks for the namespace topic's metadata (its
// DESCRIBE ACL): an authentication failure or a refusal means teams could not use it.
func (r *accessReconciler) verify(ctx context.Context, user, password, nsTopic string) error {
	conn := r.conn
	conn.SASLMechanism, conn.SASLUser, conn.SASLPassword = "SCRAM-SHA-512", user, password
	opts, err := conn.Options()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(5*time.Second), kgo.RequestRetries(1))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(nsTopic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if e := kerr.ErrorForCode(t.ErrorCode); errors.Is(e, kerr.TopicAuthorizationFailed) {
			return fmt.Errorf("topic %s: %w (the ACLs are not in effect)", nsTopic, e)
		}
	}
	// The user has no cluster ACL: describing the cluster's ACLs must be refused. Anything
	// else (the ACLs, or SECURITY_DISABLED) means Kafka does not enforce ACLs, and the
	// credential would read every namespace's topics.
	_, err = kafkaacl.List(ctx, cl, kafkaacl.User(user))
	if !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return fmt.Errorf("%w (describing ACLs as the namespace's user: %v)", errACLsNotEnforced, err)
	}
	return nil
}

// errACLsNotEnforced: the brokers accept ACLs but do not enforce them.
var errACLsNotEnforced = errors.New("Kafka does not enforce ACLs (no authorizer): a namespace's credential would read every topic")

// secretData is what the team's Secret holds.
func (r *accessReconciler) secretData(ka *v1alpha1.KafkaAccess, ns, nsTopic, user, password string) (map[string][]byte, error) {
	bootstrap := ka.BootstrapServers
	if bootstrap == "" {
		bootstrap = strings.Join(r.conn.BrokerList(), ",")
	}
	protocol := "SASL_PLAINTEXT"
	d := map[string][]byte{}
	if r.conn.TLS || r.conn.TLSCAFile != "" {
		protocol = "SASL_SSL"
		if r.conn.TLSCAFile != "" {
			ca, err := os.ReadFile(r.conn.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("read the Kafka CA for the Secret: %w", err)
			}
			d["ca.crt"] = ca
		}
	}
	put := func(k, v string) { d[k] = []byte(v) }
	put("bootstrap.servers", bootstrap)
	put("security.protocol", protocol)
	put("sasl.mechanism", "SCRAM-SHA-512")
	put("username", user)
	put("password", password)
	put("topic", nsTopic)
	put("topic.prefix", nsTopic+".")
	put("group.prefix", ns+".")
	// Ready-made client configurations: Java's (a properties file) and librdkafka's (kcat -F).
	put("client.properties", fmt.Sprintf("bootstrap.servers=%s\nsecurity.protocol=%s\nsasl.mechanism=SCRAM-SHA-512\n"+
		"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"%s\" password=\"%s\";\n",
		bootstrap, protocol, user, password))
	put("librdkafka.conf", fmt.Sprintf("bootstrap.servers=%s\nsecurity.protocol=%s\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=%s\nsasl.password=%s\n",
		bootstrap, strings.ToLower(protocol), user, password))
	return d, nil
}

// putSecret creates or updates the Secret with data (nil: the data it has, none for a new
// Secret: a failure before any credential) and the status annotation; it returns its
// resourceVersion.
func (r *accessReconciler) putSecret(ctx context.Context, ns string, cur *corev1.Secret, data map[string][]byte, st *v1alpha1.NamespaceKafkaAccess) (string, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	if cur == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KafkaSecretName, Labels: map[string]string{LabelManagedBy: Name},
				Annotations: map[string]string{AnnotationKafkaAccess: string(raw)}},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		if err := r.c.Create(ctx, s); err != nil {
			return "", err
		}
		return s.ResourceVersion, nil
	}
	next := cur.DeepCopy()
	if data != nil {
		next.Data = data
	}
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Labels[LabelManagedBy] = Name
	next.Annotations[AnnotationKafkaAccess] = string(raw)
	if equality.Semantic.DeepEqual(cur, next) {
		return cur.ResourceVersion, nil
	}
	if err := r.c.Update(ctx, next); err != nil {
		return "", err
	}
	return next.ResourceVersion, nil
}

// fail records a failed pass on the namespace (only there: its Secret, an Event, the metric)
// and retries with backoff.
func (r *accessReconciler) fail(ctx context.Context, ns string, secret *corev1.Secret, entry *v1alpha1.NamespaceKafkaAccess, reason string, cause error) (ctrl.Result, error) {
	r.m.failures.WithLabelValues(reason).Inc()
	r.warn.Do(func() { r.log.Warn("kafka access failed; retrying", "namespace", ns, "reason", reason, "err", cause) })
	next := &v1alpha1.NamespaceKafkaAccess{Namespace: ns}
	if entry != nil {
		next = entry.DeepCopy()
	}
	setAccessCondition(next, false, reason, cause.Error(), r.now())
	r.mu.Lock()
	delete(r.done, ns)
	r.mu.Unlock()
	err := fmt.Errorf("namespace %s: %s: %w", ns, reason, cause) // the workqueue's per-item backoff
	if _, werr := r.putSecret(ctx, ns, secret, nil, next); werr != nil {
		err = fmt.Errorf("%w; the status could not be written to Secret %s: %v", err, KafkaSecretName, werr)
	}
	r.report(ns, entry, next)
	return ctrl.Result{}, err
}

// report emits an Event in the namespace when its condition changed, and counts its state
// for the policy's summary.
func (r *accessReconciler) report(ns string, prev, next *v1alpha1.NamespaceKafkaAccess) {
	c := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionKafkaAccessReady)
	state := "provisioned"
	switch {
	case c.Status != metav1.ConditionTrue:
		state = "failed"
	case c.Reason == v1alpha1.ReasonRotating:
		state = "rotating"
	}
	r.setState(ns, state)
	if !changedAccess(prev, next) {
		return
	}
	typ := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		typ = corev1.EventTypeWarning
	}
	// On the Secret, not the Namespace: an Event about a cluster-scoped object lands in the
	// namespace default, where the team does not look.
	obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KafkaSecretName}}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	r.events.Eventf(obj, nil, typ, c.Reason, "KafkaAccess", "%s", eventNote(c.Message))
}

// eventNote cuts a message to what an Event's note may hold (events.k8s.io/v1 refuses notes
// over 1 KiB: the Event would be lost); the Secret's annotation has all of it.
func eventNote(msg string) string {
	const limit = 1024
	if len(msg) <= limit {
		return msg
	}
	const more = " … (all of it in the Secret's annotation " + AnnotationKafkaAccess + ")"
	cut := limit - len(more)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + more
}

// setState records a namespace's state ("": none) and marks the summary dirty on a change.
func (r *accessReconciler) setState(ns, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states[ns] == state {
		return
	}
	if state == "" {
		delete(r.states, ns)
	} else {
		r.states[ns] = state
	}
	counts := map[string]float64{"provisioned": 0, "rotating": 0, "failed": 0}
	for _, s := range r.states {
		counts[s]++
	}
	for k, v := range counts {
		r.m.namespaces.WithLabelValues(k).Set(v)
	}
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

func (r *accessReconciler) summary() v1alpha1.KafkaAccessSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s v1alpha1.KafkaAccessSummary
	for _, st := range r.states {
		switch st {
		case "provisioned":
			s.Provisioned++
		case "rotating":
			s.Rotating++
		case "failed":
			s.Failed++
		}
	}
	return s
}

// runSummary writes the counts into the policy's status.kafkaAccessSummary, at most once per
// interval: one small write for many namespaces' changes.
func (r *accessReconciler) runSummary(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.dirty:
			pending = true
		case <-t.C:
			if !pending {
				continue
			}
			if err := r.writeSummary(ctx); err != nil {
				r.warn.Do(func() {
					r.log.Warn("cannot write the Kafka access summary into the policy's status; retrying", "err", err)
				})
				continue
			}
			pending = false
		}
	}
}

func (r *accessReconciler) writeSummary(ctx context.Context) error {
	var pol v1alpha1.LogRouterPolicy
	if err := r.api.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &pol); err != nil {
		return client.IgnoreNotFound(err)
	}
	s := r.summary()
	if pol.Status.KafkaAccessSummary != nil && *pol.Status.KafkaAccessSummary == s {
		return nil
	}
	updated := pol.DeepCopy()
	updated.Status.KafkaAccessSummary = &s
	if err := r.c.Status().Patch(ctx, updated, client.MergeFrom(&pol)); err != nil {
		return fmt.Errorf("policy status (kafkaAccessSummary): %w", err)
	}
	return nil
}

func setAccessCondition(e *v1alpha1.NamespaceKafkaAccess, ok bool, reason, msg string, now time.Time) {
	c := cond(v1alpha1.ConditionKafkaAccessReady, ok, reason, msg)
	c.LastTransitionTime = metav1.NewTime(now)
	meta.SetStatusCondition(&e.Conditions, c)
}

// cleanup removes a namespace's credentials, ACLs and Secret (opted out, or deleted).
func (r *accessReconciler) cleanup(ctx context.Context, ns string, gone bool, ka *v1alpha1.KafkaAccess, entry *v1alpha1.NamespaceKafkaAccess, secret *corev1.Secret) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(r.kafka)
	users := map[string]bool{}
	if entry != nil {
		for _, u := range []string{entry.User, entry.PreviousUser} {
			if u != "" {
				users[u] = true
			}
		}
	}
	if ka != nil {
		for _, u := range usersOf(principalFor(ka.PrincipalTemplate, ns)) {
			users[u] = true
		}
	}
	var errs []error
	for u := range users {
		if err := r.removeUser(ctx, adm, u); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		if gone {
			secret = nil // no status Secret is created in a namespace being deleted
		}
		return r.fail(ctx, ns, secret, entry, reasonOf(err), fmt.Errorf("remove the namespace's Kafka access: %w", err))
	}
	if secret != nil {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KafkaSecretName}}
		if err := r.c.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) && !(gone && apierrors.IsForbidden(err)) {
			return r.fail(ctx, ns, secret, entry, v1alpha1.ReasonSecretFailed, fmt.Errorf("delete Secret %s/%s: %w", ns, KafkaSecretName, err))
		}
	}
	r.mu.Lock()
	delete(r.done, ns)
	r.mu.Unlock()
	r.setState(ns, "")
	r.log.Info("kafka access removed", "namespace", ns, "opted_out", !gone)
	return ctrl.Result{}, nil
}

func changedAccess(prev, next *v1alpha1.NamespaceKafkaAccess) bool {
	n := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionKafkaAccessReady)
	if prev == nil {
		return n != nil
	}
	p := meta.FindStatusCondition(prev.Conditions, v1alpha1.ConditionKafkaAccessReady)
	return p == nil || p.Status != n.Status || p.Reason != n.Reason || p.Message != n.Message
}

// sweep finds namespaces that have users in Kafka (a SCRAM credential or ACLs of a principal
// the template names) and sends each to be reconciled: one deleted while no controller ran
// has no Secret left to say so, and is cleaned up from there.
func (r *accessReconciler) sweep(ctx context.Context, out chan<- event.GenericEvent) error {
	var pol v1alpha1.LogRouterPolicy
	if err := r.c.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &pol); err != nil {
		return client.IgnoreNotFound(err)
	}
	tmpl := DefaultPrincipalTemplate
	if ka := pol.Spec.KafkaAccess; ka != nil && ka.PrincipalTemplate != "" {
		tmpl = ka.PrincipalTemplate
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	creds, err := kadm.NewClient(r.kafka).DescribeUserSCRAMs(ctx)
	if err == nil {
		err = creds.Error()
	}
	if err != nil {
		return fmt.Errorf("list SCRAM users: %w", err)
	}
	principals, err := kafkaacl.Principals(ctx, r.kafka)
	if err != nil {
		return err
	}
	users := make([]string, 0, len(creds)+len(principals))
	for u := range creds {
		users = append(users, u)
	}
	for _, p := range principals {
		if u, ok := strings.CutPrefix(p, "User:"); ok {
			users = append(users, u)
		}
	}
	seen := map[string]bool{}
	for _, u := range users {
		ns, ok := namespaceOf(tmpl, u)
		if !ok || seen[ns] {
			continue
		}
		seen[ns] = true
		select {
		case out <- event.GenericEvent{Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// namespaceOf is the namespace whose principal (or its rotated twin) the user is, by the
// principal template.
func namespaceOf(tmpl, user string) (string, bool) {
	pre, post, ok := strings.Cut(tmpl, "{namespace}")
	if !ok {
		return "", false
	}
	u := strings.TrimSuffix(user, RotatedSuffix)
	if !strings.HasPrefix(u, pre) || !strings.HasSuffix(u, post) || len(u) <= len(pre)+len(post) {
		return "", false
	}
	ns := u[len(pre) : len(u)-len(post)]
	if len(validation.IsDNS1123Label(ns)) > 0 {
		return "", false
	}
	return ns, true
}

// setupKafkaAccess registers the Kafka access controller: one item per namespace.
func (c *Controller) setupKafkaAccess(reg prometheus.Registerer) error {
	cl := c.mgr.GetClient()
	r := &accessReconciler{
		c: cl, api: c.mgr.GetAPIReader(), kafka: c.kafka, conn: c.cfg.Kafka, tmpl: c.rec.tmpl,
		events: c.rec.events, m: newAccessMetrics(reg), log: c.log.With("part", "kafka-access"), now: time.Now,
		done: map[string]accessDone{}, states: map[string]string{}, dirty: make(chan struct{}, 1),
		warn: rate.Sometimes{First: 3, Interval: 10 * time.Second},
	}
	// The policy changes every namespace's access.
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var l corev1.NamespaceList
		if err := cl.List(ctx, &l); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(l.Items))
		for _, n := range l.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: n.Name}})
		}
		return out
	})
	swept := make(chan event.GenericEvent)
	if err := c.mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !c.mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		for {
			if err := r.sweep(ctx, swept); err != nil && ctx.Err() == nil {
				r.warn.Do(func() {
					r.log.Warn("cannot list Kafka's users to find namespaces deleted meanwhile; retrying", "err", err)
				})
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(accessResync):
			}
		}
	})); err != nil {
		return err
	}
	if err := c.mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return r.runSummary(ctx, summaryInterval) })); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("kafkaaccess").
		For(&corev1.Namespace{}).
		// Spec changes only: the policy's own status writes must not requeue every namespace.
		Watches(&v1alpha1.LogRouterPolicy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(swept, &handler.EnqueueRequestForObject{})).
		// Namespaces are independent: a slow Kafka call for one does not hold up the others.
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: c.cfg.Workers}).
		Complete(r)
}
