package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/logrouter/logrouter/api/authz"
	"github.com/logrouter/logrouter/api/kubeauth"
	"github.com/logrouter/logrouter/api/limits"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/internal/topic"
)

// request is one request's audit state.
type request struct {
	w         *auditWriter
	r         *http.Request
	endpoint  string
	namespace string
	// topic is what the request reads: the namespace's topic or, with `suffix`, its suffix topic.
	topic, suffix string
	principal     *authz.Principal
	code          string
}

// auditWriter counts what a handler sends.
type auditWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (a *auditWriter) WriteHeader(s int) {
	if a.status == 0 {
		a.status = s
	}
	a.ResponseWriter.WriteHeader(s)
}

func (a *auditWriter) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(b)
	a.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// fail writes a problem response.
func (q *request) fail(e *problem.Error) {
	q.code = e.Code
	problem.Write(q.w, q.r.URL.EscapedPath(), e)
}

// ServeHTTP routes by hand on the escaped path: no path cleaning, no redirects, and a namespace
// segment that contains an escape is refused rather than decoded.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := &request{w: &auditWriter{ResponseWriter: w}, r: r, endpoint: "other"}
	defer func() {
		status := q.w.status
		if status == 0 {
			status = http.StatusOK
		}
		principal := ""
		if q.principal != nil {
			principal = q.principal.ID
		}
		g.m.requests.WithLabelValues(q.endpoint, strconv.Itoa(status), q.code).Inc()
		g.m.duration.WithLabelValues(q.endpoint).Observe(time.Since(start).Seconds())
		g.m.bytesSent.Add(float64(q.w.bytes))
		g.log.Info("audit",
			"principal", principal, "namespace", q.namespace, "endpoint", q.endpoint,
			"method", r.Method, "status", status, "code", q.code, "bytes", q.w.bytes,
			"duration_ms", time.Since(start).Milliseconds(), "remote", remoteIP(r))
	}()
	if n := headerBytes(r); n > g.cfg.MaxHeaderBytes {
		q.fail(problem.New(http.StatusRequestHeaderFieldsTooLarge, problem.CodeHeaderTooLarge,
			fmt.Sprintf("the request line and headers are %d bytes, at most %d allowed (--max-header-bytes)", n, g.cfg.MaxHeaderBytes)))
		return
	}
	if p := r.URL.EscapedPath(); p == "/ui" || strings.HasPrefix(p, ui.Prefix) {
		q.endpoint = "ui"
		g.serveConsole(q)
		return
	}
	segs, ok := splitPath(r.URL.EscapedPath())
	if !ok {
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such endpoint; see /openapi.json"))
		return
	}
	switch {
	case len(segs) == 1 && segs[0] == "healthz":
		q.endpoint = "healthz"
		_, _ = q.w.Write([]byte("ok\n"))
	case len(segs) == 1 && segs[0] == "readyz":
		q.endpoint = "readyz"
		g.serveReady(q)
	case len(segs) == 1 && segs[0] == "metrics":
		q.endpoint = "metrics"
		g.serveMetrics(q)
	case len(segs) == 1 && segs[0] == "openapi.json":
		q.endpoint = "openapi"
		q.w.Header().Set("Content-Type", "application/json")
		_, _ = q.w.Write(openAPI)
	case len(segs) == 2 && segs[0] == "v1" && segs[1] == "namespaces":
		q.endpoint = "namespaces"
		g.serveNamespaces(q)
	case len(segs) == 4 && segs[0] == "v1" && segs[1] == "namespaces" && segs[3] == "pipelines":
		q.endpoint = "pipelines"
		g.servePipelines(q, segs[2])
	case len(segs) == 4 && segs[0] == "v1" && segs[1] == "namespaces" && (segs[3] == "logs" || segs[3] == "archive"):
		q.endpoint = segs[3]
		g.serveNamespace(q, segs[2])
	case len(segs) >= 2 && len(segs) <= 3 && segs[0] == "v1" && segs[1] == "tokens":
		q.endpoint = "tokens"
		id := ""
		if len(segs) == 3 {
			id = segs[2]
		}
		g.serveTokens(q, id)
	default:
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such endpoint; see /openapi.json"))
	}
}

