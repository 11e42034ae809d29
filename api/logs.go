package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/limits"
	"github.com/logrouter/logrouter/api/live"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/api/wire"
)

const (
	modePage = "page"
	// writeChunk is how much a stream buffers before writing to the connection.
	writeChunk = 64 << 10
)

// negotiate picks the response shape from Accept: SSE, NDJSON or (for anything JSON-ish, */*
// or no Accept) a JSON page. stream=false allows only NDJSON (the archive endpoint).
func negotiate(accept []string, stream bool) (string, error) {
	if len(accept) == 0 {
		if stream {
			return modePage, nil
		}
		return wire.NDJSON, nil
	}
	for _, a := range accept {
		for _, mr := range strings.Split(a, ",") {
			mt, _, _ := strings.Cut(mr, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case wire.SSE:
				if stream {
					return wire.SSE, nil
				}
			case wire.NDJSON:
				return wire.NDJSON, nil
			case "application/json", "*/*", "application/*":
				if stream {
					return modePage, nil
				}
				return wire.NDJSON, nil
			}
		}
	}
	if stream {
		return "", fmt.Errorf("Accept must allow %s, %s or application/json", wire.SSE, wire.NDJSON)
	}
	return "", fmt.Errorf("Accept must allow %s", wire.NDJSON)
}

// resolve finds the starting position of a logs request, writing the problem on failure.
func (g *Gateway) resolve(q *request, start params.Start, dflt params.StartKind) (string, live.Start, bool) {
	topic := q.topic
	ctx, cancel := context.WithTimeout(q.r.Context(), 10*time.Second)
	defer cancel()
	st, err := g.reader.Resolve(ctx, topic, start, dflt)
	switch {
	case err == nil:
		for _, s := range st.Skipped {
			g.m.retentionSkip.Add(float64(s.Count))
		}
		return topic, st, true
	case errors.Is(err, live.ErrNoTopic):
		if q.suffix != "" {
			q.fail(problem.New(http.StatusNotFound, problem.CodeNoTopic, fmt.Sprintf("namespace %q has no topic with suffix %q (%s) yet: no pipeline has sent logs there", q.namespace, q.suffix, topic)))
			break
		}
		q.fail(problem.New(http.StatusNotFound, problem.CodeNoTopic, fmt.Sprintf("no logs have been produced for namespace %q yet", q.namespace)))
	case errors.Is(err, live.ErrBadCursor), errors.Is(err, live.ErrCursorAhead):
		q.fail(&problem.Error{Status: http.StatusBadRequest, Code: problem.CodeInvalidCursor, Detail: err.Error() + "; use a cursor this API returned for this namespace, or from=earliest|latest|<time>", Param: cmp.Or(start.Param, "cursor")})
	default:
		g.log.Warn("resolve start", "namespace", q.namespace, "err", err)
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "Kafka is unavailable; retry shortly", RetryAfter: 2})
	}
	return "", live.Start{}, false
}

// position tracks a read: pos is the cursor after the last record seen (shown or not).
type position struct {
	pos     cursor.Cursor
	enc     []byte // the encoded cursor, valid when !dirty
	scratch []byte
	dirty   bool
}

func (p *position) cursor() []byte {
	if p.dirty || p.enc == nil {
		p.enc, p.scratch = p.pos.AppendEncode(p.enc[:0], p.scratch)
		p.dirty = false
	}
	return p.enc
}

// visit advances the position over r and reports a retention gap before it, if any. It returns
// false for a record before the position (a duplicate delivery), which must not be shown.
func (p *position) visit(r *kgo.Record) (gap live.Skip, hasGap, fresh bool) {
	i := int(r.Partition)
	if i >= len(p.pos.Offsets) {
		return gap, false, false // a partition added after the request started: not consumed
	}
	want := p.pos.Offsets[i]
	if r.Offset < want {
		return gap, false, false
	}
	if r.Offset > want {
		gap, hasGap = live.Skip{Partition: r.Partition, From: want, To: r.Offset, Count: r.Offset - want}, true
	}
	p.pos.Offsets[i] = r.Offset + 1
	p.dirty = true
	return gap, hasGap, true
}

func (g *Gateway) filter(q *request, f params.Filter) *live.Filter {
	return &live.Filter{Namespace: q.namespace, Pod: f.Pod, Container: f.Container, Grep: f.Grep}
}

