package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/limits"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/archiver/query"
	"github.com/logrouter/logrouter/internal/record"
)

var errArchiveLimit = errors.New("archive limit reached")

// serveArchive streams archived records as NDJSON lines
// {"type":"record","partition":P,"offset":O,"record":{...}} in time order (by position: offset
// order), ended by {"type":"end","reason":"complete"|"limit"|"incomplete"|"error",...}: a
// stream without the end line was cut off.
func (g *Gateway) serveArchive(q *request, lease *limits.Lease, a params.Archive) {
	if g.engine == nil {
		q.fail(problem.New(http.StatusNotFound, problem.CodeArchiveDisabled, "this gateway has no archive configured (--bucket)"))
		return
	}
	var before []int64
	if a.Before != "" {
		c, err := cursor.DecodeFor(a.Before, q.topic)
		if err != nil {
			q.fail(&problem.Error{Status: http.StatusBadRequest, Code: problem.CodeInvalidCursor, Detail: "before: " + err.Error() + "; use a cursor the logs endpoint returned for this namespace (a page's start_cursor)", Param: "before"})
			return
		}
		before = c.Offsets
		for i, o := range before {
			before[i] = max(o, 0) // an unknown position has nothing before it
		}
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(q.w)
	ctx := q.r.Context()
	var buf []byte
	started := false
	flush := func() error {
		if !started {
			q.w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
		if _, err := q.w.Write(buf); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		n := len(buf)
		buf = buf[:0]
		return lease.Spend(ctx, n)
	}
	sent := 0
	emit := func(r record.Record, at query.Position) error {
		if r.Namespace != q.namespace { // defense in depth: never another namespace's record
			g.m.recordsHidden.WithLabelValues("foreign_namespace").Inc()
			return nil
		}
		v, err := json.Marshal(r)
		if err != nil {
			g.m.recordsHidden.WithLabelValues("bad_value").Inc()
			return nil
		}
		// The same shape as the live endpoint's NDJSON records, without a cursor: partition and
		// offset in the namespace's (or suffix) topic.
		buf = append(buf, `{"type":"record","partition":`...)
		buf = strconv.AppendInt(buf, int64(at.Partition), 10)
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendInt(buf, at.Offset, 10)
		buf = append(buf, `,"record":`...)
		buf = append(buf, v...)
		buf = append(buf, '}', '\n')
		sent++
		g.m.recordsSent.Inc()
		if len(buf) >= 64<<10 {
			if err := flush(); err != nil {
				return err
			}
		}
		if a.Limit > 0 && sent >= a.Limit {
			return errArchiveLimit
		}
		return nil
	}
	reason := "complete"
	var stats query.Stats
	var err error
	var archived *query.OffsetStats
	if o := a.Offsets; o != nil {
		// By position: the records of a skipped event, found through the claim chain.
		var ost query.OffsetStats
		ost, err = g.engine.RunOffsets(ctx, query.OffsetRequest{Namespace: q.namespace, Topic: q.topic, Partition: o.Partition, From: o.From, To: o.To,
			Pod: a.Filter.Pod, Container: a.Filter.Container, Grep: a.Filter.Grep}, emit)
		archived = &ost
		stats = query.Stats{ObjectsOpened: ost.ObjectsOpened, RecordsScanned: ost.RecordsScanned}
		if ost.First != o.From || ost.Next != o.To {
			reason = "incomplete"
		}
	} else {
		// Topic: the archive keeps a namespace's suffix topics in its partitions too; serve the
		// one topic asked for, as the live endpoint does.
		req := query.Request{Namespace: q.namespace, Topic: q.topic, Since: a.Since, Until: a.Until, Pod: a.Filter.Pod, Container: a.Filter.Container, Grep: a.Filter.Grep, Before: before}
		stats, err = g.engine.RunPositioned(ctx, req, emit)
	}
	switch {
	case errors.Is(err, errArchiveLimit):
		reason = "limit"
	case err != nil && ctx.Err() != nil:
		return // the client left
	case err != nil:
		g.m.archiveErrors.Inc()
		g.log.Warn("archive query", "namespace", q.namespace, "err", err)
		if !started {
			buf = buf[:0]
			q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "the archive could not be read; retry shortly", RetryAfter: 5})
			return
		}
		q.code = problem.CodeUnavailable
		buf = append(buf, `{"type":"end","reason":"error","problem":{"status":503,"code":"unavailable","detail":"the archive could not be read; retry with since set after the last record received"}}`+"\n"...)
		_ = flush()
		return
	}
	buf = append(buf, `{"type":"end","reason":"`...)
	buf = append(buf, reason...)
	buf = append(buf, '"', ',')
	if archived != nil {
		// Which part of [from_offset, to_offset) the archive held: the rest is lost (below
		// from) or not archived yet (from to on).
		buf = append(buf, `"archived":{"from":`...)
		buf = strconv.AppendInt(buf, archived.First, 10)
		buf = append(buf, `,"to":`...)
		buf = strconv.AppendInt(buf, archived.Next, 10)
		buf = append(buf, `},`...)
	}
	buf = append(buf, `"stats":{"objects_listed":`...)
	buf = strconv.AppendInt(buf, stats.ObjectsListed, 10)
	buf = append(buf, `,"objects_opened":`...)
	buf = strconv.AppendInt(buf, stats.ObjectsOpened, 10)
	buf = append(buf, `,"records_scanned":`...)
	buf = strconv.AppendInt(buf, stats.RecordsScanned, 10)
	buf = append(buf, `,"records_sent":`...)
	buf = strconv.AppendInt(buf, int64(sent), 10)
	buf = append(buf, "}}\n"...)
	_ = flush()
}