func remoteIP(r *http.Request) string { return hostOf(r.RemoteAddr) }

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// serveNamespace checks, in order: namespace (before anything else), method, body, query,
// Accept, credentials, authorization, limits; then hands over to the endpoint.
func (g *Gateway) serveNamespace(q *request, ns string) {
	if !pathNamespace(q, ns) {
		return
	}
	if q.r.Method != http.MethodGet {
		q.w.Header().Set("Allow", http.MethodGet)
		q.fail(problem.New(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "only GET is allowed here"))
		return
	}
	if q.r.ContentLength > 0 || len(q.r.TransferEncoding) > 0 {
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, "GET requests take no body"))
		return
	}
	var logs params.Logs
	var arch params.Archive
	var err error
	if q.endpoint == "logs" {
		logs, err = params.ParseLogs(q.r.URL.RawQuery)
	} else {
		arch, err = params.ParseArchive(q.r.URL.RawQuery, g.now())
	}
	if err != nil {
		q.fail(paramProblem(err))
		return
	}
	// The topic comes from the path's namespace and a validated suffix (one label, no dots):
	// it can only be this namespace's topic or one of its suffix topics.
	q.suffix = logs.Suffix + arch.Suffix // at most one of them is set
	q.topic = topic.WithSuffix(g.cfg.Topic(ns), q.suffix)
	var mode string
	if q.endpoint == "logs" {
		if mode, err = negotiate(q.r.Header.Values("Accept"), true); err != nil {
			q.fail(problem.New(http.StatusNotAcceptable, problem.CodeNotAcceptable, err.Error()))
			return
		}
	} else if _, err = negotiate(q.r.Header.Values("Accept"), false); err != nil {
		q.fail(problem.New(http.StatusNotAcceptable, problem.CodeNotAcceptable, err.Error()))
		return
	}
	if !g.access(q, ns) {
		return
	}
	lease := g.lease(q)
	if lease == nil {
		return
	}
	defer lease.Release()
	if q.endpoint == "archive" {
		g.serveArchive(q, lease, arch)
		return
	}
	if mode == modePage {
		g.servePage(q, lease, logs)
		return
	}
	g.serveStream(q, lease, logs, mode)
}

// pathNamespace validates the path's namespace, before anything else is looked at, and records
// it for the audit log; false: the refusal is written.
func pathNamespace(q *request, ns string) bool {
	if err := params.Namespace(ns); err != nil {
		q.fail(problem.New(http.StatusBadRequest, problem.CodeInvalidNamespace, err.Error()+"; a namespace is a Kubernetes name: lowercase letters, digits and '-', at most 63 characters"))
		return false
	}
	q.namespace = ns
	return true
}

// access authenticates the caller and checks that it may read namespace ns; false: the
// refusal is written.
func (g *Gateway) access(q *request, ns string) bool {
	if !g.authenticate(q) {
		return false
	}
	if err := g.auth.Authorize(q.r.Context(), q.principal, ns); err != nil {
		q.fail(authProblem(err))
		return false
	}
	return true
}

// lease takes one of the caller's concurrent-request slots; nil: the refusal is written.
func (g *Gateway) lease(q *request) *limits.Lease {
	lease, err := g.limiter.Acquire(q.principal.ID)
	if err != nil {
		q.fail(limitProblem(err))
		return nil
	}
	return lease
}

// authenticate sets q.principal or writes the refusal.
func (g *Gateway) authenticate(q *request) bool {
	select {
	case <-g.store.Ready():
	default:
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "the token store is still loading; retry shortly", RetryAfter: 1})
		return false
	}
	authenticate := g.auth.AuthenticateRead
	if q.endpoint == "tokens" {
		authenticate = g.auth.Authenticate // never the identity proxy's header: see authz
	}
	p, err := authenticate(q.r.Context(), q.r.Header)
	if err != nil {
		q.fail(authProblem(err))
		return false
	}
	q.principal = p
	return true
}

