package query

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/archiver/row"
	"github.com/logrouter/logrouter/internal/record"
)

// candidate is an object that survived path pruning.
type candidate struct {
	key   string
	obj   layout.Object
	size  int64
	stats objectformat.ObjectStats
	// lo is the earliest record time the object may hold: its statistics, or what its
	// partition hour allows when it has none.
	lo time.Time
}

func (e *Engine) validate(req Request) error {
	var errs []error
	if req.Namespace == "" {
		errs = append(errs, ErrNoNamespace)
	} else if !layout.ValidNamespace(req.Namespace) {
		errs = append(errs, fmt.Errorf("query: namespace %q is not a Kubernetes namespace name", req.Namespace))
	}
	if req.Since.IsZero() || req.Until.IsZero() || !req.Since.Before(req.Until) {
		errs = append(errs, ErrBadRange)
	}
	if req.Before != nil && req.Topic == "" {
		errs = append(errs, errors.New("query: before needs a topic"))
	}
	return errors.Join(errs...)
}

func (e *Engine) run(ctx context.Context, req Request, emit func(record.Record, Position) error) (Stats, error) {
	var st Stats
	if err := e.validate(req); err != nil {
		return st, err
	}
	cands, err := e.candidates(ctx, req, &st)
	if err != nil {
		return st, err
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := a.lo.Compare(b.lo); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	since, until := req.Since.UnixMicro(), req.Until.UnixMicro()
	h := &rowHeap{}
	match := func(r *row.Row) error {
		st.RecordsScanned++
		if r.Time < since || r.Time >= until ||
			req.Pod != "" && r.Pod != req.Pod ||
			req.Container != "" && r.Container != req.Container ||
			req.Grep != nil && !req.Grep.MatchString(r.Message) ||
			req.Before != nil && !below(req.Before, r.KafkaPartition, r.KafkaOffset) {
			return nil
		}
		if h.Len() >= e.maxBuffered {
			return fmt.Errorf("%w (more than %d)", ErrTooManyRecords, e.maxBuffered)
		}
		heap.Push(h, *r)
		return nil
	}
	for i, c := range cands {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.ObjectsOpened++
		if err := e.read(ctx, c, since, until, match); err != nil {
			return st, err
		}
		// Every later object starts at or after bound, so everything before it is final.
		bound := int64(1<<63 - 1)
		if i+1 < len(cands) {
			bound = cands[i+1].lo.UnixMicro()
		}
		for h.Len() > 0 && (*h)[0].Time < bound {
			r := heap.Pop(h).(row.Row)
			st.RecordsMatched++
			if err := emit(r.Record(), Position{Topic: r.KafkaTopic, Partition: r.KafkaPartition, Offset: r.KafkaOffset}); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// candidates lists the partitions the range can touch and keeps the objects whose statistics
// may hold a match.
func (e *Engine) candidates(ctx context.Context, req Request, st *Stats) ([]candidate, error) {
	from := req.Since.Add(-e.lookbehind).UTC().Truncate(time.Hour)
	to := req.Until.Add(e.lookahead).UTC() // hours starting before this
	nsDir := layout.Join(e.prefix, layout.NamespaceDir(req.Namespace))
	days, err := e.dirs(ctx, nsDir, "dt=")
	if err != nil {
		return nil, err
	}
	// The hour on either side of the range read is checked too (statistics only), so that a
	// look-behind or look-ahead too short for this archive is said, not silently applied.
	before, after := from.Add(-time.Hour), to.Add(time.Hour)
	var out []candidate
	for _, day := range days {
		d, err := time.Parse("2006-01-02", day)
		if err != nil || !d.Before(after) || !d.Add(24*time.Hour).After(before) {
			continue
		}
		hours, err := e.dirs(ctx, nsDir+"dt="+day+"/", "hour=")
		if err != nil {
			return nil, err
		}
		for _, hh := range hours {
			var n int
			if _, err := fmt.Sscanf(hh, "%02d", &n); err != nil || len(hh) != 2 {
				continue
			}
			hour := d.Add(time.Duration(n) * time.Hour)
			dir := layout.Join(e.prefix, layout.HourDir(req.Namespace, hour))
			switch {
			case !hour.Before(from) && hour.Before(to):
				cs, err := e.listHour(ctx, req, dir, hour, st)
				if err != nil {
					return nil, err
				}
				out = append(out, cs...)
			case !hour.Before(before) && hour.Before(after):
				if err := e.checkHour(ctx, req, dir, hour, st); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// below reports whether offset o of partition p is before the position before.
func below(before []int64, p int32, o int64) bool {
	return int(p) < len(before) && p >= 0 && o < before[p]
}

// ceilHours is the smallest whole number of hours above d.
func ceilHours(d time.Duration) time.Duration { return (d/time.Hour + 1) * time.Hour }

// skew notes, from an object's statistics, records that some query would miss. A record of
// own time T in the object of hour H is read by a query from since=T only if
// trunc(T-lookbehind) <= H, and by one until just after T only if H < T+lookahead. MaxTime
// beyond H+1h+lookbehind, or MinTime before H-lookahead, proves such a record exists; an archive
// whose records all obey the bounds never sets them.
func (e *Engine) skew(s objectformat.ObjectStats, hour time.Time, st *Stats) {
	if !s.Known {
		return
	}
	if ahead := s.MaxTime.Sub(hour.Add(time.Hour)); ahead > e.lookbehind {
		// A query from MaxTime reads this hour once since-lookbehind < hour+1h.
		st.Outside.Lookbehind = max(st.Outside.Lookbehind, ceilHours(ahead))
	}
	if late := hour.Sub(s.MinTime); late > e.lookahead {
		// A query until just after MinTime reads this hour once until+lookahead > hour.
		st.Outside.Lookahead = max(st.Outside.Lookahead, ceilHours(late))
	}
}

// checkHour looks at the statistics of the objects of an hour next to the ones read: objects
// holding records of the range were missed.
func (e *Engine) checkHour(ctx context.Context, req Request, dir string, hour time.Time, st *Stats) error {
	it := e.bucket.List(&blob.ListOptions{Prefix: dir})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		if o, err := layout.ParseKey(e.prefix, obj.Key); err != nil || req.Topic != "" && o.Topic != req.Topic {
			continue
		}
		attrs, err := e.bucket.Attributes(ctx, obj.Key)
		if err != nil {
			return fmt.Errorf("attributes of %s: %w", obj.Key, err)
		}
		s := objectformat.ParseMetadata(attrs.Metadata)
		e.skew(s, hour, st)
		if !s.Known || s.MaxTime.Before(req.Since) || !s.MinTime.Before(req.Until) {
			continue
		}
		st.Outside.Unread++
		if hour.Before(req.Since) {
			// The hour is read once since-lookbehind falls inside it.
			st.Outside.Lookbehind = max(st.Outside.Lookbehind, ceilHours(req.Since.Sub(hour.Add(time.Hour))))
		} else {
			// The hour is read once until+lookahead passes its start.
			st.Outside.Lookahead = max(st.Outside.Lookahead, ceilHours(hour.Sub(req.Until)))
		}
	}
}

// dirs lists the names after want= of the directories directly under dir.
func (e *Engine) dirs(ctx context.Context, dir, want string) ([]string, error) {
	it := e.bucket.List(&blob.ListOptions{Prefix: dir, Delimiter: "/"})
	var out []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		if !obj.IsDir {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, dir), "/")
		if v, ok := strings.CutPrefix(name, want); ok {
			out = append(out, v)
		}
	}
}

func (e *Engine) listHour(ctx context.Context, req Request, dir string, hour time.Time, st *Stats) ([]candidate, error) {
	it := e.bucket.List(&blob.ListOptions{Prefix: dir})
	var out []candidate
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		o, err := layout.ParseKey(e.prefix, obj.Key)
		if err != nil {
			continue // not a data object (a stray file in the partition)
		}
		if req.Topic != "" && o.Topic != req.Topic {
			continue // another topic of the namespace (a suffix topic, or the plain one)
		}
		if req.Before != nil && !below(req.Before, o.Partition, o.Start) {
			continue // every record of the object is at or after the position
		}
		st.ObjectsListed++
		attrs, err := e.bucket.Attributes(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("attributes of %s: %w", obj.Key, err)
		}
		c := candidate{key: obj.Key, obj: o, size: obj.Size, stats: objectformat.ParseMetadata(attrs.Metadata), lo: hour.Add(-e.lookahead)}
		e.skew(c.stats, hour, st)
		if c.stats.Known {
			if !c.stats.MaxTime.After(req.Since.Add(-time.Microsecond)) || !c.stats.MinTime.Before(req.Until) {
				continue
			}
			if req.Pod != "" && c.stats.Pods != nil && !c.stats.Pods[req.Pod] {
				continue
			}
			c.lo = c.stats.MinTime
		}
		out = append(out, c)
	}
}

func (e *Engine) read(ctx context.Context, c candidate, lo, hi int64, match func(*row.Row) error) error {
	switch c.obj.Format {
	case layout.Parquet:
		ra := &rangeReaderAt{ctx: ctx, b: e.bucket, key: c.key}
		err := objectformat.ParquetRowsInRange(ra, c.size, lo, hi, func(rows []row.Row) error {
			for i := range rows {
				if err := match(&rows[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", c.key, err)
		}
		return nil
	case layout.NDJSON:
		r, err := e.bucket.NewReader(ctx, c.key, nil)
		if err != nil {
			return fmt.Errorf("open %s: %w", c.key, err)
		}
		defer r.Close()
		if err := objectformat.NDJSONRows(r, match); err != nil {
			return fmt.Errorf("read %s: %w", c.key, err)
		}
		return nil
	}
	return fmt.Errorf("read %s: unknown format", c.key)
}

// rangeReaderAt reads an object with ranged GETs, so Parquet reads only its footer and the
// column chunks it needs.
type rangeReaderAt struct {
	ctx context.Context
	b   *blob.Bucket
	key string
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rr, err := r.b.NewRangeReader(r.ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, err
	}
	defer rr.Close()
	n, err := io.ReadFull(rr, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// rowHeap orders rows by time, then Kafka position, so output is deterministic.
type rowHeap []row.Row

func (h rowHeap) Len() int { return len(h) }
func (h rowHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.Time != b.Time {
		return a.Time < b.Time
	}
	if a.KafkaTopic != b.KafkaTopic {
		return a.KafkaTopic < b.KafkaTopic
	}
	if a.KafkaPartition != b.KafkaPartition {
		return a.KafkaPartition < b.KafkaPartition
	}
	return a.KafkaOffset < b.KafkaOffset
}
func (h rowHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *rowHeap) Push(x any)   { *h = append(*h, x.(row.Row)) }
func (h *rowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = row.Row{}
	*h = old[:len(old)-1]
	return x
}
