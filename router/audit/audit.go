// Package audit parses the Kubernetes audit log: kube-apiserver's log backend
// (--audit-log-path) writes one audit.k8s.io/v1 Event per line, and the collector ships each
// event as one record whose fields are the event's who, what and outcome (docs/record.md).
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/logline"
)

// ErrNotEvent is what every Parse error wraps.
var ErrNotEvent = errors.New("not a Kubernetes audit event")

// Reasons of Parse errors: stable and few (metric labels).
const (
	ReasonBadJSON      = "bad json"
	ReasonNotEvent     = "not an audit event" // kind or apiVersion is not audit.k8s.io's Event
	ReasonMissingID    = "missing auditID"
	ReasonMissingStage = "missing stage"
	ReasonBadTimestamp = "bad timestamp"
)

// Error says why a line is not an audit event.
type Error struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *Error) Error() string {
	s := "kube-audit: " + e.Reason
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns ErrNotEvent.
func (e *Error) Unwrap() error { return ErrNotEvent }

// Event is what a record carries of one audit event.
type Event struct {
	AuditID    string
	Stage      string // RequestReceived, ResponseStarted, ResponseComplete, Panic
	Level      string // Metadata, Request, RequestResponse
	Verb       string
	RequestURI string
	User       string
	Groups     []string
	// Impersonated is the user the request acted as (impersonatedUser.username), if any.
	Impersonated string
	SourceIPs    []string
	UserAgent    string
	// The object the request was about (objectRef); empty for non-resource URLs.
	APIGroup, APIVersion, Resource, Subresource, Namespace, Name string
	// Code is the response's HTTP status (responseStatus.code); 0 before the response (stage
	// RequestReceived).
	Code int
	// TS is stageTimestamp (requestReceivedTimestamp when absent) as RFC 3339 UTC with
	// nanoseconds, the record's ts.
	TS []byte
}

// wire is the part of audit.k8s.io/v1 Event the record uses (k8s.io/apiserver/pkg/apis/audit/v1).
type wire struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Level      string `json:"level"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	SourceIPs []string `json:"sourceIPs"`
	UserAgent string   `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp string `json:"requestReceivedTimestamp"`
	StageTimestamp           string `json:"stageTimestamp"`
}

// Parse reads one line of the audit log (without its newline).
func Parse(line []byte) (Event, error) {
	var w wire
	if err := json.Unmarshal(line, &w); err != nil {
		return Event{}, &Error{Reason: ReasonBadJSON, Detail: err.Error()}
	}
	if w.Kind != "Event" || !strings.HasPrefix(w.APIVersion, "audit.k8s.io/") {
		return Event{}, &Error{Reason: ReasonNotEvent, Detail: fmt.Sprintf("kind %s, apiVersion %s", logline.Quote([]byte(w.Kind)), logline.Quote([]byte(w.APIVersion)))}
	}
	if w.AuditID == "" {
		return Event{}, &Error{Reason: ReasonMissingID}
	}
	if w.Stage == "" {
		return Event{}, &Error{Reason: ReasonMissingStage}
	}
	ts := w.StageTimestamp
	if ts == "" {
		ts = w.RequestReceivedTimestamp
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Event{}, &Error{Reason: ReasonBadTimestamp, Detail: logline.Quote([]byte(ts))}
	}
	e := Event{
		AuditID: w.AuditID, Stage: w.Stage, Level: w.Level, Verb: w.Verb, RequestURI: w.RequestURI,
		User: w.User.Username, Groups: w.User.Groups, SourceIPs: w.SourceIPs, UserAgent: w.UserAgent,
		TS: t.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000000Z07:00"),
	}
	if w.ImpersonatedUser != nil {
		e.Impersonated = w.ImpersonatedUser.Username
	}
	if o := w.ObjectRef; o != nil {
		e.APIGroup, e.APIVersion, e.Resource, e.Subresource, e.Namespace, e.Name = o.APIGroup, o.APIVersion, o.Resource, o.Subresource, o.Namespace, o.Name
	}
	if w.ResponseStatus != nil {
		e.Code = w.ResponseStatus.Code
	}
	return e, nil
}

// AppendFields appends the record's fields object for e (docs/record.md#audit): audit_id,
// stage, level, verb, user, groups, resource, namespace, name and code, and the others when set.
// Empty strings and lists are left out; code is left out before the response.
func (e *Event) AppendFields(b []byte) []byte {
	b = append(b, '{')
	n := 0
	str := func(name, v string) {
		if v == "" {
			return
		}
		b = member(b, &n, name)
		b, _ = record.AppendString(b, v)
	}
	list := func(name string, vs []string) {
		if len(vs) == 0 {
			return
		}
		b = member(b, &n, name)
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = record.AppendString(b, v)
		}
		b = append(b, ']')
	}
	str("audit_id", e.AuditID)
	str("stage", e.Stage)
	str("level", e.Level)
	str("verb", e.Verb)
	str("user", e.User)
	list("groups", e.Groups)
	str("impersonated_user", e.Impersonated)
	str("api_group", e.APIGroup)
	str("api_version", e.APIVersion)
	str("resource", e.Resource)
	str("subresource", e.Subresource)
	str("namespace", e.Namespace)
	str("name", e.Name)
	if e.Code != 0 {
		b = member(b, &n, "code")
		b = strconv.AppendInt(b, int64(e.Code), 10)
	}
	str("request_uri", e.RequestURI)
	list("source_ips", e.SourceIPs)
	str("user_agent", e.UserAgent)
	return append(b, '}')
}

func member(b []byte, n *int, name string) []byte {
	if *n > 0 {
		b = append(b, ',')
	}
	*n++
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}
