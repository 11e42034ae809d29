package kubeauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// newFake answers TokenReviews for "good-token" (user alice, group team-a) and
// SubjectAccessReviews allowing group team-a to get logs.logrouter.io in namespace team-a only.
func newFake(t *testing.T) (*fake.Clientset, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	cs := fake.NewClientset()
	var tr, sar atomic.Int64
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr.Add(1)
		rev := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		switch rev.Spec.Token {
		case "good-token":
			rev.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice", UID: "u1", Groups: []string{"team-a"}}}
		case "broken":
			return true, nil, errors.New("apiserver unavailable")
		default:
			rev.Status = authnv1.TokenReviewStatus{Authenticated: false, Error: "invalid bearer token"}
		}
		return true, rev, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar.Add(1)
		rev := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		ra := rev.Spec.ResourceAttributes
		allowed := ra != nil && ra.Group == Group && ra.Resource == Resource && ra.Verb == Verb && ra.Namespace == "team-a"
		inGroup := false
		for _, g := range rev.Spec.Groups {
			inGroup = inGroup || g == "team-a"
		}
		rev.Status.Allowed = allowed && inGroup
		return true, rev, nil
	})
	return cs, &tr, &sar
}

func TestReviewer(t *testing.T) {
	cs, trCalls, sarCalls := newFake(t)
	r, err := New(cs, DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	r.now = func() time.Time { return now }
	ctx := context.Background()

	tests := []struct {
		name    string
		token   string
		ns      string
		wantErr error // from Authenticate, then Authorize
		authErr bool  // Authenticate fails with a non-sentinel error
	}{
		{name: "allowed", token: "good-token", ns: "team-a"},
		{name: "other namespace", token: "good-token", ns: "team-b", wantErr: ErrForbidden},
		{name: "bad token", token: "bad-token", ns: "team-a", wantErr: ErrUnauthenticated},
		{name: "apiserver down", token: "broken", ns: "team-a", authErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := r.Authenticate(ctx, tt.token)
			if tt.authErr {
				if err == nil || errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("Authenticate = %v, want a review error", err)
				}
				return
			}
			if err == nil {
				err = r.Authorize(ctx, id, tt.ns)
			}
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}

	// node-system (the journal's namespace) is never granted by RBAC, and costs no review, even
	// to an identity the API server would allow everything.
	everything := fake.NewClientset()
	var asked atomic.Int64
	everything.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		asked.Add(1)
		rev := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		rev.Status.Allowed = true
		return true, rev, nil
	})
	admin, err := New(everything, DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	root := Identity{Username: "cluster-admin", Groups: []string{"system:masters"}}
	if err := admin.Authorize(ctx, root, "node-system"); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("node-system: %v, want ErrForbidden naming the reservation", err)
	}
	if list, _, err := admin.Allowed(ctx, root, []string{"node-system", "team-x"}); err != nil || len(list) != 1 || list[0] != "team-x" {
		t.Fatalf("Allowed = %v, %v; want [team-x]", list, err)
	}
	if err := admin.Authorize(ctx, root, "node-system-2"); err != nil {
		t.Fatalf("node-system-2: %v", err)
	}
	if asked.Load() != 2 {
		t.Fatalf("%d reviews, want 2 (team-x, node-system-2)", asked.Load())
	}
	// The node file sources' namespaces (node-<name>, logs.node-audit) when the gateway is told
	// them (--kube-reserved-namespaces; the chart passes collector.nodeFiles): the same.
	cfg := DefaultConfig()
	cfg.Reserved = []string{"node-audit"}
	withFiles, err := New(everything, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"node-system", "node-audit"} {
		if err := withFiles.Authorize(ctx, root, ns); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("%s: %v, want ErrForbidden naming the reservation", ns, err)
		}
	}
	if list, _, err := withFiles.Allowed(ctx, root, []string{"node-audit", "node-system", "team-x"}); err != nil || len(list) != 1 || list[0] != "team-x" {
		t.Fatalf("Allowed = %v, %v; want [team-x]", list, err)
	}
	if asked.Load() != 3 {
		t.Fatalf("%d reviews, want 3 (team-x once more)", asked.Load())
	}

	// Cached: repeating the requests asks the API server nothing more.
	tr0, sar0 := trCalls.Load(), sarCalls.Load()
	for i := 0; i < 100; i++ {
		id, err := r.Authenticate(ctx, "good-token")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Authorize(ctx, id, "team-a"); err != nil {
			t.Fatal(err)
		}
		if err := r.Authorize(ctx, id, "team-b"); !errors.Is(err, ErrForbidden) {
			t.Fatal(err)
		}
		if _, err := r.Authenticate(ctx, "bad-token"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatal(err)
		}
	}
	if trCalls.Load() != tr0 || sarCalls.Load() != sar0 {
		t.Fatalf("cache missed: %d token reviews, %d access reviews", trCalls.Load()-tr0, sarCalls.Load()-sar0)
	}
	// Refusals expire sooner than allows.
	now = now.Add(DefaultConfig().DenyTTL + time.Second)
	id, _ := r.Authenticate(ctx, "good-token")
	_ = r.Authorize(ctx, id, "team-a")
	_ = r.Authorize(ctx, id, "team-b")
	if trCalls.Load() != tr0 || sarCalls.Load() != sar0+1 {
		t.Fatalf("after deny TTL: %d token reviews, %d access reviews, want 0 and 1", trCalls.Load()-tr0, sarCalls.Load()-sar0)
	}
	now = now.Add(DefaultConfig().TTL)
	id, _ = r.Authenticate(ctx, "good-token")
	_ = r.Authorize(ctx, id, "team-a")
	if trCalls.Load() != tr0+1 || sarCalls.Load() != sar0+2 {
		t.Fatalf("after TTL: %d token reviews, %d access reviews, want 1 and 2", trCalls.Load()-tr0, sarCalls.Load()-sar0)
	}
}

