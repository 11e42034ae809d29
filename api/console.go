package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// serveConsole serves the embedded web console. Only "/ui" is redirected (to the fixed
// "/ui/"); every other path is matched exactly, never cleaned.
func (g *Gateway) serveConsole(q *request) {
	ui.SetSecurityHeaders(q.w.Header())
	if g.console == nil {
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "the web console is disabled on this gateway (--console=false)"))
		return
	}
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		q.w.Header().Set("Allow", "GET, HEAD")
		q.fail(problem.New(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "only GET and HEAD are allowed here"))
		return
	}
	if q.r.URL.EscapedPath() == "/ui" {
		q.w.Header().Set("Location", ui.Prefix)
		q.w.WriteHeader(http.StatusPermanentRedirect)
		return
	}
	if _, ok := g.console.Lookup(q.r.URL.EscapedPath()); !ok {
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such file of the console; open /ui/"))
		return
	}
	g.console.ServeHTTP(q.w, q.r)
}

// readOnly checks what every small read endpoint requires: GET, no body, no query.
func readOnly(q *request) bool {
	if q.r.Method != http.MethodGet {
		q.w.Header().Set("Allow", http.MethodGet)
		q.fail(problem.New(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "only GET is allowed here"))
		return false
	}
	if q.r.ContentLength > 0 || len(q.r.TransferEncoding) > 0 {
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, "GET requests take no body"))
		return false
	}
	if err := params.None(q.r.URL.RawQuery); err != nil {
		q.fail(paramProblem(err))
		return false
	}
	return true
}

// NamespaceList is the body of GET /v1/namespaces.
type NamespaceList struct {
	// Namespaces the credentials may read, sorted: a logrouter token's grants; for a
	// Kubernetes identity, the namespaces with logs (a Kafka topic) that RBAC lets it read.
	Namespaces []string `json:"namespaces"`
	// Complete is false when the list may lack some: a Kubernetes identity is reviewed for at
	// most 1000 namespaces.
	Complete bool `json:"complete"`
	// Principal is the caller as audit logs name it ("token:<id>", "kube:<user>").
	Principal string `json:"principal"`
}

// serveNamespaces is GET /v1/namespaces: what the caller's own credentials grant.
func (g *Gateway) serveNamespaces(q *request) {
	if !readOnly(q) || !g.authenticate(q) {
		return
	}
	var candidates func(context.Context) ([]string, error)
	if g.topics != nil {
		candidates = g.topics.Namespaces
	}
	ns, complete, err := g.auth.Namespaces(q.r.Context(), q.principal, candidates)
	if err != nil {
		g.log.Warn("namespace list", "principal", q.principal.ID, "err", err)
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "the namespace list could not be made (Kafka or the Kubernetes API did not answer); retry shortly, or open a namespace by name", RetryAfter: 5})
		return
	}
	writeJSON(q, http.StatusOK, NamespaceList{Namespaces: ns, Complete: complete, Principal: q.principal.ID})
}

// Pipeline is one LogPipeline as GET /v1/namespaces/{ns}/pipelines shows it: its status as
// the controller wrote it, and the spec's output suffix.
type Pipeline struct {
	Name               string             `json:"name"`
	Generation         int64              `json:"generation"`
	ObservedGeneration int64              `json:"observedGeneration"`
	AcceptedGeneration *int64             `json:"acceptedGeneration"`
	Suffix             string             `json:"suffix,omitempty"`
	Conditions         []metav1.Condition `json:"conditions"`
	Counters           *v1alpha1.Counters `json:"counters"`
}

// PipelineList is the body of GET /v1/namespaces/{ns}/pipelines.
type PipelineList struct {
	Pipelines []Pipeline `json:"pipelines"`
}

// servePipelines is GET /v1/namespaces/{ns}/pipelines: the namespace's LogPipelines with
// their conditions and counters, read from the Kubernetes API with the gateway's own
// credentials (--kube-pipelines); the caller's access to the namespace is checked first,
// exactly as for its logs.
func (g *Gateway) servePipelines(q *request, ns string) {
	if !pathNamespace(q, ns) || !readOnly(q) || !g.access(q, ns) {
		return
	}
	if g.dyn == nil {
		q.fail(problem.New(http.StatusNotFound, problem.CodePipelinesOff,
			"this gateway does not read LogPipelines: start it with --kube-pipelines (and RBAC to list logpipelines.logrouter.io); `kubectl get logpipelines -n "+ns+"` shows them meanwhile"))
		return
	}
	lease := g.lease(q)
	if lease == nil {
		return
	}
	defer lease.Release()
	ctx, cancel := context.WithTimeout(q.r.Context(), 10*time.Second)
	defer cancel()
	list, err := g.dyn.Resource(v1alpha1.LogPipelines).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		g.log.Warn("list LogPipelines", "namespace", ns, "err", err)
		detail := "could not list LogPipelines from the Kubernetes API; retry shortly"
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			detail = "the gateway may not list LogPipelines (RBAC: list logpipelines.logrouter.io for the gateway's ServiceAccount)"
		}
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: detail, RetryAfter: 5})
		return
	}
	out := PipelineList{Pipelines: []Pipeline{}}
	for _, item := range list.Items {
		var lp v1alpha1.LogPipeline
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &lp); err != nil {
			// An object the API server accepted but this version cannot read: show its name
			// rather than hide it.
			out.Pipelines = append(out.Pipelines, Pipeline{Name: item.GetName(), Generation: item.GetGeneration(),
				Conditions: []metav1.Condition{{Type: "Readable", Status: metav1.ConditionFalse, Reason: "DecodeFailed", Message: err.Error()}}})
			continue
		}
		p := Pipeline{Name: lp.Name, Generation: lp.Generation, ObservedGeneration: lp.Status.ObservedGeneration,
			Suffix: lp.Spec.Output.Suffix, Conditions: lp.Status.Conditions, Counters: lp.Status.Counters}
		if p.Conditions == nil {
			p.Conditions = []metav1.Condition{}
		}
		if a := lp.Status.Accepted; a != nil {
			gen := a.Generation
			p.AcceptedGeneration = &gen
		}
		out.Pipelines = append(out.Pipelines, p)
	}
	slices.SortFunc(out.Pipelines, func(a, b Pipeline) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(q, http.StatusOK, out)
}
