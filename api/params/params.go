// Package params parses and validates what a client controls in a request: the namespace path
// segment and the query parameters of the logs and archive endpoints. Everything here is
// untrusted input, so every parser is strict (unknown or repeated parameters are errors) and
// bounded (lengths, regex program size), and each error names the parameter at fault.
package params

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/internal/topic"
)

// Limits on client-controlled values.
const (
	MaxGrepBytes = 256
	// MaxGrepInsts bounds the compiled regex program: RE2 matching is linear in the input, but
	// the constant is the program size, so this bounds CPU per byte scanned.
	MaxGrepInsts = 2000
	MaxLimit     = 10000
	DefaultLimit = 100
	MaxCursorLen = 16 << 10
)

// Error is a parameter problem; Code is one of the Code* values.
type Error struct {
	Param string
	Code  string
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Param, e.Msg) }

// Error codes.
const (
	CodeInvalid      = "invalid_parameter"
	CodeUnknown      = "unknown_parameter"
	CodeTokenInQuery = "token_in_query"
)

// ErrInvalidNamespace is wrapped by Namespace's errors.
var ErrInvalidNamespace = errors.New("invalid namespace")

// Namespace checks that s is a valid Kubernetes namespace name (an RFC 1123 label: at most 63
// characters of [a-z0-9-], starting and ending with an alphanumeric). s is the raw, still
// escaped path segment: an escape sequence (%2f, %2e) is never valid.
func Namespace(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNamespace)
	}
	if len(s) > validation.DNS1123LabelMaxLength {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidNamespace, len(s), validation.DNS1123LabelMaxLength)
	}
	if msgs := validation.IsDNS1123Label(s); len(msgs) > 0 {
		return fmt.Errorf("%w: %q: %s", ErrInvalidNamespace, s, strings.Join(msgs, "; "))
	}
	return nil
}

// StartKind says where a live read starts.
type StartKind int

// Start kinds.
const (
	StartDefault StartKind = iota // not given: latest for streams, earliest for pages
	StartEarliest
	StartLatest
	StartTime
	StartCursor
)

// Start is the parsed `from` (or `cursor`) parameter.
type Start struct {
	Kind   StartKind
	Time   time.Time
	Cursor string // opaque, decoded by package cursor against the topic
	// Param names where the cursor came from ("from", "cursor", "Last-Event-ID"), for errors.
	Param string
}

// Filter selects records.
type Filter struct {
	Pod       string
	Container string
	Grep      *regexp.Regexp
}

// Logs is the parsed query of GET /v1/namespaces/{ns}/logs.
type Logs struct {
	Start  Start
	Filter Filter
	// Suffix selects the namespace's suffix topic <namespace topic>.<suffix>; "" is the
	// namespace's topic. It is a valid topic.ValidSuffix, so it cannot reach another namespace.
	Suffix string
	Limit  int  // 0 = not given
	Page   bool // the client asked for a page shape via `limit` or `cursor`
}

// Archive is the parsed query of GET /v1/namespaces/{ns}/archive.
type Archive struct {
	Since, Until time.Time
	Filter       Filter
	Suffix       string // as Logs.Suffix
	Limit        int
	// Before is a cursor of the live endpoint (opaque, decoded against the topic): only
	// records before its position are served, so a client can continue from Kafka at that
	// cursor with no gap and no duplicate. "" = no bound.
	Before string
	// Offsets, if set, selects records by Kafka position instead of time (partition=,
	// from_offset=, to_offset=): what a "skipped" event reported.
	Offsets *Offsets
}

// Offsets is a range [From, To) of one partition's Kafka offsets.
type Offsets struct {
	Partition int32
	From, To  int64
}

// tokenParams are names clients use to pass credentials in URLs; they are refused with their
// own code because URLs end up in access logs and browser history.
var tokenParams = map[string]bool{"access_token": true, "token": true, "bearer": true, "authorization": true, "api_key": true, "apikey": true}

// values parses a raw query strictly: bad escapes, repeated and unknown parameters are errors.
func values(rawQuery string, allowed map[string]bool) (map[string]string, error) {
	if len(rawQuery) > 8<<10 {
		return nil, &Error{Param: "query", Code: CodeInvalid, Msg: "query string longer than 8192 bytes"}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, &Error{Param: "query", Code: CodeInvalid, Msg: "malformed query string: " + err.Error()}
	}
	out := make(map[string]string, len(q))
	for k, v := range q {
		if tokenParams[strings.ToLower(k)] {
			return nil, &Error{Param: k, Code: CodeTokenInQuery, Msg: "credentials are not accepted in the query string; send `Authorization: Bearer <token>`"}
		}
		if !allowed[k] {
			return nil, &Error{Param: k, Code: CodeUnknown, Msg: fmt.Sprintf("unknown parameter %q", truncate(k, 64))}
		}
		if len(v) != 1 {
			return nil, &Error{Param: k, Code: CodeInvalid, Msg: "given more than once"}
		}
		out[k] = v[0]
	}
	return out, nil
}

var logsParams = map[string]bool{"from": true, "cursor": true, "pod": true, "container": true, "grep": true, "limit": true, "suffix": true}

