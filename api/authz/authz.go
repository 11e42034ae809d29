// Package authz turns a request's Authorization header into a Principal and decides whether it
// may read a namespace. Two kinds of credentials are accepted: logrouter tokens (package token;
// the token lists its namespaces) and Kubernetes tokens (package kubeauth; RBAC on the virtual
// resource decides). The namespace to check always comes from the caller (the URL path), never
// from the credential's holder.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/logrouter/logrouter/api/kubeauth"
	"github.com/logrouter/logrouter/api/token"
)

// MaxAuthorizationBytes bounds the Authorization header (Kubernetes tokens are JWTs of ~1 KB).
const MaxAuthorizationBytes = 8 << 10

// Errors callers branch on (besides the token and kubeauth sentinels, which are wrapped).
var (
	ErrNoCredentials   = errors.New("no credentials: send Authorization: Bearer <token>")
	ErrMalformedHeader = errors.New("malformed Authorization header")
	// ErrUnsupportedScheme: an Authorization header with another scheme (Basic, Digest, ...),
	// which RFC 6750 treats like no credentials.
	ErrUnsupportedScheme = errors.New("the Authorization scheme is not Bearer")
	ErrForbidden         = errors.New("not allowed to read this namespace")
	ErrNotAdmin          = errors.New("token management needs an admin token")
	ErrKubeAuthDisabled  = errors.New("kubernetes tokens are not accepted by this gateway")
)

// Principal is an authenticated caller.
type Principal struct {
	// ID names the caller in audit logs and keys its limits: "token:<id>" or "kube:<username>".
	ID    string
	Admin bool
	rec   *token.Record
	kube  *kubeauth.Identity
}

// Authenticator checks credentials. Kube may be nil (Kubernetes identities disabled).
type Authenticator struct {
	Tokens *token.Store
	Kube   *kubeauth.Reviewer
	Now    func() time.Time
	// ProxyHeader, when set, names a header an identity proxy in front of the gateway fills
	// with the user's bearer token (e.g. X-Forwarded-Access-Token). AuthenticateRead takes it
	// when there is no Authorization header; the token is checked exactly like one sent in
	// Authorization, so the header grants nothing by itself.
	ProxyHeader string
}

// BearerToken extracts the token of an `Authorization: Bearer <token>` header.
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", ErrNoCredentials
	case len(vals) > 1:
		return "", fmt.Errorf("%w: sent %d times", ErrMalformedHeader, len(vals))
	}
	v := vals[0]
	if len(v) > MaxAuthorizationBytes {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrMalformedHeader, MaxAuthorizationBytes)
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrUnsupportedScheme
	}
	if !ok || tok == "" {
		return "", fmt.Errorf("%w: empty token", ErrMalformedHeader)
	}
	// RFC 6750 token68 characters only: no spaces, no control bytes, no second credential.
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return "", fmt.Errorf("%w: invalid character at position %d of the token", ErrMalformedHeader, i)
		}
	}
	return tok, nil
}

// ProxyToken extracts the token an identity proxy put in header name: exactly one value,
// either the bare token or "Bearer <token>", with the same checks as BearerToken.
func ProxyToken(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0:
		return "", ErrNoCredentials
	case len(vals) > 1:
		return "", fmt.Errorf("%w: %s sent %d times", ErrMalformedHeader, name, len(vals))
	}
	v := vals[0]
	if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
		v = rest
	}
	return BearerToken(http.Header{"Authorization": {"Bearer " + v}})
}

// Authenticate identifies the caller of a request from its Authorization header only (token
// management: a proxy that adds credentials to every request would make it a CSRF target).
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (*Principal, error) {
	tok, err := BearerToken(h)
	if err != nil {
		return nil, err
	}
	return a.principal(ctx, tok)
}

// AuthenticateRead identifies the caller of a read request: the Authorization header or, when
// there is none and ProxyHeader is configured, the identity proxy's header.
func (a *Authenticator) AuthenticateRead(ctx context.Context, h http.Header) (*Principal, error) {
	tok, err := BearerToken(h)
	if errors.Is(err, ErrNoCredentials) && a.ProxyHeader != "" {
		tok, err = ProxyToken(h, a.ProxyHeader)
	}
	if err != nil {
		return nil, err
	}
	return a.principal(ctx, tok)
}

func (a *Authenticator) principal(ctx context.Context, tok string) (*Principal, error) {
	if strings.HasPrefix(tok, token.Prefix) {
		rec, err := a.Tokens.Authenticate(tok, a.Now())
		if err != nil {
			return nil, err
		}
		return &Principal{ID: "token:" + rec.ID, Admin: rec.Admin, rec: &rec}, nil
	}
	if a.Kube == nil {
		return nil, ErrKubeAuthDisabled
	}
	id, err := a.Kube.Authenticate(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &Principal{ID: "kube:" + id.Username, kube: &id}, nil
}

// Authorize returns nil if p may read namespace ns.
func (a *Authenticator) Authorize(ctx context.Context, p *Principal, ns string) error {
	switch {
	case p.rec != nil:
		if !p.rec.Allows(ns) {
			return fmt.Errorf("%w: token %s does not grant namespace %q", ErrForbidden, p.rec.ID, ns)
		}
		return nil
	case p.kube != nil:
		if err := a.Kube.Authorize(ctx, *p.kube, ns); err != nil {
			if errors.Is(err, kubeauth.ErrForbidden) {
				return fmt.Errorf("%w: %w", ErrForbidden, err)
			}
			return err
		}
		return nil
	}
	return ErrForbidden
}

// Recheck re-validates an open stream's caller: revocation and expiry of logrouter tokens,
// and (through the review cache) RBAC changes for Kubernetes identities.
func (a *Authenticator) Recheck(ctx context.Context, p *Principal, ns string) error {
	if p.rec != nil {
		if err := a.Tokens.Recheck(p.rec.ID, a.Now()); err != nil {
			return err
		}
	}
	return a.Authorize(ctx, p, ns)
}

// Namespaces lists the namespaces p may read, sorted. A logrouter token lists its grants
// (complete). For a Kubernetes identity RBAC decides per namespace: candidates (the
// namespaces the gateway has logs of) are reviewed one by one (kubeauth.Allowed: bounded and
// cached); complete is false when there were more than the reviewer lists.
func (a *Authenticator) Namespaces(ctx context.Context, p *Principal, candidates func(context.Context) ([]string, error)) (namespaces []string, complete bool, err error) {
	switch {
	case p.rec != nil:
		out := append([]string{}, p.rec.Namespaces...)
		slices.Sort(out)
		return slices.Compact(out), true, nil
	case p.kube != nil:
		cands, err := candidates(ctx)
		if err != nil {
			return nil, false, err
		}
		return a.Kube.Allowed(ctx, *p.kube, cands)
	}
	return []string{}, false, nil
}

// AuthorizeAdmin returns nil if p may manage tokens.
func AuthorizeAdmin(p *Principal) error {
	if !p.Admin {
		return ErrNotAdmin
	}
	return nil
}

// TokenID is the logrouter token ID of p, or "".
func (p *Principal) TokenID() string {
	if p.rec != nil {
		return p.rec.ID
	}
	return ""
}
