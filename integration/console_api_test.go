package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/deploy/crds"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// decodeJSON reads a 200 JSON answer into v.
func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, problemCode(t, resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayNamespacesEndpoint: GET /v1/namespaces lists exactly what the token grants,
// and refuses what every read endpoint refuses.
func TestGatewayNamespacesEndpoint(t *testing.T) {
	e := startGateway(t, 1)
	secret, rec := e.token(token.Spec{Namespaces: []string{"shop", "payments", "shop-eu"}})
	var got api.NamespaceList
	decodeJSON(t, e.get("/v1/namespaces", secret), &got)
	if want := []string{"payments", "shop", "shop-eu"}; !slices.Equal(got.Namespaces, want) || !got.Complete || got.Principal != "token:"+rec.ID {
		t.Fatalf("got %+v, want %v complete as token:%s", got, want, rec.ID)
	}
	admin, _ := e.token(token.Spec{Admin: true})
	var none api.NamespaceList
	decodeJSON(t, e.get("/v1/namespaces", admin), &none)
	if none.Namespaces == nil || len(none.Namespaces) != 0 || !none.Complete {
		t.Fatalf("admin token without namespaces: %+v, want an empty, complete list", none)
	}
	for _, tt := range []struct {
		name, method, path, secret string
		status                     int
		code                       string
	}{
		{"no credentials", "GET", "/v1/namespaces", "", 401, "unauthenticated"},
		{"bad token", "GET", "/v1/namespaces", "lrt_0123456789abcdef_nope", 401, "unauthenticated"},
		{"query", "GET", "/v1/namespaces?limit=1", secret, 400, "unknown_parameter"},
		{"token in query", "GET", "/v1/namespaces?access_token=x", secret, 400, "token_in_query"},
		{"post", "POST", "/v1/namespaces", secret, 405, "method_not_allowed"},
		{"trailing slash", "GET", "/v1/namespaces/", secret, 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.base+tt.path, nil)
			if tt.secret != "" {
				req.Header.Set("Authorization", "Bearer "+tt.secret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if code := problemCode(t, resp); resp.StatusCode != tt.status || code != tt.code {
				t.Fatalf("%s %s: %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, code, tt.status, tt.code)
			}
		})
	}
}

// TestGatewayIdentityHeader: with --identity-header, read requests without Authorization take
// the identity proxy's header, checked like any bearer token; token management never does.
func TestGatewayIdentityHeader(t *testing.T) {
	const hdr = "X-Forwarded-Access-Token"
	e := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) { c.IdentityHeader = hdr })
	e.createTopic("logs.shop", 1)
	shop, _ := e.token(token.Spec{Namespaces: []string{"shop"}})
	other, _ := e.token(token.Spec{Namespaces: []string{"payments"}})
	admin, _ := e.token(token.Spec{Admin: true})
	for _, tt := range []struct {
		name, path string
		hdrs       []string
		status     int
		code       string
	}{
		{"namespaces", "/v1/namespaces", []string{hdr, shop}, 200, ""},
		{"with Bearer prefix", "/v1/namespaces", []string{hdr, "Bearer " + shop}, 200, ""},
		{"logs page", "/v1/namespaces/shop/logs?limit=1", []string{hdr, shop}, 200, ""},
		{"other namespace", "/v1/namespaces/shop/logs", []string{hdr, other}, 403, "forbidden"},
		{"unknown token", "/v1/namespaces", []string{hdr, "lrt_0123456789abcdef_nope"}, 401, "unauthenticated"},
		{"twice", "/v1/namespaces", []string{hdr, shop, hdr, shop}, 400, "bad_request"},
		{"bad characters", "/v1/namespaces", []string{hdr, "a b"}, 400, "bad_request"},
		// Authorization, when sent, is what counts.
		{"authorization wins", "/v1/namespaces/shop/logs?limit=1", []string{"Authorization", "Bearer " + other, hdr, shop}, 403, "forbidden"},
		{"never token management", "/v1/tokens", []string{hdr, admin}, 401, "unauthenticated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.get(tt.path, "", tt.hdrs...)
			if code := problemCode(t, resp); resp.StatusCode != tt.status || code != tt.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, code, tt.status, tt.code)
			}
		})
	}
	// Without the flag the header means nothing.
	plain := startGateway(t, 1)
	tok, _ := plain.token(token.Spec{Namespaces: []string{"shop"}})
	if resp := plain.get("/v1/namespaces", "", hdr, tok); resp.StatusCode != 401 {
		t.Fatalf("without --identity-header: %d %s, want 401", resp.StatusCode, problemCode(t, resp))
	}
}