// ParseLogs parses the query of the logs endpoint.
func ParseLogs(rawQuery string) (Logs, error) {
	q, err := values(rawQuery, logsParams)
	if err != nil {
		return Logs{}, err
	}
	var l Logs
	var errs []error
	if f, ok := q["from"]; ok {
		if _, c := q["cursor"]; c {
			errs = append(errs, &Error{Param: "cursor", Code: CodeInvalid, Msg: "give either from or cursor, not both"})
		}
		if l.Start, err = ParseFrom(f); err != nil {
			errs = append(errs, err)
		}
	}
	if c, ok := q["cursor"]; ok {
		l.Page = true
		if c == "" || len(c) > MaxCursorLen {
			errs = append(errs, &Error{Param: "cursor", Code: CodeInvalid, Msg: "cursor must be the non-empty next_cursor of a previous page"})
		} else {
			l.Start = Start{Kind: StartCursor, Cursor: c, Param: "cursor"}
		}
	}
	if v, ok := q["limit"]; ok {
		l.Page = true
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			errs = append(errs, &Error{Param: "limit", Code: CodeInvalid, Msg: fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit)})
		}
		l.Limit = n
	}
	l.Filter, err = parseFilter(q)
	if err != nil {
		errs = append(errs, err)
	}
	if l.Suffix, err = parseSuffix(q); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Logs{}, err
	}
	return l, nil
}

var archiveParams = map[string]bool{"since": true, "until": true, "pod": true, "container": true, "grep": true, "limit": true, "suffix": true, "before": true, "partition": true, "from_offset": true, "to_offset": true}

// Names lists the query parameters of an endpoint ("logs" or "archive"), sorted.
func Names(endpoint string) []string {
	m := map[string]map[string]bool{"logs": logsParams, "archive": archiveParams}[endpoint]
	return slices.Sorted(maps.Keys(m))
}

// parseSuffix reads `suffix`: one lowercase RFC 1123 label (topic.ValidSuffix). No dots, so
// neither `..` nor another namespace's topic can be named; url.ParseQuery has already decoded
// percent-escapes, so an escaped dot or slash is refused the same way.
func parseSuffix(q map[string]string) (string, error) {
	s, ok := q["suffix"]
	if !ok {
		return "", nil
	}
	if err := topic.ValidSuffix(s); err != nil {
		return "", &Error{Param: "suffix", Code: CodeInvalid, Msg: fmt.Sprintf("suffix %q is not a topic suffix: one lowercase RFC 1123 label (a-z, 0-9, '-'; at most %d characters; no dots), e.g. suffix=audit for the topic <namespace topic>.audit", truncate(s, 80), topic.MaxSuffixLen)}
	}
	return s, nil
}

// parseOffsets parses the archive endpoint's position form: partition, from_offset and
// to_offset (all required, [from, to) of one partition); no times.
func parseOffsets(q map[string]string) (*Offsets, []error) {
	var errs []error
	for _, p := range []string{"since", "until", "before"} {
		if _, ok := q[p]; ok {
			errs = append(errs, &Error{Param: p, Code: CodeInvalid, Msg: p + " does not go with partition, from_offset and to_offset (those select by Kafka position, not time)"})
		}
	}
	num := func(name string, bits int) int64 {
		v, ok := q[name]
		n, err := strconv.ParseInt(v, 10, bits)
		if !ok || err != nil || n < 0 {
			errs = append(errs, &Error{Param: name, Code: CodeInvalid, Msg: name + " must be a non-negative integer; partition, from_offset and to_offset go together (the partition and [from, to) of a skipped event)"})
		}
		return n
	}
	o := Offsets{Partition: int32(num("partition", 32)), From: num("from_offset", 64), To: num("to_offset", 64)}
	if len(errs) == 0 && o.From >= o.To {
		errs = append(errs, &Error{Param: "to_offset", Code: CodeInvalid, Msg: "to_offset must be above from_offset"})
	}
	return &o, errs
}

// parseRange parses the archive endpoint's time form: since (required), until (default now)
// and before.
func parseRange(q map[string]string, now time.Time, a *Archive) []error {
	var errs []error
	var err error
	if s, ok := q["since"]; !ok {
		errs = append(errs, &Error{Param: "since", Code: CodeInvalid, Msg: "since is required (RFC 3339 time, e.g. 2026-11-21T10:00:00Z)"})
	} else if a.Since, err = parseTime("since", s); err != nil {
		errs = append(errs, err)
	}
	a.Until = now
	if s, ok := q["until"]; ok {
		if a.Until, err = parseTime("until", s); err != nil {
			errs = append(errs, err)
		}
	}
	if !a.Since.IsZero() && !a.Until.IsZero() && !a.Since.Before(a.Until) {
		errs = append(errs, &Error{Param: "until", Code: CodeInvalid, Msg: "until must be after since"})
	}
	if v, ok := q["before"]; ok {
		if v == "" || len(v) > MaxCursorLen {
			errs = append(errs, &Error{Param: "before", Code: CodeInvalid, Msg: "before must be a non-empty cursor of the logs endpoint (start_cursor of a page)"})
		}
		a.Before = v
	}
	return errs
}

