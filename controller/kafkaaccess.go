package controller

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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

	defaultRotationGrace = time.Hour
	scramIterations      = 4096 // Kafka's default (kafka-configs.sh); kfake also fails logins of other counts
	accessResync         = 10 * time.Minute
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

	statusMu sync.Mutex // one writer of the policy's status.kafkaAccess at a time
	mu       sync.Mutex
	done     map[string]accessDone // what the last successful pass left, per namespace
	warn     rate.Sometimes
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
	entry := findAccess(pol.Status.KafkaAccess, name)
	optedIn := false
	if ka != nil && !gone {
		sel, err := metav1.LabelSelectorAsSelector(&ka.Namespaces)
		if err != nil {
			return ctrl.Result{}, nil // the policy's own status reports it
		}
		optedIn = sel.Matches(labels.Set(ns.Labels))
	}
	if !optedIn {
		if entry == nil {
			return ctrl.Result{}, nil
		}
		return r.cleanup(ctx, name, gone, ka, entry)
	}
	return r.provision(ctx, &ns, ka, entry)
}

func findAccess(l []v1alpha1.NamespaceKafkaAccess, ns string) *v1alpha1.NamespaceKafkaAccess {
	for i := range l {
		if l[i].Namespace == ns {
			return l[i].DeepCopy()
		}
	}
	return nil
}

// usersOf are the two users a namespace's credential alternates between.
func usersOf(principal string) [2]string { return [2]string{principal, principal + RotatedSuffix} }

// provision: the credential first, then its ACLs, then the Secret; the previous credential
// of a rotation goes once its grace period is over.
func (r *accessReconciler) provision(ctx context.Context, ns *corev1.Namespace, ka *v1alpha1.KafkaAccess, entry *v1alpha1.NamespaceKafkaAccess) (ctrl.Result, error) {
	now := r.now()
	principal := principalFor(ka.PrincipalTemplate, ns.Name)
	users := usersOf(principal)
	grace := defaultRotationGrace
	if ka.RotationGracePeriod != nil {
		grace = ka.RotationGracePeriod.Duration
	}
	nsTopic, err := r.tmpl.Render(ns.Name, ns.Labels)
	if err != nil {
		return r.fail(ctx, ns.Name, entry, v1alpha1.ReasonKafkaError, fmt.Errorf("topic of namespace %s: %w", ns.Name, err))
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
	haveSecret := true
	if err := r.api.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: KafkaSecretName}, &secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return r.fail(ctx, ns.Name, entry, v1alpha1.ReasonSecretFailed, fmt.Errorf("read Secret %s/%s: %w", ns.Name, KafkaSecretName, err))
		}
		haveSecret = false
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
				return r.fail(ctx, ns.Name, entry, reasonOf(err), err)
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
	// Secret, so that a failure leaves no principal behind; what it cannot remove, the
	// condition names.
	rollback := func(reason string, cause error) (ctrl.Result, error) {
		if fresh {
			if err := r.removeUser(ctx, adm, cur); err != nil {
				cause = fmt.Errorf("%w; what was created for %s before the failure could not be removed (%v): the controller retries", cause, cur, err)
			} else {
				cause = fmt.Errorf("%w; what was created for %s before the failure was removed", cause, cur)
			}
		}
		return r.fail(ctx, ns.Name, entry, reason, cause)
	}
	// 1. The ACLs, exactly, before the credential: a Kafka that refuses ACLs gets no
	// credential at all, and ACLs of a user nobody can log in as grant nothing.
	if err := kafkaacl.Sync(ctx, r.kafka, kafkaacl.User(cur), kafkaacl.Namespace(kafkaacl.User(cur), nsTopic, ns.Name)); err != nil {
		return rollback(reasonOf(err), fmt.Errorf("ACLs of %s: %w", kafkaacl.User(cur), err))
	}
	// 2. The credential (upserting the password the Secret has is harmless: a new salt).
	if err := upsertSCRAM(ctx, adm, cur, password); err != nil {
		return rollback(reasonOf(err), err)
	}
	if fresh {
		next.CredentialCreatedAt = &metav1.Time{Time: now}
	}
	// 3. The Secret.
	data, err := r.secretData(ka, ns.Name, nsTopic, cur, password)
	if err != nil {
		return rollback(v1alpha1.ReasonSecretFailed, err)
	}
	rv, changed, err := r.writeSecret(ctx, ns.Name, haveSecret, &secret, data)
	if err != nil {
		return rollback(v1alpha1.ReasonSecretFailed, fmt.Errorf("write Secret %s/%s: %w", ns.Name, KafkaSecretName, err))
	}
	if changed {
		next.SecretUpdatedAt = &metav1.Time{Time: now}
	}
	next.User = cur
	if rotate || next.Rotation == "" {
		next.Rotation = want
	}
	// 4. The credential works: a Kafka whose listener has no SASL accepts the admin calls
	// above but no client using the Secret.
	if err := r.verify(ctx, cur, password, nsTopic); err != nil {
		return r.fail(ctx, ns.Name, next, v1alpha1.ReasonSASLUnavailable,
			fmt.Errorf("the Secret has the credential of %s, but logging in to Kafka with it fails: %w", cur, err))
	}
	// 5. The previous credential, once its grace period is over.
	if next.PreviousUser != "" && next.PreviousRemoveAfter != nil && !now.Before(next.PreviousRemoveAfter.Time) {
		if err := r.removeUser(ctx, adm, next.PreviousUser); err != nil {
			return r.fail(ctx, ns.Name, next, reasonOf(err), fmt.Errorf("remove the previous credential %s: %w", next.PreviousUser, err))
		}
		next.PreviousUser, next.PreviousRemoveAfter, next.PreviousRemovedAt = "", nil, &metav1.Time{Time: now}
	}
	reason, msg := v1alpha1.ReasonProvisioned, fmt.Sprintf("user %s (SCRAM-SHA-512) reads topic %s and topics %s.*, consumer groups %s.*; credentials in Secret %s", cur, nsTopic, nsTopic, ns.Name, KafkaSecretName)
	if next.PreviousUser != "" {
		reason = v1alpha1.ReasonRotating
		msg += fmt.Sprintf("; the previous user %s works until %s", next.PreviousUser, next.PreviousRemoveAfter.UTC().Format(time.RFC3339))
	}
	setAccessCondition(next, true, reason, msg, now)
	if err := r.writeStatus(ctx, next, entry); err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	r.done[ns.Name] = accessDone{user: cur, topic: nsTopic, secretRV: rv, rotation: next.Rotation}
	r.mu.Unlock()
	return r.requeue(next, now), nil
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
	return nil
}

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

