package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/kubeauth"
	"github.com/logrouter/logrouter/api/token"
)

// fakeKube answers TokenReview for "kube-alice" (group team-a) and "kube-bob" (group team-b),
// and SubjectAccessReview by group: team-X may get logs.logrouter.io in namespace team-X.
func fakeKube() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rev := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		switch rev.Spec.Token {
		case "kube-alice":
			rev.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team-a:reader", Groups: []string{"team-a"}}}
		case "kube-bob":
			rev.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "bob", Groups: []string{"team-b"}}}
		default:
			rev.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, rev, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rev := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		ra := rev.Spec.ResourceAttributes
		for _, g := range rev.Spec.Groups {
			if ra != nil && ra.Group == kubeauth.Group && ra.Resource == kubeauth.Resource && ra.Verb == kubeauth.Verb && ra.Namespace == g {
				rev.Status.Allowed = true
			}
		}
		return true, rev, nil
	})
	return cs
}

// raw sends one request byte for byte (no client normalization) and returns the response.
func raw(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp
}

// TestGatewaySecurity sends requests that must all be refused, each with its status and
// problem code, over real HTTP.
func TestGatewaySecurity(t *testing.T) {
	e := startGateway(t, 1, withKube(fakeKube()))
	e.createTopic("logs.team-a", 1)
	e.createTopic("logs.team-b", 1)
	e.produce(seqLines("team-a", 0, 5, 1)...)
	e.produce(seqLines("team-b", 0, 5, 1)...)
	tokA, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	tokB, _ := e.token(token.Spec{Namespaces: []string{"team-b"}})
	tokAdmin, _ := e.token(token.Spec{Admin: true})
	_, revRec := e.token(token.Spec{Namespaces: []string{"team-a"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tokRevoked := ""
	{
		secret, rec, err := token.Create(ctx, e.kcl, token.DefaultTopic, token.Spec{Namespaces: []string{"team-a"}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokRevoked, revRec = secret, rec
		e.waitToken(secret)
		if _, err := token.Revoke(ctx, e.kcl, token.DefaultTopic, revRec, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// An expired token: created 2 h ago with a 1 h lifetime.
	tokExpired, _, err := token.Create(ctx, e.kcl, token.DefaultTopic, token.Spec{Namespaces: []string{"team-a"}, TTL: time.Hour}, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the gateway has applied both (revocation and expiry are enforced).
	for _, tc := range []struct{ tok, code string }{{tokRevoked, "token_revoked"}, {tokExpired, "token_expired"}} {
		deadline := time.Now().Add(10 * time.Second)
		for problemCode(t, e.get("/v1/namespaces/team-a/logs", tc.tok)) != tc.code {
			if time.Now().After(deadline) {
				t.Fatalf("token never became %s", tc.code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	unknown := "lrt_0123456789abcdef_" + tokA[len(tokA)-43:]
	bCursor := cursor.Cursor{TopicHash: cursor.TopicHash("logs.team-b"), Offsets: []int64{0}}.String()
	aheadCursor := cursor.Cursor{TopicHash: cursor.TopicHash("logs.team-a"), Offsets: []int64{1 << 30}}.String()
	toks := map[string]string{"A": tokA, "B": tokB, "ADMIN": tokAdmin, "REVOKED": tokRevoked, "EXPIRED": tokExpired, "UNKNOWN": unknown}

	const logsA = "/v1/namespaces/team-a/logs"
	tests := []struct {
		name   string
		method string
		path   string
		auth   string   // key of toks, or a literal credential when prefixed with "="
		hdrs   []string // extra "Name: value" lines
		body   string
		status int
		code   string // "" = do not check
		param  string // "" = do not check
		// challenge must appear in WWW-Authenticate (401s must always carry a Bearer one)
		challenge string
	}{
		// Authentication.
		{name: "no credentials", path: logsA, status: 401, code: "unauthenticated"},
		{name: "expired token", path: logsA, auth: "EXPIRED", status: 401, code: "token_expired"},
		{name: "revoked token", path: logsA, auth: "REVOKED", status: 401, code: "token_revoked"},
		{name: "unknown token id", path: logsA, auth: "UNKNOWN", status: 401, code: "unauthenticated"},
		{name: "wrong secret", path: logsA, auth: "=" + tokA[:len(tokA)-43] + tokB[len(tokB)-43:], status: 401, code: "unauthenticated"},
		{name: "truncated token", path: logsA, auth: "=" + tokA[:len(tokA)-1], status: 401, code: "unauthenticated"},
		{name: "kube token unknown", path: logsA, auth: "=not-a-kube-token", status: 401, code: "unauthenticated"},
		// RFC 6750 3.1: another scheme is answered like no credentials, with the Bearer challenge.
		{name: "basic auth", path: logsA, hdrs: []string{"Authorization: Basic dXNlcjpwYXNz"}, status: 401, code: "unauthenticated"},
		{name: "token without scheme", path: logsA, hdrs: []string{"Authorization: " + tokA}, status: 401, code: "unauthenticated"},
		// A malformed Bearer header is invalid_request: 400 with the challenge and its error code.
		{name: "two authorization headers", path: logsA, hdrs: []string{"Authorization: Bearer " + tokA, "Authorization: Bearer " + tokB}, status: 400, code: "bad_request", challenge: `error="invalid_request"`},
		{name: "two tokens in one header", path: logsA, hdrs: []string{"Authorization: Bearer " + tokA + ", Bearer " + tokB}, status: 400, code: "bad_request", challenge: `error="invalid_request"`},
		{name: "scheme without token", path: logsA, hdrs: []string{"Authorization: Bearer"}, status: 400, code: "bad_request", challenge: `error="invalid_request"`},
		{name: "oversized authorization", path: logsA, hdrs: []string{"Authorization: Bearer " + strings.Repeat("a", 9000)}, status: 400, code: "bad_request", challenge: `error="invalid_request"`},
		{name: "oversized header block", path: logsA, auth: "A", hdrs: []string{"X-Pad: " + strings.Repeat("a", 40000)}, status: 431, code: "header_too_large"},
		{name: "header block over the limit", path: logsA, auth: "A", hdrs: []string{"X-Pad: " + strings.Repeat("a", 17000)}, status: 431, code: "header_too_large"},
		{name: "control byte in header", path: logsA, hdrs: []string{"Authorization: Bearer a\x01b"}, status: 400, code: "bad_request"},
		{name: "token in query access_token", path: logsA + "?access_token=" + url.QueryEscape(tokA), status: 400, code: "token_in_query"},
		{name: "token in query token", path: logsA + "?token=" + url.QueryEscape(tokA), status: 400, code: "token_in_query"},
		{name: "token in query with header", path: logsA + "?access_token=x", auth: "A", status: 400, code: "token_in_query"},
		// Authorization: another team's namespace.
		{name: "other team's namespace", path: "/v1/namespaces/team-b/logs", auth: "A", status: 403, code: "forbidden"},
		{name: "other team's archive", path: "/v1/namespaces/team-b/archive?since=2026-01-01T00:00:00Z", auth: "A", status: 403, code: "forbidden"},
		{name: "other team's stream", path: "/v1/namespaces/team-a/logs", auth: "B", hdrs: []string{"Accept: text/event-stream"}, status: 403, code: "forbidden"},
		{name: "admin token reads no logs", path: logsA, auth: "ADMIN", status: 403, code: "forbidden"},
		{name: "kube identity other namespace", path: "/v1/namespaces/team-b/logs", auth: "=kube-alice", status: 403, code: "forbidden"},
		{name: "kube identity other namespace 2", path: logsA, auth: "=kube-bob", status: 403, code: "forbidden"},
		{name: "unknown namespace", path: "/v1/namespaces/team-c/logs", auth: "A", status: 403, code: "forbidden"},
		// Namespace names.
		{name: "dot dot", path: "/v1/namespaces/../logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "escaped dot dot", path: "/v1/namespaces/%2e%2e/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "escaped slash", path: "/v1/namespaces/team-a%2fteam-b/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "escaped slash upper", path: "/v1/namespaces/team-b%2F/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "traversal segments", path: "/v1/namespaces/team-a/../team-b/logs", auth: "A", status: 404, code: "not_found"},
		{name: "uppercase", path: "/v1/namespaces/Team-A/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "64 characters", path: "/v1/namespaces/" + strings.Repeat("a", 64) + "/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "253 characters", path: "/v1/namespaces/" + strings.Repeat("a", 253) + "/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "underscore", path: "/v1/namespaces/team_a/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "dot", path: "/v1/namespaces/team.a/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "leading dash", path: "/v1/namespaces/-team/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "escaped nul", path: "/v1/namespaces/team-a%00/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "escaped space", path: "/v1/namespaces/team%20a/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "unicode", path: "/v1/namespaces/t%C3%A9am/logs", auth: "A", status: 400, code: "invalid_namespace"},
		{name: "bad escape in namespace", path: "/v1/namespaces/ns%zz/logs", auth: "A", status: 400, code: "bad_request"},
		{name: "truncated escape in path", path: "/v1/namespaces/team-a/logs%2", auth: "A", status: 400, code: "bad_request"},
		{name: "empty namespace", path: "/v1/namespaces//logs", auth: "A", status: 404, code: "not_found"},
		{name: "trailing slash", path: logsA + "/", auth: "A", status: 404, code: "not_found"},
		{name: "unknown resource", path: "/v1/namespaces/team-a/secrets", auth: "A", status: 404, code: "not_found"},
		// Query parameters.
		{name: "regex bomb nested", path: logsA + "?grep=" + url.QueryEscape("((a{100}){100}){100}"), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "regex bomb repeat", path: logsA + "?grep=" + url.QueryEscape("(a{1000}){1000}"), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "regex bomb wide", path: logsA + "?grep=" + url.QueryEscape(`(\pL{1000}){3}`), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "regex too long", path: logsA + "?grep=" + strings.Repeat("a", 300), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "regex invalid", path: logsA + "?grep=" + url.QueryEscape("(unclosed"), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "regex backreference", path: logsA + "?grep=" + url.QueryEscape(`(a)\1`), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "client-chosen topic", path: logsA + "?topic=logs.team-b", auth: "A", status: 400, code: "unknown_parameter"},
		{name: "client-chosen group", path: logsA + "?group=team-b", auth: "A", status: 400, code: "unknown_parameter"},
		{name: "client-chosen namespace", path: logsA + "?namespace=team-b", auth: "A", status: 400, code: "unknown_parameter"},
		{name: "repeated parameter", path: logsA + "?pod=a&pod=b", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "bad escape", path: logsA + "?pod=%zz", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "pod traversal", path: logsA + "?pod=..%2fx", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "limit zero", path: logsA + "?limit=0", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "limit huge", path: logsA + "?limit=1000000", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "query too long", path: logsA + "?pod=" + strings.Repeat("a", 9000), auth: "A", status: 400, code: "invalid_parameter"},
		{name: "from neither time nor cursor", path: logsA + "?from=yesterday-ish", auth: "A", status: 400, code: "invalid_parameter", param: "from"},
		{name: "from garbage", path: logsA + "?from=not-a-cursor", auth: "A", status: 400, code: "invalid_parameter", param: "from"},
		{name: "garbage cursor", path: logsA + "?cursor=not-a-cursor", auth: "A", status: 400, code: "invalid_cursor", param: "cursor"},
		{name: "other namespace's cursor", path: logsA + "?cursor=" + bCursor, auth: "A", status: 400, code: "invalid_cursor", param: "cursor"},
		{name: "other namespace's cursor in from", path: logsA + "?from=" + bCursor, auth: "A", status: 400, code: "invalid_cursor", param: "from"},
		// The topic hash in a cursor is not a secret (anyone can compute it): a cursor forged for
		// team-b's topic, sent to team-b's path, is refused by the path's authorization.
		{name: "forged cursor on the other namespace", path: "/v1/namespaces/team-b/logs?cursor=" + bCursor, auth: "A", status: 403, code: "forbidden"},
		{name: "forged cursor stream on the other namespace", path: "/v1/namespaces/team-b/logs", auth: "A", hdrs: []string{"Accept: text/event-stream", "Last-Event-ID: " + bCursor}, status: 403, code: "forbidden"},
		{name: "cursor ahead of topic", path: logsA + "?cursor=" + aheadCursor, auth: "A", status: 400, code: "invalid_cursor"},
		{name: "garbage Last-Event-ID", path: logsA, auth: "A", hdrs: []string{"Accept: text/event-stream", "Last-Event-ID: ../../etc"}, status: 400, code: "invalid_cursor"},
		{name: "other namespace's Last-Event-ID", path: logsA, auth: "A", hdrs: []string{"Accept: text/event-stream", "Last-Event-ID: " + bCursor}, status: 400, code: "invalid_cursor", param: "Last-Event-ID"},
		{name: "archive without since", path: "/v1/namespaces/team-a/archive", auth: "A", status: 400, code: "invalid_parameter"},
		{name: "archive reversed range", path: "/v1/namespaces/team-a/archive?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", auth: "A", status: 400, code: "invalid_parameter"},
		// Methods, bodies, media types.
		{name: "POST logs", method: "POST", path: logsA, auth: "A", status: 405, code: "method_not_allowed"},
		{name: "DELETE logs", method: "DELETE", path: logsA, auth: "A", status: 405, code: "method_not_allowed"},
		{name: "GET with body", path: logsA, auth: "A", hdrs: []string{"Content-Type: text/plain"}, body: "hello", status: 400, code: "bad_request"},
		{name: "not acceptable", path: logsA, auth: "A", hdrs: []string{"Accept: text/html"}, status: 406, code: "not_acceptable"},
		// Token management.
		{name: "tokens without credentials", path: "/v1/tokens", status: 401, code: "unauthenticated"},
		{name: "tokens with a team token", path: "/v1/tokens", auth: "A", status: 403, code: "forbidden"},
		{name: "tokens with a kube identity", path: "/v1/tokens", auth: "=kube-alice", status: 403, code: "forbidden"},
		{name: "create token unknown field", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: application/json"}, body: `{"namespaces":["team-a"],"superuser":true}`, status: 400, code: "bad_request"},
		{name: "create token invalid namespace", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: application/json"}, body: `{"namespaces":["../team-a"]}`, status: 400, code: "bad_request"},
		{name: "create token bad ttl", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: application/json"}, body: `{"namespaces":["team-a"],"ttl":"forever"}`, status: 400, code: "bad_request"},
		{name: "create token two objects", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: application/json"}, body: `{"namespaces":["team-a"]}{}`, status: 400, code: "bad_request"},
		{name: "create token text/plain", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: text/plain"}, body: `{}`, status: 415, code: "unsupported_media_type"},
		{name: "create token oversized body", method: "POST", path: "/v1/tokens", auth: "ADMIN", hdrs: []string{"Content-Type: application/json"}, body: `{"name":"` + strings.Repeat("a", 70000) + `"}`, status: 413, code: "body_too_large"},
		{name: "revoke malformed id", method: "DELETE", path: "/v1/tokens/..%2f..", auth: "ADMIN", status: 404, code: "not_found"},
		{name: "revoke unknown id", method: "DELETE", path: "/v1/tokens/0123456789abcdef", auth: "ADMIN", status: 404, code: "not_found"},
		{name: "revoke by a team token", method: "DELETE", path: "/v1/tokens/0123456789abcdef", auth: "A", status: 403, code: "forbidden"},
		{name: "token in query on tokens", path: "/v1/tokens?access_token=" + url.QueryEscape(tokAdmin), status: 400, code: "token_in_query"},
		{name: "parameters on tokens", path: "/v1/tokens?namespace=team-a", auth: "ADMIN", status: 400, code: "unknown_parameter"},
		{name: "PUT tokens", method: "PUT", path: "/v1/tokens", auth: "ADMIN", status: 405, code: "method_not_allowed"},
	}
	if len(tests) < 50 {
		t.Fatalf("only %d cases", len(tests))
	}
	addr := e.gw.Addr().String()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, tt.path, addr)
			switch {
			case strings.HasPrefix(tt.auth, "="):
				fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tt.auth[1:])
			case tt.auth != "":
				fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", toks[tt.auth])
			}
			for _, h := range tt.hdrs {
				b.WriteString(h + "\r\n")
			}
			if tt.body != "" {
				fmt.Fprintf(&b, "Content-Length: %d\r\n", len(tt.body))
			}
			b.WriteString("\r\n" + tt.body)
			resp := raw(t, addr, b.String())
			if resp.StatusCode != tt.status {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if got, param := problemParam(t, resp); got != tt.code || tt.param != "" && param != tt.param {
					t.Fatalf("code %q param %q, want %q %q", got, param, tt.code, tt.param)
				}
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if tt.status == 401 && !strings.HasPrefix(wa, "Bearer ") {
				t.Fatalf("401 with WWW-Authenticate %q, want a Bearer challenge", wa)
			}
			if tt.challenge != "" && (!strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, tt.challenge)) {
				t.Fatalf("WWW-Authenticate %q, want a Bearer challenge with %s", wa, tt.challenge)
			}
		})
	}
	// The refusals above must not have been helped by a broken happy path: the same
	// credentials do work where they are allowed.
	for _, ok := range []struct{ path, auth string }{
		{logsA, tokA}, {"/v1/namespaces/team-b/logs", tokB}, {logsA, "kube-alice"}, {"/v1/namespaces/team-b/logs", "kube-bob"}, {"/v1/tokens", tokAdmin},
	} {
		resp := e.get(ok.path, ok.auth)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with %.12s...: status %d (%s)", ok.path, ok.auth, resp.StatusCode, problemCode(t, resp))
		}
		resp.Body.Close()
	}
}

// problemParam decodes a problem response's code and param.
func problemParam(t testing.TB, resp *http.Response) (code, param string) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Sprintf("(content-type %q: %s)", ct, b), ""
	}
	var p struct {
		Code   string `json:"code"`
		Param  string `json:"param"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Status != resp.StatusCode || p.Detail == "" {
		return fmt.Sprintf("(bad problem %s)", b), ""
	}
	return p.Code, p.Param
}

// TestGatewayLimits checks the per-token concurrent stream limit and the byte budget: both
// refuse with 429 and Retry-After, per token.
func TestGatewayLimits(t *testing.T) {
	e := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) {
		c.MaxStreamsPerToken = 2
		c.BytesPerSecond = 20000
	})
	e.createTopic("logs.team-a", 1)
	tokA, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	tokA2, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	var open []*http.Response
	for i := 0; i < 2; i++ {
		resp := e.get("/v1/namespaces/team-a/logs", tokA, "Accept", "text/event-stream")
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		open = append(open, resp)
	}
	resp := e.get("/v1/namespaces/team-a/logs", tokA, "Accept", "text/event-stream")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := problemCode(t, resp); code != "too_many_streams" {
		t.Fatalf("code %q", code)
	}
	// Another token is not affected.
	resp = e.get("/v1/namespaces/team-a/logs?limit=1", tokA2)
	if resp.StatusCode != 200 {
		t.Fatalf("other token: %d", resp.StatusCode)
	}
	resp.Body.Close()
	for _, r := range open {
		r.Body.Close()
	}
	// Byte budget: pages of ~100 KB against a 20 KB/s budget put the token in debt.
	lines := seqLines("team-a", 0, 400, 1)
	for i := range lines {
		lines[i].msg += strings.Repeat("x", 200)
	}
	e.produce(lines...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := e.get("/v1/namespaces/team-a/logs?limit=400&from=earliest", tokA2)
		if resp.StatusCode == 429 {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			if code := problemCode(t, resp); code != "rate_limited" {
				t.Fatalf("code %q", code)
			}
			break
		}
		var p struct{ Records []json.RawMessage }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("byte budget never enforced")
		}
	}
}

// TestGatewayKubeRecheck opens a stream with a Kubernetes identity, then takes its RBAC away:
// the stream ends with an "unauthorized" end event once the cached allow expires.
func TestGatewayKubeRecheck(t *testing.T) {
	var denied atomic.Bool
	cs := fakeKube()
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !denied.Load() {
			return false, nil, nil // fall through to fakeKube's answer
		}
		rev := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		rev.Status.Allowed = false
		return true, rev, nil
	})
	e := startGateway(t, 1, withKube(cs), func(c *api.Config, _ *[]api.Option) { c.KubeCacheTTL = 300 * time.Millisecond })
	e.createTopic("logs.team-a", 1)
	resp := e.get("/v1/namespaces/team-a/logs", "kube-alice", "Accept", "text/event-stream")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sr := newSSE(resp.Body)
	heartbeats := 0
	for heartbeats < 3 { // idle stream: heartbeats keep coming
		ev, err := sr.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.event == "" && ev.data == "" && ev.id != "" {
			heartbeats++
		}
	}
	denied.Store(true)
	var last sseEvent
	for {
		ev, err := sr.next()
		if err != nil {
			break
		}
		last = ev
	}
	if last.event != "end" || !strings.Contains(last.data, `"unauthorized"`) || !strings.Contains(last.data, `"forbidden"`) {
		t.Fatalf("last event %+v", last)
	}
}

// TestGatewayReadHeaderTimeout: a client that sends its headers too slowly is disconnected.
func TestGatewayReadHeaderTimeout(t *testing.T) {
	e := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v1/namespaces/team-a/logs HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c) // returns when the server closes the connection
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("connection held for %v", el)
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") && !strings.HasPrefix(string(b), "HTTP/1.1 400") {
		t.Fatalf("unexpected response %q", b)
	}
}

// TestGatewayHeaderLimit sends header blocks around the documented 16 KiB limit over a real
// TCP connection: exactly at the limit is served, one byte over gets 431 as problem+json, and
// so do blocks in net/http's 4 KiB of slack and beyond it.
func TestGatewayHeaderLimit(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	e.produce(seqLines("team-a", 0, 1, 1)...)
	tok, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	limit := api.DefaultConfig().MaxHeaderBytes
	if limit != 16<<10 {
		t.Fatalf("default --max-header-bytes is %d, docs/api.md says 16 KiB", limit)
	}
	addr := e.gw.Addr().String()
	// request returns a request whose line and headers (blank line included) are size bytes.
	request := func(size int) string {
		head := fmt.Sprintf("GET /v1/namespaces/team-a/logs?limit=1 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nAuthorization: Bearer %s\r\nX-Big: ", addr, tok)
		pad := size - len(head) - len("\r\n\r\n")
		if pad < 1 {
			t.Fatalf("size %d too small", size)
		}
		r := head + strings.Repeat("b", pad) + "\r\n\r\n"
		if len(r) != size {
			t.Fatalf("built %d bytes, want %d", len(r), size)
		}
		return r
	}
	for _, tt := range []struct {
		size   int
		status int
	}{
		{limit - 1, 200},
		{limit, 200},
		{limit + 1, 431},
		{20000, 431},            // inside net/http's slack: the example
		{limit + 4096 + 1, 431}, // net/http's own limit
		{limit + 8192, 431},
	} {
		resp := raw(t, addr, request(tt.size))
		if resp.StatusCode != tt.status {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%d bytes: status %d, want %d: %s", tt.size, resp.StatusCode, tt.status, b)
		}
		if tt.status == 200 {
			resp.Body.Close()
			continue
		}
		if code := problemCode(t, resp); code != "header_too_large" {
			t.Fatalf("%d bytes: code %q, want header_too_large", tt.size, code)
		}
	}
}
