package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
)

// TestGatewayKubeAPIServer checks Kubernetes identities against a real kube-apiserver: the
// gateway runs as its ServiceAccount with only deploy/kubernetes/gateway-rbac.yaml, and access
// to a namespace follows RoleBindings of the logrouter-logs-reader ClusterRole.
func TestGatewayKubeAPIServer(t *testing.T) {
	srv, gwClient := kubeForGateway(t, kubeapiserver.Options{Users: []kubeapiserver.User{
		{Name: "alice", UID: "u-alice", Groups: []string{"team-a"}},
		{Name: "bob", UID: "u-bob", Groups: []string{"team-b"}},
	}}, "team-b")
	shipper := srv.ServiceAccountToken(t, "team-a", "log-shipper")
	other := srv.ServiceAccountToken(t, "team-a", "other")

	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) {
		c.KubeAuth = true
		*o = append(*o, api.WithKubeClient(gwClient))
	})
	e.createTopic("logs.team-a", 1)
	e.createTopic("logs.team-b", 1)
	e.produce(seqLines("team-a", 0, 3, 1)...)

	tests := []struct {
		name, token, ns string
		status          int
	}{
		{"group member reads its namespace", srv.Token("alice"), "team-a", 200},
		{"group member refused elsewhere", srv.Token("alice"), "team-b", 403},
		{"other group refused", srv.Token("bob"), "team-a", 403},
		{"bound service account", shipper, "team-a", 200},
		{"unbound service account", other, "team-a", 403},
		{"invalid token", "not-a-token", "team-a", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.get("/v1/namespaces/"+tt.ns+"/logs?limit=10", tt.token)
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, problemCode(t, resp), tt.status)
			}
		})
	}
	if resp := e.get("/v1/namespaces/team-a/logs?limit=10", srv.Token("alice")); resp.StatusCode != http.StatusOK {
		t.Fatalf("cached allow: %d", resp.StatusCode)
	}

	// GET /v1/namespaces: the namespaces with logs (topics) that RBAC lets the identity read,
	// one SubjectAccessReview each. team-b's group is bound there; team-c has a topic but no
	// binding (and no Namespace object); a suffix topic names no namespace.
	gwApply(t, srv.Client(t), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team-b-logs", Namespace: "team-b"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "logrouter-logs-reader"},
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "team-b"}}})
	e.createTopic("logs.team-c", 1)
	e.createTopic("logs.team-a.audit", 1)
	lists := []struct {
		name, token string
		want        string
	}{
		{"group member", srv.Token("alice"), "team-a"},
		{"other group", srv.Token("bob"), "team-b"},
		{"bound service account", shipper, "team-a"},
		{"unbound service account", other, ""},
	}
	for _, tt := range lists {
		t.Run("namespaces/"+tt.name, func(t *testing.T) {
			resp := e.get("/v1/namespaces", tt.token)
			defer resp.Body.Close()
			var list api.NamespaceList
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			if strings.Join(list.Namespaces, ",") != tt.want || !list.Complete || list.Namespaces == nil {
				t.Fatalf("namespaces %q complete %v, want %q complete", list.Namespaces, list.Complete, tt.want)
			}
		})
	}
}

func gwApply(t *testing.T, c kubernetes.Interface, obj any) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = c.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ServiceAccount:
		_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("gwApply: unsupported %T", obj)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("apply %T: %v", obj, err)
	}
}