// writeSecret creates or updates the Secret; it returns its resourceVersion and whether it
// changed.
func (r *accessReconciler) writeSecret(ctx context.Context, ns string, exists bool, cur *corev1.Secret, data map[string][]byte) (string, bool, error) {
	if !exists {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KafkaSecretName, Labels: map[string]string{LabelManagedBy: Name}},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		if err := r.c.Create(ctx, s); err != nil {
			return "", false, err
		}
		return s.ResourceVersion, true, nil
	}
	if equality.Semantic.DeepEqual(cur.Data, data) && cur.Labels[LabelManagedBy] == Name {
		return cur.ResourceVersion, false, nil
	}
	next := cur.DeepCopy()
	next.Data = data
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	next.Labels[LabelManagedBy] = Name
	if err := r.c.Update(ctx, next); err != nil {
		return "", false, err
	}
	return next.ResourceVersion, true, nil
}

// fail records a failed pass on the namespace (only there) and retries with backoff.
func (r *accessReconciler) fail(ctx context.Context, ns string, entry *v1alpha1.NamespaceKafkaAccess, reason string, cause error) (ctrl.Result, error) {
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
	if err := r.writeStatus(ctx, next, entry); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, fmt.Errorf("namespace %s: %s: %w", ns, reason, cause) // the workqueue's per-item backoff
}

func setAccessCondition(e *v1alpha1.NamespaceKafkaAccess, ok bool, reason, msg string, now time.Time) {
	c := cond(v1alpha1.ConditionKafkaAccessReady, ok, reason, msg)
	c.LastTransitionTime = metav1.NewTime(now)
	meta.SetStatusCondition(&e.Conditions, c)
}

// cleanup removes a namespace's credentials, ACLs and Secret (opted out, or deleted).
func (r *accessReconciler) cleanup(ctx context.Context, ns string, gone bool, ka *v1alpha1.KafkaAccess, entry *v1alpha1.NamespaceKafkaAccess) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(r.kafka)
	users := map[string]bool{}
	for _, u := range []string{entry.User, entry.PreviousUser} {
		if u != "" {
			users[u] = true
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
		return r.fail(ctx, ns, entry, reasonOf(err), fmt.Errorf("remove the namespace's Kafka access: %w", err))
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KafkaSecretName}}
	if err := r.c.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) && !(gone && apierrors.IsForbidden(err)) {
		return r.fail(ctx, ns, entry, v1alpha1.ReasonSecretFailed, fmt.Errorf("delete Secret %s/%s: %w", ns, KafkaSecretName, err))
	}
	r.mu.Lock()
	delete(r.done, ns)
	r.mu.Unlock()
	if err := r.writeStatus(ctx, nil, entry); err != nil {
		return ctrl.Result{}, err
	}
	r.log.Info("kafka access removed", "namespace", ns, "opted_out", !gone)
	return ctrl.Result{}, nil
}