func paramProblem(err error) *problem.Error {
	pe := params.First(err)
	if pe == nil {
		return problem.New(http.StatusBadRequest, problem.CodeInvalidParameter, err.Error())
	}
	code := problem.CodeInvalidParameter
	switch pe.Code {
	case params.CodeUnknown:
		code = problem.CodeUnknownParameter
	case params.CodeTokenInQuery:
		code = problem.CodeTokenInQuery
	}
	return &problem.Error{Status: http.StatusBadRequest, Code: code, Detail: err.Error(), Param: pe.Param}
}

func authProblem(err error) *problem.Error {
	switch {
	case errors.Is(err, token.ErrExpired):
		return &problem.Error{Status: http.StatusUnauthorized, Code: problem.CodeTokenExpired, Detail: "the token has expired; create a new one with `logrouter tokens create`", BearerError: "invalid_token"}
	case errors.Is(err, token.ErrRevoked):
		return &problem.Error{Status: http.StatusUnauthorized, Code: problem.CodeTokenRevoked, Detail: "the token has been revoked", BearerError: "invalid_token"}
	case errors.Is(err, authz.ErrNoCredentials):
		return problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated, "no credentials: send `Authorization: Bearer <token>`")
	case errors.Is(err, authz.ErrUnsupportedScheme):
		// RFC 6750 3.1: an unsupported scheme is answered like missing credentials.
		return &problem.Error{Status: http.StatusUnauthorized, Code: problem.CodeUnauthenticated, Detail: "only the Bearer scheme is accepted: send `Authorization: Bearer <token>`", Param: "Authorization"}
	case errors.Is(err, authz.ErrMalformedHeader):
		return &problem.Error{Status: http.StatusBadRequest, Code: problem.CodeBadRequest, Detail: err.Error() + "; send exactly one `Authorization: Bearer <token>` header", Param: "Authorization", BearerError: "invalid_request"}
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrUnknown), errors.Is(err, kubeauth.ErrUnauthenticated), errors.Is(err, authz.ErrKubeAuthDisabled):
		return &problem.Error{Status: http.StatusUnauthorized, Code: problem.CodeUnauthenticated, Detail: "the bearer token is not valid", BearerError: "invalid_token"}
	case errors.Is(err, token.ErrStoreUnavailable):
		return &problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "the token store could not confirm its view of the token topic recently, so no logrouter token is accepted; retry shortly", RetryAfter: 2}
	case errors.Is(err, authz.ErrForbidden):
		return problem.New(http.StatusForbidden, problem.CodeForbidden, "your credentials do not grant access to this namespace")
	case errors.Is(err, authz.ErrNotAdmin):
		return problem.New(http.StatusForbidden, problem.CodeForbidden, "token management needs an admin token (logrouter tokens create --admin)")
	}
	return &problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "could not check credentials (Kubernetes API unavailable); retry shortly", RetryAfter: 2}
}

func limitProblem(err error) *problem.Error {
	var ref *limits.Refusal
	if !errors.As(err, &ref) {
		return problem.New(http.StatusInternalServerError, problem.CodeInternal, "limiter failure")
	}
	if errors.Is(err, limits.ErrTooManyStreams) {
		return &problem.Error{Status: http.StatusTooManyRequests, Code: problem.CodeTooManyStreams, Detail: "too many concurrent requests for these credentials; close a stream or wait", RetryAfter: ref.RetryAfter}
	}
	return &problem.Error{Status: http.StatusTooManyRequests, Code: problem.CodeRateLimited, Detail: "byte budget for these credentials is spent; retry after the given seconds", RetryAfter: ref.RetryAfter}
}
