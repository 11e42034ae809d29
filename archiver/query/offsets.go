package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/archiver/row"
	"github.com/logrouter/logrouter/internal/record"
)

// OffsetRequest selects the archived records of one topic partition by Kafka offset,
// [From, To), whatever their time: what a reader lost to retention (a live stream's "skipped"
// gap). The objects are found through the archiver's claim chain, not by time.
type OffsetRequest struct {
	Namespace, Topic string
	Partition        int32
	From, To         int64
	Pod, Container   string         // "" = any
	Grep             *regexp.Regexp // nil = any
}

// OffsetStats says how far the archive covered an OffsetRequest.
type OffsetStats struct {
	// The archive held [First, Next) of [From, To): First is From unless the archive starts
	// later (offsets below First are lost), Next is To unless the archive does not hold the
	// rest yet (the archiver writes a partition's ranges in order). First == Next: nothing.
	First, Next                    int64
	ClaimsRead, ObjectsOpened      int64
	RecordsScanned, RecordsEmitted int64
}

// ErrBadOffsets: the request is not a range of one partition.
var ErrBadOffsets = errors.New("query: want a namespace, a topic, a partition >= 0 and offsets 0 <= from < to")

// RunOffsets streams the records of req in offset order to emit; it stops at the first emit
// error and returns it. Records the archive does not hold are not an error: Stats.Next says
// where coverage ended.
func (e *Engine) RunOffsets(ctx context.Context, req OffsetRequest, emit func(record.Record, Position) error) (OffsetStats, error) {
	st := OffsetStats{First: req.From, Next: req.From}
	if !layout.ValidNamespace(req.Namespace) || req.Topic == "" || req.Partition < 0 || req.From < 0 || req.From >= req.To {
		return st, ErrBadOffsets
	}
	dir := strings.TrimSuffix(layout.ClaimKey(e.prefix, req.Topic, req.Partition, 0), fmt.Sprintf("%020d.json", 0))
	start, ok, err := e.nearestClaim(ctx, dir, req.From, true)
	if err == nil && !ok {
		// No claim at or below From: the archive may start later in the range (the
		// archiver started after retention had deleted its beginning).
		if start, ok, err = e.nearestClaim(ctx, dir, req.From, false); ok && start < req.To {
			st.First = start
			st.Next = start
		}
	}
	if err != nil || !ok || start >= req.To {
		return st, err
	}
	for st.Next < req.To {
		c, err := e.claim(ctx, layout.ClaimKey(e.prefix, req.Topic, req.Partition, start))
		if err != nil || c == nil {
			return st, err // nil: the chain ends here (not archived yet)
		}
		st.ClaimsRead++
		if c.End < st.Next {
			st.First = st.Next // the chain ends below From: From is not archived (yet)
			return st, nil
		}
		for _, o := range c.Objects {
			if o.Namespace != req.Namespace {
				continue
			}
			if err := e.readClaimed(ctx, o, req, &st, emit); err != nil {
				return st, err
			}
		}
		st.Next = min(c.Next(), req.To)
		start = c.Next()
	}
	return st, nil
}

