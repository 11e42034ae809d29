package kubeapiserver

import (
	"context"
	"slices"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestServer(t *testing.T) {
	s := Start(t, Options{Users: []User{{Name: "alice", UID: "u-alice", Groups: []string{"team-a"}}}})
	ctx := context.Background()
	admin := s.Client(t)

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fixture"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create namespace: %v", err)
	}

	alice, err := kubernetes.NewForConfig(s.ConfigFor("alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.CoreV1().Pods("fixture").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("alice without RBAC listing pods: %v, want Forbidden", err)
	}

	// TokenReview of a static token, as the gateway will do.
	tr, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: s.Token("alice")}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Status.Authenticated || tr.Status.User.Username != "alice" || !slices.Contains(tr.Status.User.Groups, "team-a") {
		t.Errorf("token review = %+v", tr.Status)
	}

	// A service account token from the TokenRequest API authenticates as that account.
	saCfg := s.ConfigForToken(s.ServiceAccountToken(t, "fixture", "reader"))
	sa, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	ssr, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ssr.Status.UserInfo.Username; got != "system:serviceaccount:fixture:reader" {
		t.Errorf("service account identity = %q", got)
	}
}