// TestGatewayConsoleServed: /ui/ serves the embedded console with its security headers on
// every answer; paths are matched exactly.
func TestGatewayConsoleServed(t *testing.T) {
	e := startGateway(t, 1)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/ui/", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/ui", 308, ""},
		{"GET", "/ui/nope.js", 404, "application/problem+json"},
		{"GET", "/ui/../openapi.json", 404, "application/problem+json"},
		{"GET", "/ui/%2e%2e/openapi.json", 404, "application/problem+json"},
		{"GET", "/ui//app.js", 404, "application/problem+json"},
		{"POST", "/ui/", 405, "application/problem+json"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.base+tt.path, nil)
			req.URL.Opaque = tt.path // sent as typed, never cleaned by the client
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.ctype)
			}
			if resp.Header.Get("Content-Security-Policy") != ui.CSP || resp.Header.Get("X-Frame-Options") != "DENY" ||
				resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing: %v", resp.Header)
			}
			if tt.status == 308 && resp.Header.Get("Location") != "/ui/" {
				t.Errorf("Location %q", resp.Header.Get("Location"))
			}
			if tt.path == "/ui/" && tt.method == "GET" && !strings.Contains(string(body), `<script type="module" src="app.js">`) {
				t.Errorf("index.html does not load app.js: %s", body)
			}
		})
	}
	off := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) { c.Console = false })
	if resp := off.get("/ui/", ""); resp.StatusCode != 404 {
		t.Fatalf("--console=false: %d", resp.StatusCode)
	}
}

// TestGatewayPipelinesDisabled: without --kube-pipelines the endpoint says how to turn it on,
// after the same access check as the namespace's logs.
func TestGatewayPipelinesDisabled(t *testing.T) {
	e := startGateway(t, 1)
	shop, _ := e.token(token.Spec{Namespaces: []string{"shop"}})
	resp := e.get("/v1/namespaces/shop/pipelines", shop)
	if code := problemCode(t, resp); resp.StatusCode != 404 || code != "pipelines_disabled" {
		t.Fatalf("%d %s, want 404 pipelines_disabled", resp.StatusCode, code)
	}
	resp = e.get("/v1/namespaces/payments/pipelines", shop)
	if code := problemCode(t, resp); resp.StatusCode != 403 || code != "forbidden" {
		t.Fatalf("another namespace: %d %s, want 403 forbidden", resp.StatusCode, code)
	}
	resp = e.get("/v1/namespaces/Shop/pipelines", shop)
	if code := problemCode(t, resp); resp.StatusCode != 400 || code != "invalid_namespace" {
		t.Fatalf("bad namespace: %d %s", resp.StatusCode, code)
	}
}

// TestGatewayPipelinesKubeAPIServer reads LogPipelines from a real API server with the
// gateway's own identity: without RBAC the answer says what to grant; with it, the
// namespace's pipelines come back with their conditions and counters, and only to a token
// that grants the namespace.
func TestGatewayPipelinesKubeAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{Users: []kubeapiserver.User{{Name: "gateway", UID: "gw"}}})
	ctx := context.Background()
	if err := crds.Install(ctx, srv.Config); err != nil {
		t.Fatal(err)
	}
	admin, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	kc := srv.Client(t)
	for _, ns := range []string{"shop", "secret"} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createPipeline(t, admin, "shop", "web", true)
	createPipeline(t, admin, "shop", "api", false)
	createPipeline(t, admin, "secret", "hidden", true)

	gwDyn, err := dynamic.NewForConfig(srv.ConfigFor("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) {
		c.KubePipelines = true
		*o = append(*o, api.WithDynamicClient(gwDyn))
	})
	shop, _ := e.token(token.Spec{Namespaces: []string{"shop"}})
	resp := e.get("/v1/namespaces/shop/pipelines", shop)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "RBAC: list logpipelines.logrouter.io") {
		t.Fatalf("without RBAC: %d %s, want 503 naming the RBAC to grant", resp.StatusCode, b)
	}

	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "gateway-pipelines"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"logrouter.io"}, Resources: []string{"logpipelines"}, Verbs: []string{"list"}}}}
	if _, err := kc.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gateway-pipelines"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "gateway-pipelines"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "gateway"}}}
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got api.PipelineList
	deadline := time.Now().Add(20 * time.Second) // RBAC reaches the authorizer's cache within a second or so
	for {
		resp := e.get("/v1/namespaces/shop/pipelines", shop)
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			decodeJSON(t, resp, &got)
			break
		}
		resp.Body.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if len(got.Pipelines) != 2 || got.Pipelines[0].Name != "api" || got.Pipelines[1].Name != "web" {
		t.Fatalf("pipelines %+v, want api and web of shop", got.Pipelines)
	}
	web, apiP := got.Pipelines[1], got.Pipelines[0]
	if web.Counters == nil || web.Counters.Emitted != 90 || web.Counters.Dropped != 10 || web.AcceptedGeneration == nil ||
		len(web.Conditions) != 2 || web.Conditions[1].Reason != v1alpha1.ReasonTopicFailed || web.Suffix != "audit" {
		t.Fatalf("web: %+v", web)
	}
	if apiP.Counters != nil || len(apiP.Conditions) != 0 || apiP.AcceptedGeneration != nil {
		t.Fatalf("api (no status yet): %+v", apiP)
	}
	resp = e.get("/v1/namespaces/secret/pipelines", shop)
	if code := problemCode(t, resp); resp.StatusCode != 403 || code != "forbidden" {
		t.Fatalf("another namespace: %d %s", resp.StatusCode, code)
	}
}