// TestAllowed: the namespace list of an identity is one review per candidate, at most
// ListParallel at a time and ListMax in all (then incomplete), cached as a whole for TTL, and
// fails (rather than shrinks) when a review fails.
func TestAllowed(t *testing.T) {
	cs, _, _ := newFake(t)
	var inFlight, peak, sarCalls atomic.Int64
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sarCalls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(time.Millisecond) // let concurrent reviews overlap
		if a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).Spec.ResourceAttributes.Namespace == "broken" {
			return true, nil, errors.New("apiserver unavailable")
		}
		return false, nil, nil // on to newFake's answer
	})
	cfg := DefaultConfig()
	cfg.ListMax, cfg.ListParallel = 30, 4
	r, err := New(cs, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	alice := Identity{Username: "alice", UID: "u1", Groups: []string{"team-a"}}
	many := []string{"team-a"}
	for i := range 40 {
		many = append(many, fmt.Sprintf("team-x%02d", i))
	}
	tests := []struct {
		name       string
		id         Identity
		candidates []string
		want       []string
		complete   bool
		reviews    int64
		err        bool
	}{
		{name: "member", id: alice, candidates: []string{"team-a", "team-b", "team-c"}, want: []string{"team-a"}, complete: true, reviews: 3},
		{name: "cached list", id: alice, candidates: []string{"team-a", "team-b", "team-c"}, want: []string{"team-a"}, complete: true, reviews: 0},
		{name: "other identity", id: Identity{Username: "bob", Groups: []string{"team-b"}}, candidates: []string{"team-a", "team-b"}, want: []string{}, complete: true, reviews: 2},
		{name: "no candidates", id: alice, candidates: []string{}, want: []string{}, complete: true, reviews: 0},
		{name: "bounded", id: alice, candidates: many, want: []string{"team-a"}, complete: false, reviews: 29}, // team-a's allow is cached
		{name: "a review fails", id: alice, candidates: []string{"team-a", "broken"}, err: true, reviews: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := sarCalls.Load()
			got, complete, err := r.Allowed(ctx, tt.id, tt.candidates)
			if reviews := sarCalls.Load() - before; reviews != tt.reviews {
				t.Errorf("%d reviews, want %d", reviews, tt.reviews)
			}
			if tt.err {
				if err == nil {
					t.Fatalf("Allowed = %v, want an error", got)
				}
				return
			}
			if err != nil || complete != tt.complete || fmt.Sprint(got) != fmt.Sprint(tt.want) || got == nil {
				t.Fatalf("Allowed = %v %v %v, want %v %v", got, complete, err, tt.want, tt.complete)
			}
		})
	}
	if p := peak.Load(); p > 4 {
		t.Errorf("%d reviews at once, want at most ListParallel (4)", p)
	}
	// The list expires with TTL.
	now = now.Add(cfg.TTL + time.Second)
	before := sarCalls.Load()
	if _, _, err := r.Allowed(ctx, alice, []string{"team-a", "team-b", "team-c"}); err != nil || sarCalls.Load()-before != 3 {
		t.Fatalf("after TTL: %v, %d reviews, want 3", err, sarCalls.Load()-before)
	}
}
