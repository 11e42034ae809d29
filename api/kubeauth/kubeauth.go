// Package kubeauth authenticates Kubernetes ServiceAccount and user tokens with TokenReview and
// authorizes them per namespace with SubjectAccessReview on a virtual resource
// (get logs.logrouter.io in the namespace; deploy/kubernetes/gateway-rbac.yaml ships the
// ClusterRole), and lists the namespaces of a set an identity may read (one review each).
// The answers are cached briefly: an uncached review per request would queue
// behind client-go's rate limiter and the API server's.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/logrouter/logrouter/internal/topic"
)

// The virtual resource access is checked against.
const (
	Group    = "logrouter.io"
	Resource = "logs"
	Verb     = "get"
)

// Errors callers branch on.
var (
	ErrUnauthenticated = errors.New("kubernetes token not authenticated")
	ErrForbidden       = errors.New("kubernetes identity may not read this namespace")
)

// Identity is an authenticated Kubernetes user.
type Identity struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
}

// Config tunes the reviewer.
type Config struct {
	Audiences []string      // TokenReview audiences; empty = the API server's
	TTL       time.Duration // how long an allow (and an authentication) is cached
	DenyTTL   time.Duration // how long a refusal is cached
	MaxCached int
	// ListMax bounds the namespaces Allowed reviews for one caller (more: the list is
	// incomplete), and ListParallel how many of its reviews run at once.
	ListMax, ListParallel int
	// Reserved are namespaces, besides topic.NodeSystem (always reserved), that RBAC never
	// opens: the node file sources' topic.NodeSource namespaces, whose topics hold the nodes' own
	// files (the audit log). A Kubernetes namespace that happens to be named so is not theirs.
	Reserved []string
}

// DefaultConfig caches allows for 30 s and refusals for 5 s, and lists up to 1000 namespaces
// with 8 reviews at a time.
func DefaultConfig() Config {
	return Config{TTL: 30 * time.Second, DenyTTL: 5 * time.Second, MaxCached: 10000, ListMax: 1000, ListParallel: 8}
}

// Reviewer asks the API server and caches the answers. Safe for concurrent use.
type Reviewer struct {
	client kubernetes.Interface
	cfg    Config
	now    func() time.Time

	mu    sync.Mutex
	authn map[[32]byte]authnEntry
	authz map[string]authzEntry
	lists map[[32]byte]listEntry

	reserved map[string]bool

	reviews *prometheus.CounterVec
}

type authnEntry struct {
	id      Identity
	err     error
	expires time.Time
}

type listEntry struct {
	allowed []string
	expires time.Time
}

type authzEntry struct {
	allowed bool
	expires time.Time
}

// New returns a reviewer; metrics are registered on reg when non-nil.
func New(client kubernetes.Interface, cfg Config, reg prometheus.Registerer) (*Reviewer, error) {
	r := &Reviewer{
		client: client, cfg: cfg, now: time.Now,
		authn: map[[32]byte]authnEntry{}, authz: map[string]authzEntry{}, lists: map[[32]byte]listEntry{},
		reserved: map[string]bool{topic.NodeSystem: true},
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logrouter_gateway_kube_reviews_total",
			Help: "TokenReview and SubjectAccessReview answers, by kind (token, access, list: a namespace list of one caller), result (allowed, denied, error) and whether the cache answered.",
		}, []string{"kind", "result", "cached"}),
	}
	for _, ns := range cfg.Reserved {
		r.reserved[ns] = true
	}
	if reg != nil {
		if err := reg.Register(r.reviews); err != nil {
			return nil, fmt.Errorf("register kubeauth metrics: %w", err)
		}
	}
	return r, nil
}

// Authenticate reviews token.
func (r *Reviewer) Authenticate(ctx context.Context, token string) (Identity, error) {
	key := sha256.Sum256([]byte(token))
	now := r.now()
	r.mu.Lock()
	e, ok := r.authn[key]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		r.reviews.WithLabelValues("token", result(e.err == nil, nil), "true").Inc()
		return e.id, e.err
	}
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: r.cfg.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		r.reviews.WithLabelValues("token", "error", "false").Inc()
		return Identity{}, fmt.Errorf("token review: %w", err)
	}
	e = authnEntry{expires: now.Add(r.cfg.TTL)}
	if !tr.Status.Authenticated || tr.Status.User.Username == "" {
		reason := tr.Status.Error
		if reason == "" {
			reason = "not authenticated"
		}
		e.err = fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
		e.expires = now.Add(r.cfg.DenyTTL)
	} else {
		u := tr.Status.User
		e.id = Identity{Username: u.Username, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			e.id.Extra = map[string][]string{}
			for k, v := range u.Extra {
				e.id.Extra[k] = v
			}
		}
	}
	r.mu.Lock()
	if len(r.authn) >= r.cfg.MaxCached {
		r.authn = map[[32]byte]authnEntry{} // crude but bounded: the cache refills from reviews
	}
	r.authn[key] = e
	r.mu.Unlock()
	r.reviews.WithLabelValues("token", result(e.err == nil, nil), "false").Inc()
	return e.id, e.err
}

