// Package logsclient reads a namespace's logs through the gateway's public HTTP API only, as
// one timeline: what Kafka's retention has already deleted from the archive endpoint, the rest
// from Kafka (the logs endpoint), joined at Kafka offsets so that no record is missing or
// shown twice at the seam; then, when following, the live stream, resumed from its last
// cursor after a dropped connection or a gateway restart. `logrouter logs` is built on it.
package logsclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/logrouter/logrouter/api/problem"
)

// Errors callers branch on (exit codes). An *APIError wraps the one that fits its status.
var (
	// ErrUnauthenticated: the gateway refused the credentials (401), or revoked them mid-stream.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrForbidden: the credentials do not grant the namespace (403).
	ErrForbidden = errors.New("not allowed to read this namespace")
	// ErrUnavailable: the gateway (or Kafka, or the archive behind it) did not answer within
	// the retry budget.
	ErrUnavailable = errors.New("gateway unavailable")
	// ErrBadRequest: the gateway refused the request as invalid (400).
	ErrBadRequest = errors.New("invalid request")
)

// APIError is a problem+json answer of the gateway.
type APIError struct {
	Status int
	problem.Problem
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

// Unwrap maps the status to the sentinel callers branch on.
func (e *APIError) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthenticated
	case e.Status == http.StatusForbidden:
		return ErrForbidden
	case e.Status == http.StatusBadRequest:
		return ErrBadRequest
	}
	return nil
}