// serveStream serves SSE or NDJSON until the client leaves, the limit is reached, the
// credentials stop being valid, or the gateway shuts down.
func (g *Gateway) serveStream(q *request, lease *limits.Lease, l params.Logs, mode string) {
	start := l.Start
	if mode == wire.SSE {
		// EventSource reconnects to the same URL with Last-Event-ID: the id wins over `from`.
		if id := q.r.Header.Values("Last-Event-ID"); len(id) > 0 {
			if len(id) > 1 || id[0] == "" || len(id[0]) > params.MaxCursorLen {
				q.fail(&problem.Error{Status: http.StatusBadRequest, Code: problem.CodeInvalidCursor, Detail: "Last-Event-ID must be one event id this stream sent", Param: "Last-Event-ID"})
				return
			}
			start = params.Start{Kind: params.StartCursor, Cursor: id[0], Param: "Last-Event-ID"}
		}
	}
	topic, st, ok := g.resolve(q, start, params.StartLatest)
	if !ok {
		return
	}
	cl, err := g.reader.Open(topic, st.Pos)
	if err != nil {
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "Kafka is unavailable; retry shortly", RetryAfter: 2})
		return
	}
	defer cl.Close()
	g.m.streams.Inc()
	defer g.m.streams.Dec()

	var enc wire.Encoder = wire.SSEEncoder{}
	if mode == wire.NDJSON {
		enc = wire.NDJSONEncoder{}
	}
	h := q.w.Header()
	h.Set("Content-Type", enc.ContentType())
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer the stream
	h.Set("X-Content-Type-Options", "nosniff")
	q.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(q.w)
	ctx := q.r.Context()

	pos := &position{pos: st.Pos}
	var buf []byte
	var scratch bytes.Buffer
	// write hands buf to the connection (without flushing), so buf stays small however large a
	// fetch is; flush also pushes it to the client.
	write := func() error {
		if len(buf) == 0 {
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
		if _, err := q.w.Write(buf); err != nil {
			return err
		}
		n := len(buf)
		buf = buf[:0]
		return lease.Spend(ctx, n)
	}
	flush := func() error {
		if err := write(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if mode == wire.SSE {
		buf = append(buf, "retry: 1000\n\n"...)
	}
	for _, s := range st.Skipped {
		buf = enc.Skipped(buf, pos.cursor(), s)
	}
	// A heartbeat right away gives the client the start cursor even before any record.
	buf = enc.Heartbeat(buf, pos.cursor(), g.now())
	if flush() != nil {
		return
	}

	// The poller runs ahead of the writer by one batch, so fetching overlaps writing.
	batches := make(chan kgo.Fetches)
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		defer close(batches)
		for {
			fs := cl.PollFetches(pctx)
			if pctx.Err() != nil {
				return
			}
			select {
			case batches <- fs:
			case <-pctx.Done():
				return
			}
		}
	}()
	defer func() {
		stopPoll()
		for range batches { //nolint:revive // drain so the poller exits before cl.Close
		}
	}()

	filter := g.filter(q, l.Filter)
	sent := 0
	heartbeat := time.NewTicker(g.cfg.Heartbeat)
	defer heartbeat.Stop()
	recheck := time.NewTicker(g.cfg.AuthRecheck)
	defer recheck.Stop()
	var hidden [len(live.Reasons)]int
	defer func() {
		for i, n := range hidden {
			if n > 0 && i != int(live.Show) {
				g.m.recordsHidden.WithLabelValues(live.Reasons[i]).Add(float64(n))
			}
		}
		g.m.recordsSent.Add(float64(hidden[live.Show]))
	}()
	end := func(reason string, p *problem.Error) {
		var pj []byte
		if p != nil {
			pj, _ = json.Marshal(map[string]any{"status": p.Status, "code": p.Code, "detail": p.Detail})
			q.code = p.Code
		}
		buf = enc.End(buf, reason, pj)
		_ = flush()
	}
	for {
		select {
		case fs, ok := <-batches:
			if !ok {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) {
					g.log.Warn("stream fetch", "topic", t, "partition", p, "err", err)
				}
			})
			done := false
			var writeErr error
			fs.EachRecord(func(r *kgo.Record) {
				if done {
					return
				}
				gap, hasGap, fresh := pos.visit(r)
				if !fresh {
					return
				}
				if hasGap {
					g.m.retentionSkip.Add(float64(gap.Count))
					// The skip's cursor is the position before this record.
					pos.pos.Offsets[r.Partition] = r.Offset
					pos.dirty = true
					buf = enc.Skipped(buf, pos.cursor(), gap)
					pos.pos.Offsets[r.Partition] = r.Offset + 1
					pos.dirty = true
				}
				v, value := judge(filter, r, &scratch)
				hidden[v]++
				if v != live.Show {
					return
				}
				buf = enc.Record(buf, pos.cursor(), r.Partition, r.Offset, value)
				sent++
				if l.Limit > 0 && sent >= l.Limit {
					done = true
				}
				if len(buf) >= writeChunk {
					if writeErr = write(); writeErr != nil {
						done = true
					}
				}
			})
			if writeErr != nil {
				return
			}
			if done {
				end("limit", nil)
				return
			}
			if flush() != nil {
				return
			}
		case <-heartbeat.C:
			buf = enc.Heartbeat(buf, pos.cursor(), g.now())
			if flush() != nil {
				return
			}
		case <-recheck.C:
			if err := g.auth.Recheck(ctx, q.principal, q.namespace); err != nil {
				end("unauthorized", authProblem(err))
				return
			}
		case <-g.stopping:
			end("shutdown", nil)
			return
		case <-ctx.Done():
			return
		}
	}
}