// readClaimed emits the records of one claimed object that req selects, in offset order.
func (e *Engine) readClaimed(ctx context.Context, co layout.ClaimObject, req OffsetRequest, st *OffsetStats, emit func(record.Record, Position) error) error {
	key := co.Key
	o, err := layout.ParseKey(e.prefix, key)
	if err != nil {
		return fmt.Errorf("claimed object %s: %w", key, err)
	}
	attrs, err := e.bucket.Attributes(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound && co.Staging != "" {
		// Claimed but not published yet (its writer died in between; the partition's next
		// owner publishes it): the claim names the staged copy, which holds the same bytes.
		key = co.Staging
		attrs, err = e.bucket.Attributes(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("attributes of %s: %w", key, err)
	}
	st.ObjectsOpened++
	var rows []row.Row
	match := func(r *row.Row) error {
		st.RecordsScanned++
		if r.KafkaTopic != req.Topic || r.KafkaPartition != req.Partition || r.KafkaOffset < st.Next || r.KafkaOffset >= req.To ||
			r.Namespace != req.Namespace ||
			req.Pod != "" && r.Pod != req.Pod ||
			req.Container != "" && r.Container != req.Container ||
			req.Grep != nil && !req.Grep.MatchString(r.Message) {
			return nil
		}
		if len(rows) >= e.maxBuffered {
			return fmt.Errorf("%w (more than %d in %s)", ErrTooManyRecords, e.maxBuffered, key)
		}
		rows = append(rows, *r)
		return nil
	}
	c := candidate{key: key, obj: o, size: attrs.Size, stats: objectformat.ParseMetadata(attrs.Metadata)}
	if err := e.read(ctx, c, math.MinInt64, math.MaxInt64, match); err != nil {
		return err
	}
	slices.SortFunc(rows, func(a, b row.Row) int { return cmp.Compare(a.KafkaOffset, b.KafkaOffset) })
	for i := range rows {
		st.RecordsEmitted++
		if err := emit(rows[i].Record(), Position{Topic: rows[i].KafkaTopic, Partition: rows[i].KafkaPartition, Offset: rows[i].KafkaOffset}); err != nil {
			return err
		}
	}
	return nil
}

// claim reads one claim; nil when there is none.
func (e *Engine) claim(ctx context.Context, key string) (*layout.Claim, error) {
	b, err := e.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claim %s: %w", key, err)
	}
	c, err := layout.DecodeClaim(b)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", key, err)
	}
	return &c, nil
}

// nearestClaim finds the greatest claimed start offset <= off under dir (down), or the least
// >= off (up). Claim names are 20-digit zero-padded offsets, so it walks the digits: the
// longest prefix shared with off that has a smaller (larger) digit next, then the largest
// (smallest) name under it. Each step is a listing that stops at its first key, so the cost is
// bounded by the digits (at most a few hundred small listings, a handful in practice) and
// never by how many claims the partition has.
func (e *Engine) nearestClaim(ctx context.Context, dir string, off int64, down bool) (int64, bool, error) {
	digits := fmt.Sprintf("%020d", off)
	if ok, err := e.bucket.Exists(ctx, dir+digits+".json"); err != nil || ok {
		return off, ok, err
	}
	// next yields the digits after d in the walk's direction.
	next := func(d byte, down bool) (byte, bool) {
		if down {
			return d - 1, d > '0'
		}
		return d + 1, d < '9'
	}
	for i := len(digits) - 1; i >= 0; i-- {
		for d, more := next(digits[i], down); more; d, more = next(d, down) {
			p := digits[:i] + string(d)
			ok, err := e.anyClaim(ctx, dir, p)
			if err != nil {
				return 0, false, err
			}
			if !ok {
				continue
			}
			// The extreme name under p: from 9 down (largest) or 0 up (smallest).
			for len(p) < len(digits) {
				found := false
				d, more := byte('9'), true
				if !down {
					d = '0'
				}
				for ; more; d, more = next(d, down) {
					if ok, err := e.anyClaim(ctx, dir, p+string(d)); err != nil {
						return 0, false, err
					} else if ok {
						p, found = p+string(d), true
						break
					}
				}
				if !found {
					return 0, false, fmt.Errorf("claims under %s%s vanished while listed", dir, p)
				}
			}
			n, err := strconv.ParseInt(p, 10, 64)
			return n, err == nil, err
		}
	}
	return 0, false, nil
}

// anyClaim reports whether a claim name under dir starts with prefix.
func (e *Engine) anyClaim(ctx context.Context, dir, prefix string) (bool, error) {
	it := e.bucket.List(&blob.ListOptions{Prefix: dir + prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("list %s%s: %w", dir, prefix, err)
		}
		name := strings.TrimPrefix(obj.Key, dir)
		if len(name) == 20+len(".json") && strings.HasSuffix(name, ".json") {
			return true, nil
		}
	}
}
