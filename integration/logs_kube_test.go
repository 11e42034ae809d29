package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
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

	// Which credential and defaults a run uses, from flags, LOGROUTER_* and the config file's
	// contexts: the gateway's answer tells (teamA reads team-a, other reads only team-b).
	teamA, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	other, _ := e.token(token.Spec{Namespaces: []string{"team-b"}})
	home := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("team-a.token", teamA+"\n")
	write("other.token", "  "+other+" \n")
	write(".config/logrouter/config.yaml", `current-context: shop
contexts:
- name: shop
  gateway: `+e.base+`
  namespace: team-a
  token-file: ~/team-a.token
- name: kube
  gateway: `+e.base+`
  namespace: team-a
  kubeconfig: `+bound+`
- name: kube-unbound
  gateway: `+e.base+`
  namespace: team-a
  kubeconfig: `+unbound+`
`)
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"current context's token file", nil, nil, 0},
		{"--token-file wins over the context", nil, []string{"--token-file", "~/other.token"}, logscmd.ExitForbidden},
		{"LOGROUTER_TOKEN wins over the context's file", []string{"LOGROUTER_TOKEN", other}, nil, logscmd.ExitForbidden},
		{"--token-file wins over LOGROUTER_TOKEN", []string{"LOGROUTER_TOKEN", other}, []string{"--token-file", "~/team-a.token"}, 0},
		{"-n wins over the context", nil, []string{"-n", "team-b"}, logscmd.ExitForbidden},
		{"LOGROUTER_NAMESPACE wins over the context", []string{"LOGROUTER_NAMESPACE", "team-b"}, nil, logscmd.ExitForbidden},
		{"a context's kubeconfig", nil, []string{"--context", "kube"}, 0},
		{"LOGROUTER_CONTEXT", []string{"LOGROUTER_CONTEXT", "kube-unbound"}, nil, logscmd.ExitForbidden},
		{"--kubeconfig wins over the context's", nil, []string{"--context", "kube", "--kubeconfig", unbound}, logscmd.ExitForbidden},
		{"a token wins over the context's kubeconfig", []string{"LOGROUTER_TOKEN", teamA}, []string{"--context", "kube-unbound"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := logsEnv(t, tt.env...)
			env.Home = home
			_, errOut, code := runLogs(ctx, env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errOut)
			}
		})
	}
}