// createPipeline creates a LogPipeline and, with status, writes the status the controller
// would: accepted, not ready (topic failed), counters.
func createPipeline(t *testing.T, dc dynamic.Interface, ns, name string, status bool) {
	t.Helper()
	ctx := context.Background()
	lp := &v1alpha1.LogPipeline{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "LogPipeline"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}},
			Output: v1alpha1.Output{Suffix: map[bool]string{true: "audit"}[status]}}}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(lp)
	if err != nil {
		t.Fatal(err)
	}
	ri := dc.Resource(v1alpha1.LogPipelines).Namespace(ns)
	created, err := ri.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s/%s: %v", ns, name, err)
	}
	if !status {
		return
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	st := v1alpha1.LogPipelineStatus{ObservedGeneration: created.GetGeneration(),
		Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid, Message: "valid", LastTransitionTime: now, ObservedGeneration: created.GetGeneration()},
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTopicFailed, Message: "creating topic logs." + ns + ".audit: <b>denied</b>", LastTransitionTime: now, ObservedGeneration: created.GetGeneration()},
		},
		Accepted: &v1alpha1.AcceptedSpec{Generation: created.GetGeneration(), Spec: lp.Spec},
		Counters: &v1alpha1.Counters{Selected: 100, Emitted: 90, Dropped: 10, UpdatedAt: now}}
	so, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		t.Fatal(err)
	}
	created.Object["status"] = so
	if _, err := ri.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status %s/%s: %v", ns, name, err)
	}
}

// TestConsoleDocCurls runs the curl examples of docs/console.md with the real curl against a
// gateway that reads pipelines, as the document describes them.
func TestConsoleDocCurls(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH (apt-get install -y curl); the docs' curl examples are not run")
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.LogPipelines: "LogPipelineList"}, consolePipeline(t))
	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) {
		c.KubePipelines = true
		*o = append(*o, api.WithDynamicClient(dyn))
	})
	shop, _ := e.token(token.Spec{Namespaces: []string{"shop"}})
	// What each documented call must answer (by the path it calls).
	want := map[string]func(out []byte) error{
		"/v1/namespaces'": func(out []byte) error {
			var l api.NamespaceList
			if err := json.Unmarshal(out, &l); err != nil || !slices.Equal(l.Namespaces, []string{"shop"}) {
				return fmt.Errorf("namespaces %s (%v)", out, err)
			}
			return nil
		},
		"/v1/namespaces/shop/pipelines'": func(out []byte) error {
			var l api.PipelineList
			if err := json.Unmarshal(out, &l); err != nil || len(l.Pipelines) != 1 || l.Pipelines[0].Counters == nil {
				return fmt.Errorf("pipelines %s (%v)", out, err)
			}
			return nil
		},
	}
	cmds := docCurls(t, "../docs/console.md")
	if len(cmds) != len(want) {
		t.Fatalf("docs/console.md has %d curl commands, this test checks %d: %q", len(cmds), len(want), cmds)
	}
	for _, c := range cmds {
		t.Run(c, func(t *testing.T) {
			var check func([]byte) error
			for suffix, f := range want {
				if strings.HasSuffix(c, suffix) {
					check = f
				}
			}
			if check == nil {
				t.Fatalf("no check for %s", c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			line := strings.Replace(strings.Replace(c, "curl ", curl+" --fail-with-body ", 1), "https://gateway/", e.base+"/", 1)
			cmd := exec.CommandContext(ctx, "bash", "-c", "exec "+line)
			cmd.Env = append(os.Environ(), "TOKEN="+shop)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if err := check(out); err != nil {
				t.Fatal(err)
			}
		})
	}
}
