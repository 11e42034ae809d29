package integration

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/logscmd"
)

// kubeForGateway starts a kube-apiserver (opts) holding namespaces logrouter, team-a (the plain
// manifests' example binding is there) and extra, and deploy/kubernetes/gateway-rbac.yaml; it
// returns the server and a client with the gateway's ServiceAccount for --kube-auth.
func kubeForGateway(t *testing.T, opts kubeapiserver.Options, extra ...string) (*kubeapiserver.Server, kubernetes.Interface) {
	t.Helper()
	srv := kubeapiserver.Start(t, opts)
	admin := srv.Client(t)
	for _, ns := range append([]string{"logrouter", "team-a"}, extra...) {
		gwApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	b, err := os.ReadFile("../deploy/kubernetes/gateway-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("gateway-rbac.yaml: %v", err)
		}
		gwApply(t, admin, obj)
	}
	gwClient, err := kubernetes.NewForConfig(srv.ConfigForToken(srv.ServiceAccountToken(t, "logrouter", "logrouter-gateway")))
	if err != nil {
		t.Fatal(err)
	}
	return srv, gwClient
}

// TestLogsKubeconfigIdentity: `logrouter logs` with no token uses the kubeconfig's current
// context: a ServiceAccount bound to logrouter-logs-reader in team-a (the plain manifests'
// example) reads team-a; an unbound one gets exit 4; the gateway checks both through a real
// kube-apiserver's TokenReview and SubjectAccessReview.
func TestLogsKubeconfigIdentity(t *testing.T) {
	srv, gwClient := kubeForGateway(t, kubeapiserver.Options{})
	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) {
		c.KubeAuth = true
		*o = append(*o, api.WithKubeClient(gwClient))
	})
	e.createTopic("logs.team-a", 1)
	e.produceSeq(0, 5, 1)

	bound := srv.WriteKubeconfig(t, srv.ServiceAccountToken(t, "team-a", "log-shipper"))
	unbound := srv.WriteKubeconfig(t, srv.ServiceAccountToken(t, "team-a", "other"))
	ctx := context.Background()
	// $KUBECONFIG, as kubectl reads it.
	out, errOut, code := runLogs(ctx, logsEnv(t, "KUBECONFIG", bound), "-n", "team-a", "--gateway", e.base, "-o", "json")
	if code != 0 {
		t.Fatalf("bound ServiceAccount: exit %d: %s", code, errOut)
	}
	checkOnce(t, seqs(t, out), 5)
	_, errOut, code = runLogs(ctx, logsEnv(t), "-n", "team-a", "--gateway", e.base, "--kubeconfig", unbound)
	if code != logscmd.ExitForbidden || !strings.Contains(errOut, `may not read namespace "team-a"`) {
		t.Fatalf("unbound ServiceAccount: exit %d: %s", code, errOut)
	}
}
