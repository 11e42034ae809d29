// Package problem writes RFC 9457 problem details (application/problem+json) with a stable
// machine-readable code, so clients branch on the code and people read the message.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Stable codes. They are part of the API (docs/api.md, api/openapi.json): never rename one.
const (
	CodeInvalidNamespace = "invalid_namespace"
	CodeInvalidParameter = "invalid_parameter"
	CodeUnknownParameter = "unknown_parameter"
	CodeTokenInQuery     = "token_in_query"
	CodeInvalidCursor    = "invalid_cursor"
	CodeNotAcceptable    = "not_acceptable"
	CodeUnauthenticated  = "unauthenticated"
	CodeTokenExpired     = "token_expired"
	CodeTokenRevoked     = "token_revoked"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooManyStreams   = "too_many_streams"
	CodeRateLimited      = "rate_limited"
	CodeBodyTooLarge     = "body_too_large"
	CodeHeaderTooLarge   = "header_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeBadRequest       = "bad_request"
	CodeNoTopic          = "no_logs_yet"
	CodeUnavailable      = "unavailable"
	CodeArchiveDisabled  = "archive_disabled"
	CodePipelinesOff     = "pipelines_disabled"
	CodeInternal         = "internal"
)

// Problem is the response body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"`
	// Param names the query parameter or header at fault, when there is one.
	Param string `json:"param,omitempty"`
}

// Error is a problem that handlers return; Write renders it.
type Error struct {
	Status     int
	Code       string
	Detail     string
	Param      string
	RetryAfter int // seconds; sets Retry-After when > 0
	// BearerError is the RFC 6750 error code of the WWW-Authenticate challenge
	// ("invalid_request", "invalid_token"). A 401 always carries a Bearer challenge; another
	// status carries one only when BearerError is set.
	BearerError string
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// New returns an *Error.
func New(status int, code, detail string) *Error {
	return &Error{Status: status, Code: code, Detail: detail}
}

// Write renders e for request path instance.
func Write(w http.ResponseWriter, instance string, e *Error) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	switch {
	case e.BearerError != "":
		h.Set("WWW-Authenticate", `Bearer realm="logrouter", error="`+e.BearerError+`"`)
	case e.Status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="logrouter"`)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(Body(instance, e))
}

// Body is e's JSON document (with a trailing newline) for request path instance.
func Body(instance string, e *Error) []byte {
	b, _ := json.Marshal(Problem{
		Type:     "https://logrouter.dev/problems/" + e.Code,
		Title:    http.StatusText(e.Status),
		Status:   e.Status,
		Code:     e.Code,
		Detail:   e.Detail,
		Instance: instance,
		Param:    e.Param,
	})
	return append(b, '\n')
}
