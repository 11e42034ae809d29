// Package live reads a namespace's topic for one request: it resolves where to start (earliest,
// latest, a time, or a client's cursor) to exact per-partition offsets, and opens a direct
// (group-less) franz-go consumer at those offsets. Nothing outlives the request: no consumer
// group, no server-side session, so any gateway replica can serve any request.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/internal/record"
)

// Errors callers branch on.
var (
	ErrNoTopic     = errors.New("no logs have been produced for this namespace yet")
	ErrBadCursor   = errors.New("invalid cursor")
	ErrCursorAhead = errors.New("cursor is ahead of the topic")
	ErrUnavailable = errors.New("kafka unavailable")
)

// Reader resolves positions with a shared admin client and opens per-request consumers.
type Reader struct {
	opts []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
}

// NewReader returns a reader whose clients use opts (seed brokers, TLS, SASL).
func NewReader(opts []kgo.Opt) (*Reader, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("live reader: %w", err)
	}
	return &Reader{opts: opts, cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close releases the shared client.
func (r *Reader) Close() { r.cl.Close() }

// Skip reports records that retention deleted before the reader got to them: offsets
// [From, To) of Partition.
type Skip struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from"`
	To        int64 `json:"to"`
	Count     int64 `json:"count"`
}

// Start is a resolved starting position.
type Start struct {
	Pos     cursor.Cursor
	Skipped []Skip
	// End holds each partition's end offset when the position was resolved: a page is complete
	// when it reaches them.
	End []int64
	// LogStart holds each partition's log start offset then: what retention has not deleted.
	LogStart []int64
}

// Resolve turns s into exact offsets for topic. dflt is used when s.Kind is StartDefault.
func (r *Reader) Resolve(ctx context.Context, topic string, s params.Start, dflt params.StartKind) (Start, error) {
	starts, err := r.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return Start{}, fmt.Errorf("%w: list start offsets: %w", ErrUnavailable, err)
	}
	if err := listedErr(starts, topic); err != nil {
		return Start{}, err
	}
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return Start{}, fmt.Errorf("%w: list end offsets: %w", ErrUnavailable, err)
	}
	if err := listedErr(ends, topic); err != nil {
		return Start{}, err
	}
	n := len(starts[topic])
	lo, hi := make([]int64, n), make([]int64, n)
	for p := range n {
		so, ok1 := starts.Lookup(topic, int32(p))
		eo, ok2 := ends.Lookup(topic, int32(p))
		if !ok1 || !ok2 {
			return Start{}, fmt.Errorf("%w: partition %d missing from offset listing", ErrUnavailable, p)
		}
		lo[p], hi[p] = so.Offset, eo.Offset
	}
	st := Start{Pos: cursor.New(topic, n), End: hi, LogStart: lo}
	kind := s.Kind
	if kind == params.StartDefault {
		kind = dflt
	}
	switch kind {
	case params.StartEarliest:
		copy(st.Pos.Offsets, lo)
	case params.StartLatest:
		copy(st.Pos.Offsets, hi)
	case params.StartTime:
		at, err := r.adm.ListOffsetsAfterMilli(ctx, s.Time.UnixMilli(), topic)
		if err != nil {
			return Start{}, fmt.Errorf("%w: list offsets after time: %w", ErrUnavailable, err)
		}
		if err := listedErr(at, topic); err != nil {
			return Start{}, err
		}
		for p := range n {
			o, ok := at.Lookup(topic, int32(p))
			if !ok || o.Offset < 0 {
				st.Pos.Offsets[p] = hi[p]
			} else {
				st.Pos.Offsets[p] = min(max(o.Offset, lo[p]), hi[p])
			}
		}
	case params.StartCursor:
		c, err := cursor.DecodeFor(s.Cursor, topic)
		if err != nil {
			return Start{}, fmt.Errorf("%w: %w", ErrBadCursor, err)
		}
		for p := range n {
			o := int64(-1)
			if p < len(c.Offsets) {
				o = c.Offsets[p]
			}
			switch {
			case o < 0: // a partition added after the cursor was issued: all of it is new
				st.Pos.Offsets[p] = lo[p]
			case o > hi[p]:
				return Start{}, fmt.Errorf("%w: partition %d offset %d, end is %d", ErrCursorAhead, p, o, hi[p])
			case o < lo[p]:
				st.Skipped = append(st.Skipped, Skip{Partition: int32(p), From: o, To: lo[p], Count: lo[p] - o})
				st.Pos.Offsets[p] = lo[p]
			default:
				st.Pos.Offsets[p] = o
			}
		}
	default:
		return Start{}, fmt.Errorf("live: unknown start kind %d", kind)
	}
	return st, nil
}

func listedErr(l kadm.ListedOffsets, topic string) error {
	ps, ok := l[topic]
	if !ok || len(ps) == 0 {
		return ErrNoTopic
	}
	for _, o := range ps {
		if o.Err != nil {
			if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				return ErrNoTopic
			}
			return fmt.Errorf("%w: partition %d: %w", ErrUnavailable, o.Partition, o.Err)
		}
	}
	return nil
}

// Open starts a direct consumer of topic at pos. Close it when the request ends.
func (r *Reader) Open(topic string, pos cursor.Cursor) (*kgo.Client, error) {
	offs := make(map[int32]kgo.Offset, len(pos.Offsets))
	for p, o := range pos.Offsets {
		offs[int32(p)] = kgo.NewOffset().At(o)
	}
	opts := append(append([]kgo.Opt(nil), r.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		// Retention overtaking a slow reader resets it to the log start; the caller sees the
		// jump and reports it as skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Bounded per request: a hundred open streams must not buffer gigabytes.
		kgo.FetchMaxBytes(1<<20),
		kgo.FetchMaxPartitionBytes(512<<10),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("open consumer: %w", err)
	}
	return cl, nil
}

// Filter selects the records a request may see and asked for.
type Filter struct {
	// Namespace is the request's namespace: records whose namespace header differs are never
	// shown, whatever topic they are in (a topic template may put several namespaces in one).
	Namespace string
	Pod       string
	Container string
	Grep      *regexp.Regexp
}

// Verdict says why a record is not shown.
type Verdict int

// Verdicts.
const (
	Show Verdict = iota
	Filtered
	ForeignNamespace
	BadSchema
	BadValue
)

// Reasons are metric label values per verdict.
var Reasons = [...]string{Show: "shown", Filtered: "filtered", ForeignNamespace: "foreign_namespace", BadSchema: "bad_schema", BadValue: "bad_value"}

// Check classifies r. Routing fields come from headers, so only grep parses the value.
func (f *Filter) Check(r *kgo.Record) Verdict {
	var ns, pod, ctr, schema []byte
	for i := range r.Headers {
		h := &r.Headers[i]
		switch h.Key {
		case record.HeaderNamespace:
			ns = h.Value
		case record.HeaderPod:
			pod = h.Value
		case record.HeaderContainer:
			ctr = h.Value
		case record.HeaderSchema:
			schema = h.Value
		}
	}
	if string(ns) != f.Namespace {
		return ForeignNamespace
	}
	if !record.SupportedSchemaHeader(schema) {
		return BadSchema
	}
	if f.Pod != "" && string(pod) != f.Pod || f.Container != "" && string(ctr) != f.Container {
		return Filtered
	}
	if f.Grep != nil {
		var m struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			return BadValue
		}
		if !f.Grep.MatchString(m.Message) {
			return Filtered
		}
	}
	return Show
}