// pageBody is the JSON page.
type pageBody struct {
	Records    []json.RawMessage `json:"records"`
	NextCursor string            `json:"next_cursor"`
	// CaughtUp says the page reached the end of the topic as of the request.
	CaughtUp bool        `json:"caught_up"`
	Skipped  []live.Skip `json:"skipped,omitempty"`
	// StartCursor is where the page began (the resolved from/cursor), StartOffsets the same
	// position per partition, LogStartOffsets each partition's log start then: offsets below
	// it are gone from Kafka (retention) and only the archive has them. A client joining the
	// archive to Kafka reads the archive with before=StartCursor (docs/api.md, the seam).
	StartCursor     string  `json:"start_cursor"`
	StartOffsets    []int64 `json:"start_offsets"`
	LogStartOffsets []int64 `json:"log_start_offsets"`
}

// servePage returns up to limit records after the cursor, stopping at the topic's end as of
// the request (it does not wait for new records) or PageWait after the first records came. A
// page that knows records exist and got none of them within FirstFetchWait (a consumer that
// has not fetched yet: metadata, a leader moving, Kafka slow) is 503 with Retry-After, never an
// empty 200 page, which would read as "nothing there".
func (g *Gateway) servePage(q *request, lease *limits.Lease, l params.Logs) {
	limit := l.Limit
	if limit == 0 {
		limit = params.DefaultLimit
	}
	topic, st, ok := g.resolve(q, l.Start, params.StartEarliest)
	if !ok {
		return
	}
	pos := &position{pos: st.Pos.Clone()}
	body := pageBody{Records: []json.RawMessage{}, Skipped: st.Skipped, StartCursor: st.Pos.String(),
		StartOffsets: st.Pos.Offsets, LogStartOffsets: st.LogStart}
	caughtUp := func() bool {
		for p, o := range pos.pos.Offsets {
			if o < st.End[p] {
				return false
			}
		}
		return true
	}
	if !caughtUp() {
		cl, err := g.reader.Open(topic, st.Pos)
		if err != nil {
			q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "Kafka is unavailable; retry shortly", RetryAfter: 2})
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithCancel(q.r.Context())
		defer cancel()
		wait := time.AfterFunc(g.cfg.FirstFetchWait, cancel)
		defer wait.Stop()
		filter := g.filter(q, l.Filter)
		var scratch bytes.Buffer
		size := 0
		full, fetched := false, false
		var fetchErr error
		var hidden [len(live.Reasons)]int
		for !full && !caughtUp() && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && fetchErr == nil {
					fetchErr = fmt.Errorf("partition %d of %s: %w", p, t, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				if full {
					return
				}
				gap, hasGap, fresh := pos.visit(r)
				if !fresh {
					return
				}
				if !fetched {
					fetched = true
					if wait.Stop() { // (false: FirstFetchWait passed as the records came)
						wait.Reset(g.cfg.PageWait)
					}
				}
				if hasGap {
					g.m.retentionSkip.Add(float64(gap.Count))
					body.Skipped = append(body.Skipped, gap)
				}
				v, value := judge(filter, r, &scratch)
				hidden[v]++
				if v != live.Show {
					return
				}
				body.Records = append(body.Records, append(json.RawMessage(nil), value...))
				size += len(value)
				full = len(body.Records) >= limit || size >= g.cfg.MaxPageBytes
			})
		}
		for i, n := range hidden {
			if n > 0 && i != int(live.Show) {
				g.m.recordsHidden.WithLabelValues(live.Reasons[i]).Add(float64(n))
			}
		}
		g.m.recordsSent.Add(float64(hidden[live.Show]))
		if !fetched && !caughtUp() && q.r.Context().Err() == nil {
			detail := fmt.Sprintf("the records of %s after the cursor could not be read within %s; retry shortly", topic, g.cfg.FirstFetchWait)
			if fetchErr != nil {
				detail += " (" + fetchErr.Error() + ")"
			}
			g.log.Warn("page: no records fetched", "topic", topic, "wait", g.cfg.FirstFetchWait.String(), "err", fetchErr)
			q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: detail, RetryAfter: 1})
			return
		}
	}
	body.CaughtUp = caughtUp()
	body.NextCursor = pos.pos.String()
	out, err := json.Marshal(body)
	if err != nil {
		q.fail(problem.New(http.StatusInternalServerError, problem.CodeInternal, "encoding the page failed"))
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = q.w.Write(append(out, '\n'))
	_ = lease.Spend(q.r.Context(), len(out))
}

// judge applies the request's filter to r and, for a record to show, returns its value cleaned
// for embedding (live.BadValue when it is not valid JSON).
func judge(filter *live.Filter, r *kgo.Record, scratch *bytes.Buffer) (live.Verdict, []byte) {
	v := filter.Check(r)
	if v != live.Show {
		return v, nil
	}
	value, ok := wire.CleanValue(r.Value, scratch)
	if !ok {
		return live.BadValue, nil
	}
	return v, value
}
