package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/logrouter/logrouter/api/authz"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/api/token"
)

// createTokenRequest is the body of POST /v1/tokens.
type createTokenRequest struct {
	Name       string   `json:"name"`
	Namespaces []string `json:"namespaces"`
	Admin      bool     `json:"admin"`
	TTL        string   `json:"ttl"` // "90d", "36h"; "" = 90d; "0" = no expiry
}

// DefaultTTL is the lifetime of tokens created without one.
const DefaultTTL = "90d"

// serveTokens is token management for admin tokens: POST /v1/tokens, GET /v1/tokens,
// GET /v1/tokens/{id}, DELETE /v1/tokens/{id}.
func (g *Gateway) serveTokens(q *request, id string) {
	if id != "" && !token.ValidID(id) {
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such token (a token ID is 16 hex digits)"))
		return
	}
	allowed := "GET, POST"
	if id != "" {
		allowed = "GET, DELETE"
	}
	switch {
	case id == "" && (q.r.Method == http.MethodGet || q.r.Method == http.MethodPost):
	case id != "" && (q.r.Method == http.MethodGet || q.r.Method == http.MethodDelete):
	default:
		q.w.Header().Set("Allow", allowed)
		q.fail(problem.New(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "allowed methods: "+allowed))
		return
	}
	if err := params.None(q.r.URL.RawQuery); err != nil {
		q.fail(paramProblem(err))
		return
	}
	if q.r.Method != http.MethodPost && (q.r.ContentLength > 0 || len(q.r.TransferEncoding) > 0) {
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, q.r.Method+" requests take no body"))
		return
	}
	if !g.authenticate(q) {
		return
	}
	if err := authz.AuthorizeAdmin(q.principal); err != nil {
		q.fail(authProblem(err))
		return
	}
	ctx, cancel := context.WithTimeout(q.r.Context(), 10*time.Second)
	defer cancel()
	switch {
	case q.r.Method == http.MethodGet && id == "":
		writeJSON(q, http.StatusOK, map[string]any{"tokens": g.store.List()})
	case q.r.Method == http.MethodGet:
		rec, ok := g.store.Get(id)
		if !ok {
			q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such token"))
			return
		}
		writeJSON(q, http.StatusOK, rec.Public())
	case q.r.Method == http.MethodDelete:
		rec, ok := g.store.Get(id)
		if !ok {
			q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no such token"))
			return
		}
		rec, err := token.Revoke(ctx, g.admin, g.cfg.TokenTopic, rec, g.now())
		if err == nil {
			// Read our own write: once this returns, this replica refuses the token.
			err = g.store.WaitFor(ctx, id, func(r *token.Record) bool { return r != nil && !r.RevokedAt.IsZero() })
		}
		if err != nil {
			g.log.Error("revoke token", "id", id, "err", err)
			q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "could not store the revocation; retry", RetryAfter: 2})
			return
		}
		g.log.Info("token revoked", "id", id, "by", q.principal.ID)
		writeJSON(q, http.StatusOK, rec.Public())
	default:
		g.createToken(ctx, q)
	}
}

func (g *Gateway) createToken(ctx context.Context, q *request) {
	mt, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		q.fail(problem.New(http.StatusUnsupportedMediaType, problem.CodeUnsupportedMedia, "send the body as Content-Type: application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			q.fail(problem.New(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)))
			return
		}
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, "could not read the body"))
		return
	}
	var req createTokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		msg := "body must be one JSON object with name, namespaces, admin, ttl"
		if err != nil {
			msg += ": " + err.Error()
		}
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, msg))
		return
	}
	if req.TTL == "" {
		req.TTL = DefaultTTL
	}
	ttl, err := token.ParseTTL(req.TTL)
	spec := token.Spec{Name: req.Name, Namespaces: req.Namespaces, Admin: req.Admin, TTL: ttl}
	if err = errors.Join(err, spec.Validate(params.Namespace)); err != nil {
		q.fail(problem.New(http.StatusBadRequest, problem.CodeBadRequest, err.Error()))
		return
	}
	secret, rec, err := token.Create(ctx, g.admin, g.cfg.TokenTopic, spec, g.now())
	if err == nil {
		err = g.store.WaitFor(ctx, rec.ID, func(r *token.Record) bool { return r != nil })
	}
	if err != nil {
		g.log.Error("create token", "err", err)
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "could not store the token; retry", RetryAfter: 2})
		return
	}
	g.log.Info("token created", "id", rec.ID, "by", q.principal.ID, "namespaces", rec.Namespaces, "admin", rec.Admin)
	writeJSON(q, http.StatusCreated, map[string]any{"token": secret, "record": rec.Public()})
}

func writeJSON(q *request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		q.fail(problem.New(http.StatusInternalServerError, problem.CodeInternal, "encoding failed"))
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	q.w.WriteHeader(status)
	_, _ = q.w.Write(append(b, '\n'))
}