func result(ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case ok:
		return "allowed"
	}
	return "denied"
}

func authzKey(id Identity, ns string) string {
	g := append([]string(nil), id.Groups...)
	sort.Strings(g)
	return ns + "\x00" + id.Username + "\x00" + id.UID + "\x00" + strings.Join(g, "\x00")
}

// Authorize returns nil if id may get the virtual resource in namespace ns, ErrForbidden if not.
func (r *Reviewer) Authorize(ctx context.Context, id Identity, ns string) error {
	if r.reserved[ns] {
		// The node's own logs (the journal, node files) are shipped under these names: RBAC in a
		// Kubernetes namespace that happens to be called so must not open them.
		r.reviews.WithLabelValues("access", "reserved", "false").Inc()
		return fmt.Errorf("%w: %s in %s: the namespace is reserved for the nodes' own logs; Kubernetes RBAC never grants it, a gateway token from the platform team does", ErrForbidden, id.Username, ns)
	}
	key := authzKey(id, ns)
	now := r.now()
	r.mu.Lock()
	e, ok := r.authz[key]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		r.reviews.WithLabelValues("access", result(e.allowed, nil), "true").Inc()
		if !e.allowed {
			return fmt.Errorf("%w: %s in %s", ErrForbidden, id.Username, ns)
		}
		return nil
	}
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range id.Extra {
		extra[k] = v
	}
	sar, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: id.Username, UID: id.UID, Groups: id.Groups, Extra: extra,
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: Verb, Group: Group, Resource: Resource},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		r.reviews.WithLabelValues("access", "error", "false").Inc()
		return fmt.Errorf("subject access review: %w", err)
	}
	e = authzEntry{allowed: sar.Status.Allowed && !sar.Status.Denied, expires: now.Add(r.cfg.TTL)}
	if !e.allowed {
		e.expires = now.Add(r.cfg.DenyTTL)
	}
	r.mu.Lock()
	if len(r.authz) >= r.cfg.MaxCached {
		r.authz = map[string]authzEntry{}
	}
	r.authz[key] = e
	r.mu.Unlock()
	r.reviews.WithLabelValues("access", result(e.allowed, nil), "false").Inc()
	if !e.allowed {
		return fmt.Errorf("%w: %s in %s", ErrForbidden, id.Username, ns)
	}
	return nil
}

// Allowed returns the namespaces of candidates (sorted, without duplicates) that id may read,
// sorted, asking one SubjectAccessReview per namespace (through Authorize's cache), at most
// ListParallel at a time; complete is false when there were more than ListMax candidates and
// only the first ListMax were reviewed. The whole answer is cached for TTL, so a console
// reloading its namespace page costs no reviews. A review that fails fails the list: a
// partial list would look like a refusal.
func (r *Reviewer) Allowed(ctx context.Context, id Identity, candidates []string) (allowed []string, complete bool, err error) {
	complete = len(candidates) <= r.cfg.ListMax
	if !complete {
		candidates = candidates[:r.cfg.ListMax]
	}
	h := sha256.New()
	h.Write([]byte(authzKey(id, "")))
	for _, ns := range candidates {
		h.Write([]byte{0})
		h.Write([]byte(ns))
	}
	var key [32]byte
	h.Sum(key[:0])
	now := r.now()
	r.mu.Lock()
	e, ok := r.lists[key]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		r.reviews.WithLabelValues("list", "allowed", "true").Inc()
		return slices.Clone(e.allowed), complete, nil
	}
	ok2 := make([]bool, len(candidates))
	errs := make([]error, len(candidates))
	sem := make(chan struct{}, max(r.cfg.ListParallel, 1))
	var wg sync.WaitGroup
	for i, ns := range candidates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := r.Authorize(ctx, id, ns)
			ok2[i] = err == nil
			if err != nil && !errors.Is(err, ErrForbidden) {
				errs[i] = fmt.Errorf("namespace %s: %w", ns, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.reviews.WithLabelValues("list", "error", "false").Inc()
		return nil, false, err
	}
	allowed = []string{}
	for i, ns := range candidates {
		if ok2[i] {
			allowed = append(allowed, ns)
		}
	}
	r.mu.Lock()
	if len(r.lists) >= r.cfg.MaxCached {
		r.lists = map[[32]byte]listEntry{}
	}
	r.lists[key] = listEntry{allowed: allowed, expires: now.Add(r.cfg.TTL)}
	r.mu.Unlock()
	r.reviews.WithLabelValues("list", "allowed", "false").Inc()
	return slices.Clone(allowed), complete, nil
}
