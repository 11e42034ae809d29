// Package query reads the archive the archiver writes: it finds the objects of one namespace
// and time range by their partition path and per-object statistics, and streams the matching
// records in time order. The CLI (logrouter query) and the gateway share it.
package query

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/internal/record"
)

// Request selects records. Since and Until bound the record's own time (its "ts"), [Since, Until).
type Request struct {
	Namespace string
	// Topic, if set, reads only the objects of this Kafka topic (the namespace's topic or one
	// of its suffix topics, which share the namespace's partition directories); "" reads all.
	Topic          string
	Since, Until   time.Time      // [Since, Until)
	Pod, Container string         // "" = any
	Grep           *regexp.Regexp // nil = any; matched against the message
	// Before, if not nil, keeps only records of Topic below a Kafka position: partition p's
	// records at offsets below Before[p] (none of partitions at or past len(Before)). A reader
	// that continues from Kafka at those offsets gets each record exactly once; objects wholly
	// at or after the position are not opened. Needs Topic.
	Before []int64
}

// Position is where an archived record was in Kafka.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Stats says how much work a query did; ObjectsOpened is what pruning saves.
type Stats struct {
	ObjectsListed, ObjectsOpened, RecordsScanned, RecordsMatched int64
	// Outside tells whether records of the range may lie in hours the query did not read.
	Outside Outside
}

// Outside is evidence, from object statistics, that records of a query's range may lie
// outside the Kafka-time hours it read, because their own time is further from their Kafka
// time than the engine's look-behind (WithLookbehind) or look-ahead (WithLookahead) allows: a
// node clock running ahead, an application stamping future times, lines shipped very late.
// The engine reads the hours it is told to; it checks the hour on either side of them, and the
// statistics of every object it lists, for such records.
type Outside struct {
	// Unread counts objects in the hour just before or just after the hours read whose
	// statistics show records inside the range: they were not read.
	Unread int64
	// Lookbehind and Lookahead are the smallest whole hours that cover the records seen
	// (0: the engine's own value does).
	Lookbehind, Lookahead time.Duration
}

// Any reports whether some records of the range may have been missed.
func (o Outside) Any() bool { return o.Unread > 0 || o.Lookbehind > 0 || o.Lookahead > 0 }

// Engine runs queries against one archive (bucket and prefix). It is safe for concurrent use.
type Engine struct {
	bucket *blob.Bucket
	prefix string
	// lookahead is how much later than a record's own time it may have been archived: the
	// archive is partitioned by Kafka time, which runs behind the lines' time by the
	// collector's delay.
	lookahead time.Duration
	// lookbehind covers clocks of collector nodes that run ahead of the broker's.
	lookbehind time.Duration
	log        *slog.Logger
	// maxBuffered bounds the matching records held for ordering (see WithMaxBufferedRecords).
	maxBuffered int
}

// Option configures an Engine.
type Option func(*Engine)

// WithLookahead sets how long after a line's time it may have reached Kafka (default 6h): a
// query over [Since, Until) reads the partitions of [Since-lookbehind, Until+lookahead).
func WithLookahead(d time.Duration) Option { return func(e *Engine) { e.lookahead = d } }

// WithLookbehind sets how far a line's time may be ahead of its Kafka time (default 1h): a
// query over [Since, Until) also reads the partitions of the look-behind before Since.
func WithLookbehind(d time.Duration) Option { return func(e *Engine) { e.lookbehind = d } }

// WithMaxBufferedRecords bounds how many matching records the engine holds to put them in time
// order (default 1,000,000). Records are held while objects whose time ranges overlap are read;
// a query that would need more fails with ErrTooManyRecords instead of growing without bound.
func WithMaxBufferedRecords(n int) Option { return func(e *Engine) { e.maxBuffered = n } }

// WithLogger sets the logger for skipped objects.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New returns an engine over the archive under prefix ("" or "a/b") in bucket.
func New(bucket *blob.Bucket, prefix string, opts ...Option) *Engine {
	e := &Engine{bucket: bucket, prefix: prefix, lookahead: 6 * time.Hour, lookbehind: time.Hour, log: slog.New(slog.DiscardHandler), maxBuffered: 1_000_000}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Errors for requests a caller can fix.
var (
	ErrNoNamespace = errors.New("query: namespace is required")
	ErrBadRange    = errors.New("query: since must be before until")
	// ErrTooManyRecords means ordering the result needed more than the buffer bound: narrow the
	// time range or add a pod, container or grep filter.
	ErrTooManyRecords = errors.New("query: too many matching records in overlapping objects to order; narrow the query")
)

// Run streams matching records in time order to emit; it stops at the first emit error and returns it.
func (e *Engine) Run(ctx context.Context, req Request, emit func(record.Record) error) (Stats, error) {
	return e.run(ctx, req, func(r record.Record, _ Position) error { return emit(r) })
}

// RunPositioned is Run with each record's Kafka position.
func (e *Engine) RunPositioned(ctx context.Context, req Request, emit func(record.Record, Position) error) (Stats, error) {
	return e.run(ctx, req, emit)
}