// transient reports whether a request may succeed when retried.
func (e *APIError) transient() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Config says how to reach the gateway.
type Config struct {
	// Gateway is the gateway's base URL (https://logs.example.com).
	Gateway string
	// HTTP sends the requests; its transport adds the credentials. nil: http.DefaultClient.
	HTTP *http.Client
	// RetryFor is how long network errors and unavailable answers are retried, counted from
	// the first failure since the last success (default 1m).
	RetryFor time.Duration
	// MinBackoff and MaxBackoff bound the delay between retries (defaults 250ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// Warn receives notes for the user (records deleted before they could be read, retries).
	Warn func(string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Client reads one namespace.
type Client struct {
	cfg  Config
	base *url.URL
	ns   string
}

// New returns a client of namespace ns.
func New(cfg Config, ns string) (*Client, error) {
	u, err := url.Parse(cfg.Gateway)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: want http(s)://host[:port]", cfg.Gateway)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("gateway URL %q: no query or fragment", cfg.Gateway)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{cfg: cfg, base: u, ns: ns}, nil
}

// Query selects what to read.
type Query struct {
	// From is where the timeline starts: records from this time on (the archive, for what
	// Kafka no longer holds, then Kafka). Zero: everything Kafka holds, no archive.
	From time.Time
	// Until ends a bounded read: records of this time and later are not shown. Zero: none.
	Until time.Time
	// Follow keeps reading new records until ctx ends.
	Follow bool
	// Pod and Container select exact names (the gateway filters); Grep is an RE2 expression on
	// the message (the gateway filters).
	Pod, Container, Grep string
}

// Source says where a record was read.
type Source string

// Sources.
const (
	FromArchive Source = "archive"
	FromKafka   Source = "kafka"
)

// Entry is one record.
type Entry struct {
	Source Source
	// Partition and Offset locate the record in Kafka (-1 when the answer did not say: pages).
	Partition int32
	Offset    int64
	// Record is the record's JSON as the gateway sent it.
	Record json.RawMessage
	Fields
}

// Fields are the record fields a viewer needs.
type Fields struct {
	Time          time.Time `json:"ts"`
	Namespace     string    `json:"namespace"`
	Pod           string    `json:"pod"`
	Container     string    `json:"container"`
	Stream        string    `json:"stream"`
	Message       string    `json:"message"`
	MessageBase64 []byte    `json:"message_base64"`
}

func entry(src Source, p int32, o int64, raw json.RawMessage) (*Entry, error) {
	e := &Entry{Source: src, Partition: p, Offset: o, Record: raw}
	if err := json.Unmarshal(raw, &e.Fields); err != nil {
		return nil, fmt.Errorf("record from the %s: %w", src, err)
	}
	return e, nil
}

// retrier paces retries of transient failures within the retry budget.
type retrier struct {
	c     *Client
	bo    *backoff.ExponentialBackOff
	first time.Time // of the current run of failures; zero after a success
}

func (c *Client) retrier() *retrier {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = c.cfg.MinBackoff, c.cfg.MaxBackoff
	return &retrier{c: c, bo: bo}
}

func (r *retrier) ok() {
	r.first = time.Time{}
	r.bo.Reset()
}

// wait sleeps before the next attempt after err, or returns the error to give up with.
func (r *retrier) wait(ctx context.Context, what string, err error) error {
	now := r.c.cfg.Now()
	if r.first.IsZero() {
		r.first = now
	}
	if now.Sub(r.first) >= r.c.cfg.RetryFor {
		return fmt.Errorf("%w: %s: still failing after %s: %w", ErrUnavailable, what, r.c.cfg.RetryFor, err)
	}
	d := r.bo.NextBackOff()
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = min(ae.RetryAfter, r.c.cfg.MaxBackoff)
	}
	r.c.cfg.Warn(fmt.Sprintf("%s: %v; retrying in %s", what, err, d.Round(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryable reports whether err is worth another attempt.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.transient()
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errFatal)
}

// errFatal marks errors no retry can fix (a malformed answer).
var errFatal = errors.New("fatal")

func (c *Client) url(endpoint string, q url.Values) string {
	u := *c.base
	u.Path += "/v1/namespaces/" + url.PathEscape(c.ns) + "/" + endpoint
	u.RawQuery = q.Encode()
	return u.String()
}

// get sends a GET and returns the response when it is 200, else the problem.
func (c *Client) get(ctx context.Context, endpoint string, q url.Values, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(endpoint, q), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFatal, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	ae := &APIError{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &ae.Problem) != nil || ae.Detail == "" {
		ae.Detail = strings.TrimSpace(string(body))
		if len(ae.Detail) > 200 || ae.Detail == "" {
			ae.Detail = http.StatusText(resp.StatusCode) + " (not an answer of the logrouter gateway: check --gateway)"
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ae.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, ae
}

func (q Query) filters() url.Values {
	v := url.Values{}
	if q.Pod != "" {
		v.Set("pod", q.Pod)
	}
	if q.Container != "" {
		v.Set("container", q.Container)
	}
	if q.Grep != "" {
		v.Set("grep", q.Grep)
	}
	return v
}

// page is the logs endpoint's JSON page.
type page struct {
	Records         []json.RawMessage `json:"records"`
	NextCursor      string            `json:"next_cursor"`
	CaughtUp        bool              `json:"caught_up"`
	Skipped         []skip            `json:"skipped"`
	StartCursor     string            `json:"start_cursor"`
	StartOffsets    []int64           `json:"start_offsets"`
	LogStartOffsets []int64           `json:"log_start_offsets"`
}

type skip struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from"`
	To        int64 `json:"to"`
	Count     int64 `json:"count"`
}

// pageSize is the records per page: the most the gateway allows (each page opens a Kafka
// consumer, so fewer, larger pages read faster; a page also stops at 8 MiB).
const pageSize = 10000

// fetchPage gets one page, retrying transient failures.
func (c *Client) fetchPage(ctx context.Context, r *retrier, v url.Values) (*page, error) {
	v.Set("limit", strconv.Itoa(pageSize))
	for {
		p, err := c.tryPage(ctx, v)
		if err == nil {
			r.ok()
			return p, nil
		}
		if !retryable(err) {
			return nil, err
		}
		if werr := r.wait(ctx, "reading logs", err); werr != nil {
			return nil, werr
		}
	}
}

func (c *Client) tryPage(ctx context.Context, v url.Values) (*page, error) {
	resp, err := c.get(ctx, "logs", v, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			// Not a page at all: retrying will not help.
			return nil, fmt.Errorf("%w: reading a page: %w (is --gateway a logrouter gateway?)", errFatal, err)
		}
		return nil, fmt.Errorf("reading a page: %w", err) // cut off: retried
	}
	if p.NextCursor == "" {
		return nil, fmt.Errorf("%w: the page has no next_cursor: is --gateway a logrouter gateway?", errFatal)
	}
	return &p, nil
}

// needsArchive reports whether Kafka has lost records the read should show: the read starts
// at a partition's log start, and retention has deleted offsets below it.
func (p *page) needsArchive() bool {
	for i, o := range p.StartOffsets {
		if i < len(p.LogStartOffsets) && o == p.LogStartOffsets[i] && o > 0 {
			return true
		}
	}
	return false
}

// Read reads q and hands each record to emit in timeline order: first what only the archive
// holds, then Kafka, then (Follow) the live stream. It returns nil at the end of a bounded
// read, ctx's error when following ends, or the first error of emit or the gateway.
func (c *Client) Read(ctx context.Context, q Query, emit func(*Entry) error) error {
	r := c.retrier()
	v := q.filters()
	if q.From.IsZero() {
		v.Set("from", "earliest")
	} else {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	first, err := c.fetchPage(ctx, r, v)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == problem.CodeNoTopic {
		if !q.Follow {
			c.cfg.Warn(fmt.Sprintf("namespace %q has no logs yet", c.ns))
			return nil
		}
		first, err = c.waitForTopic(ctx, r, v)
	}
	if err != nil {
		return err
	}
	// The seam: the first page fixes, per partition, the offset Kafka is read from
	// (start_cursor). The archive serves only what lies below it (before=start_cursor), so a
	// record is in exactly one of the two reads, whatever its timestamp.
	if !q.From.IsZero() && first.needsArchive() {
		if err := c.archive(ctx, r, q, first.StartCursor, emit); err != nil {
			return err
		}
	}
	show := func(raw json.RawMessage) error {
		e, err := entry(FromKafka, -1, -1, raw)
		if err != nil {
			return err
		}
		if !q.Until.IsZero() && !e.Time.Before(q.Until) {
			return nil
		}
		return emit(e)
	}
	p := first
	filled := map[int32]int64{}
	for {
		for _, s := range p.Skipped {
			if err := c.fill(ctx, r, q, filled, s, emit); err != nil {
				return err
			}
		}
		for _, raw := range p.Records {
			if err := show(raw); err != nil {
				return err
			}
		}
		if p.CaughtUp && !q.Follow {
			return nil
		}
		if p.CaughtUp {
			return c.follow(ctx, r, q, filled, p.NextCursor, emit)
		}
		nv := q.filters()
		nv.Set("cursor", p.NextCursor)
		if p, err = c.fetchPage(ctx, r, nv); err != nil {
			return err
		}
	}
}

// waitForTopic polls until the namespace's topic exists (following a namespace that has not
// logged yet).
func (c *Client) waitForTopic(ctx context.Context, r *retrier, v url.Values) (*page, error) {
	c.cfg.Warn(fmt.Sprintf("namespace %q has no logs yet; waiting", c.ns))
	t := time.NewTicker(c.cfg.MaxBackoff)
	defer t.Stop()
	for {
		p, err := c.fetchPage(ctx, r, v)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != problem.CodeNoTopic {
			return p, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// fill shows what Kafka's retention deleted before the read got there (a skipped gap): the
// records of offsets [s.From, s.To) of the partition, from the archive, in offset order. The
// gap is named by offsets, so the archive serves exactly the missing records and nothing
// Kafka still holds. A cut-off answer is resumed after the last offset shown. What the archive
// does not hold is reported, not silently dropped.
//
// filled holds, per partition, the offset the fills of this read reached: a gap reported
// again (the stream reconnected before its cursor moved past it) is filled only where it was
// not yet.
func (c *Client) fill(ctx context.Context, r *retrier, q Query, filled map[int32]int64, s skip, emit func(*Entry) error) error {
	from := s.From
	if f, ok := filled[s.Partition]; ok {
		from = max(from, f)
	}
	if from >= s.To {
		return nil
	}
	defer func() { filled[s.Partition] = max(filled[s.Partition], from) }()
	for {
		v := q.filters()
		v.Set("partition", strconv.Itoa(int(s.Partition)))
		v.Set("from_offset", strconv.FormatInt(from, 10))
		v.Set("to_offset", strconv.FormatInt(s.To, 10))
		asked := from // tryFill advances from past the records it shows
		held, err := c.tryFill(ctx, v, q, &from, emit)
		if err == nil {
			r.ok()
			if held == nil { // "complete": the archive held all of the rest
				from = s.To
				return nil
			}
			if held[0] > asked {
				c.lost(s.Partition, asked, held[0], "are not in the archive either")
			}
			if held[1] < s.To {
				c.lost(s.Partition, max(held[1], from), s.To, "are not archived yet; read them later with --from")
			}
			from = s.To
			return nil
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == problem.CodeArchiveDisabled {
			c.lost(s.Partition, from, s.To, "cannot be read: this gateway has no archive")
			from = s.To
			return nil
		}
		if !retryable(err) {
			return err
		}
		if werr := r.wait(ctx, "reading the archive for records deleted by retention", err); werr != nil {
			return werr
		}
	}
}

// lost warns that offsets [from, to) of partition p were deleted by retention before they
// were read and why the archive did not fill them.
func (c *Client) lost(p int32, from, to int64, why string) {
	if from < to {
		c.cfg.Warn(fmt.Sprintf("%d records of partition %d (offsets %d to %d) were deleted by Kafka retention before they were read and %s", to-from, p, from, to-1, why))
	}
}

// tryFill runs one archive request of a gap; held is nil when the answer was complete, else
// the [from, to) the archive held. *from advances past every record shown.
func (c *Client) tryFill(ctx context.Context, v url.Values, q Query, from *int64, emit func(*Entry) error) (held []int64, err error) {
	resp, err := c.get(ctx, "archive", v, "application/x-ndjson")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	done, err := readLines(resp.Body, func(b []byte) (bool, error) {
		l, e, err := decodeArchiveLine(b)
		switch {
		case err != nil:
			return false, err
		case e != nil:
			if l.Offset < *from {
				return false, nil // shown before a retry
			}
			*from = l.Offset + 1
			if !q.Until.IsZero() && !e.Time.Before(q.Until) {
				return false, nil
			}
			return false, emit(e)
		case l.Type == "end":
			switch l.Reason {
			case "complete":
				return true, nil
			case "incomplete":
				if l.Archived == nil {
					return false, fmt.Errorf("%w: an incomplete archive answer without \"archived\"", errFatal)
				}
				held = []int64{l.Archived.From, l.Archived.To}
				return true, nil
			}
			return false, l.endProblem()
		}
		return false, nil
	})
	if err == nil && !done {
		err = errors.New("the archive answer was cut off")
	}
	return held, err
}

// archiveLine is one line of the archive endpoint.
type archiveLine struct {
	Type      string           `json:"type"`
	Partition int32            `json:"partition"`
	Offset    int64            `json:"offset"`
	Record    json.RawMessage  `json:"record"`
	Reason    string           `json:"reason"`
	Problem   *problem.Problem `json:"problem"`
	// Archived is the part of a position request the archive held ("incomplete").
	Archived *struct {
		From int64 `json:"from"`
		To   int64 `json:"to"`
	} `json:"archived"`
}

// decodeArchiveLine decodes one line of an archive answer, and a record line's record (e is
// nil for the other lines). A line that cannot be decoded is fatal: retrying reads it again.
func decodeArchiveLine(b []byte) (l archiveLine, e *Entry, err error) {
	if err := json.Unmarshal(b, &l); err != nil {
		return l, nil, fmt.Errorf("%w: archive line: %w", errFatal, err)
	}
	if l.Type != "record" {
		return l, nil, nil
	}
	if e, err = entry(FromArchive, l.Partition, l.Offset, l.Record); err != nil {
		return l, nil, fmt.Errorf("%w: %w", errFatal, err)
	}
	return l, e, nil
}

// endProblem is the error of an end line that does not end the answer well (its problem, or
// the gateway's failure mid-answer).
func (l *archiveLine) endProblem() error {
	ae := &APIError{Status: http.StatusServiceUnavailable}
	if l.Problem != nil {
		ae.Problem = *l.Problem
	}
	return ae
}

// archive reads [q.From, q.Until or now) of the archive below the Kafka position before. A
// cut-off answer is resumed after the last record shown: the archive's order (time, then
// Kafka position) is total, so the retry skips exactly what was shown.
func (c *Client) archive(ctx context.Context, r *retrier, q Query, before string, emit func(*Entry) error) error {
	until := q.Until
	if until.IsZero() {
		until = c.cfg.Now()
	}
	since := q.From
	var last *Entry
	for {
		v := q.filters()
		v.Set("since", since.UTC().Format(time.RFC3339Nano))
		v.Set("until", until.UTC().Format(time.RFC3339Nano))
		v.Set("before", before)
		done, err := c.tryArchive(ctx, v, &last, emit)
		switch {
		case done:
			r.ok()
			return nil
		case err == nil:
			err = errors.New("the archive answer was cut off")
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == problem.CodeArchiveDisabled {
			c.cfg.Warn("records before the start of Kafka's retention are not shown: this gateway has no archive (" + ae.Detail + ")")
			return nil
		}
		if !retryable(err) {
			return err
		}
		if werr := r.wait(ctx, "reading the archive", err); werr != nil {
			return werr
		}
		if last != nil {
			since = last.Time
		}
	}
}

// tryArchive runs one archive request; done reports its end line was "complete".
func (c *Client) tryArchive(ctx context.Context, v url.Values, last **Entry, emit func(*Entry) error) (done bool, err error) {
	resp, err := c.get(ctx, "archive", v, "application/x-ndjson")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	return readLines(resp.Body, func(b []byte) (bool, error) {
		l, e, err := decodeArchiveLine(b)
		switch {
		case err != nil:
			return false, err
		case e != nil:
			if p := *last; p != nil && !after(e, p) {
				return false, nil // shown before the retry
			}
			*last = e
			return false, emit(e)
		case l.Type == "end":
			switch l.Reason {
			case "complete", "limit":
				return true, nil
			}
			return false, l.endProblem()
		}
		return false, nil
	})
}

// after reports whether e comes after p in the archive's order (time, partition, offset).
func after(e, p *Entry) bool {
	if c := e.Time.Compare(p.Time); c != 0 {
		return c > 0
	}
	if e.Partition != p.Partition {
		return e.Partition > p.Partition
	}
	return e.Offset > p.Offset
}

// readLines calls fn with each NDJSON line until fn says stop, fn fails or the body ends
// (stop=false, err=nil: the answer was cut off).
func readLines(body io.Reader, fn func([]byte) (stop bool, err error)) (bool, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	var long []byte
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, b...)
			if len(long) > maxLine {
				return false, fmt.Errorf("%w: a line over %d bytes", errFatal, maxLine)
			}
			continue
		}
		if long != nil {
			b = append(long, b...)
			long = nil
		}
		if len(bytes.TrimSpace(b)) > 0 && (err == nil || errors.Is(err, io.EOF)) && b[len(b)-1] == '\n' {
			stop, ferr := fn(b)
			if stop || ferr != nil {
				return stop, ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
	}
}

// maxLine bounds one NDJSON line (a record is at most Kafka's message size, 1 MiB by default).
const maxLine = 16 << 20