// ParseArchive parses the query of the archive endpoint: a time range (until defaults to now)
// or, with partition, a range of Kafka offsets.
func ParseArchive(rawQuery string, now time.Time) (Archive, error) {
	q, err := values(rawQuery, archiveParams)
	if err != nil {
		return Archive{}, err
	}
	var a Archive
	var errs []error
	_, p := q["partition"]
	_, f := q["from_offset"]
	_, t := q["to_offset"]
	if p || f || t {
		a.Offsets, errs = parseOffsets(q)
	} else {
		errs = parseRange(q, now, &a)
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, &Error{Param: "limit", Code: CodeInvalid, Msg: "limit must be a positive integer"})
		}
		a.Limit = n
	}
	if a.Filter, err = parseFilter(q); err != nil {
		errs = append(errs, err)
	}
	if a.Suffix, err = parseSuffix(q); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Archive{}, err
	}
	return a, nil
}

// ParseFrom parses from=earliest|latest|<RFC 3339 time>|<cursor>.
func ParseFrom(s string) (Start, error) {
	switch {
	case s == "earliest":
		return Start{Kind: StartEarliest}, nil
	case s == "latest":
		return Start{Kind: StartLatest}, nil
	case s == "":
		return Start{}, &Error{Param: "from", Code: CodeInvalid, Msg: "from must be earliest, latest, an RFC 3339 time or a cursor"}
	case len(s) > MaxCursorLen:
		return Start{}, &Error{Param: "from", Code: CodeInvalid, Msg: "from is too long"}
	case len(s) >= 10 && s[4] == '-' && s[0] >= '0' && s[0] <= '9':
		t, err := parseTime("from", s)
		if err != nil {
			return Start{}, err
		}
		return Start{Kind: StartTime, Time: t}, nil
	}
	// Anything else must be a cursor. One that does not even decode is a bad `from` value
	// (a typo, "yesterday"), not a cursor of the wrong topic.
	if _, err := cursor.Decode(s); err != nil {
		return Start{}, &Error{Param: "from", Code: CodeInvalid, Msg: fmt.Sprintf("%q is not earliest, latest, an RFC 3339 time (e.g. 2026-11-21T10:00:00Z) or a cursor this API returned", truncate(s, 64))}
	}
	return Start{Kind: StartCursor, Cursor: s, Param: "from"}, nil
}

func parseTime(param, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &Error{Param: param, Code: CodeInvalid, Msg: fmt.Sprintf("%q is not an RFC 3339 time (e.g. 2026-11-21T10:00:00Z)", truncate(s, 64))}
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, &Error{Param: param, Code: CodeInvalid, Msg: "time out of range"}
	}
	return t.UTC(), nil
}

func parseFilter(q map[string]string) (Filter, error) {
	var f Filter
	var errs []error
	if p, ok := q["pod"]; ok {
		if msgs := validation.IsDNS1123Subdomain(p); len(msgs) > 0 {
			errs = append(errs, &Error{Param: "pod", Code: CodeInvalid, Msg: "not a valid pod name: " + strings.Join(msgs, "; ")})
		}
		f.Pod = p
	}
	if c, ok := q["container"]; ok {
		if msgs := validation.IsDNS1123Label(c); len(msgs) > 0 {
			errs = append(errs, &Error{Param: "container", Code: CodeInvalid, Msg: "not a valid container name: " + strings.Join(msgs, "; ")})
		}
		f.Container = c
	}
	if g, ok := q["grep"]; ok {
		re, err := Grep(g)
		if err != nil {
			errs = append(errs, err)
		}
		f.Grep = re
	}
	return f, errors.Join(errs...)
}

// Grep compiles a client's regular expression (RE2 syntax, matched against the message) within
// the length and program-size bounds.
func Grep(s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: "grep must not be empty"}
	}
	if len(s) > MaxGrepBytes {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: fmt.Sprintf("grep is %d bytes, at most %d allowed", len(s), MaxGrepBytes)}
	}
	re, err := syntax.Parse(s, syntax.Perl)
	if err != nil {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: "invalid regular expression: " + err.Error()}
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: "invalid regular expression: " + err.Error()}
	}
	if len(prog.Inst) > MaxGrepInsts {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: fmt.Sprintf("regular expression too complex (%d instructions, at most %d): reduce repetition counts", len(prog.Inst), MaxGrepInsts)}
	}
	out, err := regexp.Compile(s)
	if err != nil {
		return nil, &Error{Param: "grep", Code: CodeInvalid, Msg: "invalid regular expression: " + err.Error()}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// First returns the first *Error in err (which may be a join), for callers that report one
// problem code.
func First(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// None checks a query string that must be empty: credentials get CodeTokenInQuery, anything
// else CodeUnknown.
func None(rawQuery string) error {
	if rawQuery == "" {
		return nil
	}
	_, err := values(rawQuery, nil)
	if err == nil { // e.g. "&": no parameters, but not empty either
		err = &Error{Param: "query", Code: CodeUnknown, Msg: "this endpoint takes no query parameters"}
	}
	return err
}