// writeStatus replaces (nil: removes) the namespace's entry in the policy's
// status.kafkaAccess, reading the policy fresh under a lock with an optimistic lock on the
// write: entries of other namespaces are never lost.
func (r *accessReconciler) writeStatus(ctx context.Context, next, prev *v1alpha1.NamespaceKafkaAccess) error {
	ns := ""
	if next != nil {
		ns = next.Namespace
	} else {
		ns = prev.Namespace
	}
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	var pol v1alpha1.LogRouterPolicy
	if err := r.api.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &pol); err != nil {
		return client.IgnoreNotFound(err)
	}
	updated := pol.DeepCopy()
	l := slices.DeleteFunc(updated.Status.KafkaAccess, func(e v1alpha1.NamespaceKafkaAccess) bool { return e.Namespace == ns })
	if next != nil {
		l = append(l, *next)
		slices.SortFunc(l, func(a, b v1alpha1.NamespaceKafkaAccess) int { return strings.Compare(a.Namespace, b.Namespace) })
	}
	updated.Status.KafkaAccess = l
	r.gauge(updated.Status.KafkaAccess)
	if equality.Semantic.DeepEqual(pol.Status, updated.Status) {
		return nil
	}
	if err := r.c.Status().Patch(ctx, updated, client.MergeFromWithOptions(&pol, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("policy status (kafkaAccess of %s): %w", ns, err)
	}
	if next != nil && changedAccess(prev, next) {
		c := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionKafkaAccessReady)
		typ := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		nsObj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		r.events.Eventf(nsObj, nil, typ, c.Reason, "KafkaAccess", "%s", c.Message)
	}
	return nil
}

func changedAccess(prev, next *v1alpha1.NamespaceKafkaAccess) bool {
	n := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionKafkaAccessReady)
	if prev == nil {
		return n != nil
	}
	p := meta.FindStatusCondition(prev.Conditions, v1alpha1.ConditionKafkaAccessReady)
	return p == nil || p.Status != n.Status || p.Reason != n.Reason || p.Message != n.Message
}

func (r *accessReconciler) gauge(l []v1alpha1.NamespaceKafkaAccess) {
	counts := map[string]float64{"provisioned": 0, "rotating": 0, "failed": 0}
	for _, e := range l {
		c := meta.FindStatusCondition(e.Conditions, v1alpha1.ConditionKafkaAccessReady)
		switch {
		case c == nil || c.Status != metav1.ConditionTrue:
			counts["failed"]++
		case c.Reason == v1alpha1.ReasonRotating:
			counts["rotating"]++
		default:
			counts["provisioned"]++
		}
	}
	for k, v := range counts {
		r.m.namespaces.WithLabelValues(k).Set(v)
	}
}

// setupKafkaAccess registers the Kafka access controller: one item per namespace.
func (c *Controller) setupKafkaAccess(reg prometheus.Registerer) error {
	cl := c.mgr.GetClient()
	r := &accessReconciler{
		c: cl, api: c.mgr.GetAPIReader(), kafka: c.kafka, conn: c.cfg.Kafka, tmpl: c.rec.tmpl,
		events: c.rec.events, m: newAccessMetrics(reg), log: c.log.With("part", "kafka-access"), now: time.Now,
		done: map[string]accessDone{}, warn: rate.Sometimes{First: 3, Interval: 10 * time.Second},
	}
	// The policy changes every namespace's access: each namespace, and each in the status
	// (namespaces gone since).
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var out []reconcile.Request
		seen := map[string]bool{}
		add := func(n string) {
			if !seen[n] {
				seen[n] = true
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: n}})
			}
		}
		if p, ok := o.(*v1alpha1.LogRouterPolicy); ok {
			for _, e := range p.Status.KafkaAccess {
				add(e.Namespace)
			}
		}
		var l corev1.NamespaceList
		if err := cl.List(ctx, &l); err == nil {
			for _, n := range l.Items {
				add(n.Name)
			}
		}
		return out
	})
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("kafkaaccess").
		For(&corev1.Namespace{}).
		// Spec changes only: this controller's own status writes must not requeue every namespace.
		Watches(&v1alpha1.LogRouterPolicy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Namespaces are independent (status writes are serialized by statusMu): a slow
		// Kafka call for one does not hold up the others.
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: c.cfg.Workers}).
		Complete(r)
}
