package counters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/internal/topic"
)

// ErrGone is returned by a Write for a pipeline that does not exist (any more): the Fold
// stops writing it until new records about it arrive.
var ErrGone = errors.New("pipeline gone")

// Write stores a pipeline's sums (the controller: the LogPipeline's status.counters). at is
// the newest record time among the nodes' records.
type Write func(ctx context.Context, k Key, c Counts, at time.Time) error

// FoldConfig configures the controller's Fold.
type FoldConfig struct {
	// Topic defaults to topic.CountersTopic.
	Topic string
	// Interval: a pipeline's sums are written at most this often, and only when they changed
	// (default 10s).
	Interval time.Duration
	// Writers is how many writes run at once (default 8).
	Writers int
}

// DefaultFoldConfig returns the defaults.
func DefaultFoldConfig() FoldConfig {
	return FoldConfig{Topic: topic.CountersTopic, Interval: 10 * time.Second, Writers: 8}
}

// Validate reports every problem at once.
func (c FoldConfig) Validate() error {
	var errs []error
	if err := topic.Valid(c.Topic); err != nil {
		errs = append(errs, err)
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("counters fold: interval must be positive"))
	}
	if c.Writers < 1 {
		errs = append(errs, errors.New("counters fold: writers must be at least 1"))
	}
	return errors.Join(errs...)
}

type foldMetrics struct {
	records, invalid, writes, writeErrors, tombstones prometheus.Counter
	dirRecords, legacy                                prometheus.Counter
}

func newFoldMetrics(reg prometheus.Registerer) *foldMetrics {
	m := &foldMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_records_total",
			Help: "Pipeline counter records read from the counters topic."}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_invalid_records_total",
			Help: "Counter records that could not be decoded (skipped)."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_writes_total",
			Help: "Pipeline status counter updates written."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_write_errors_total",
			Help: "Pipeline status counter updates that failed (retried at the next interval)."}),
		tombstones: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_tombstones_total",
			Help: "Tombstones the controller produced to the counters topic for records of deleted pipelines (any node's, also of nodes gone for good)."}),
		dirRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_dir_records_total",
			Help: "Counter records of --pipelines-dir collectors read (no LogPipeline: neither summed nor tombstoned)."}),
		legacy: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_counter_legacy_records_total",
			Help: "Counter records with a key of the format before UIDs, tombstoned (their counts cannot be told apart from a pipeline recreated under the same name)."}),
	}
	reg.MustRegister(m.records, m.invalid, m.writes, m.writeErrors, m.tombstones, m.dirRecords, m.legacy)
	return m
}

// sum is one pipeline's state in the fold.
type sum struct {
	nodes   map[string]Value
	total   Counts
	at      time.Time
	written Counts
	dirty   bool // total differs from what was last written (or nothing was)
}

// Fold reads the counters topic from its start and writes each pipeline's sums over nodes.
type Fold struct {
	cfg   FoldConfig
	opts  []kgo.Opt
	write Write
	log   *slog.Logger
	m     *foldMetrics
	warn  rate.Sometimes

	mu   sync.Mutex
	sums map[Key]*sum
	cl   *kgo.Client // Run's: produces the tombstones of deleted pipelines
}

// NewFold returns a fold that connects with opts (seed brokers, TLS, SASL) and stores sums
// through write.
func NewFold(cfg FoldConfig, opts []kgo.Opt, write Write, reg prometheus.Registerer, log *slog.Logger) (*Fold, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Fold{cfg: cfg, opts: opts, write: write, log: log, m: newFoldMetrics(reg),
		warn: rate.Sometimes{First: 1, Interval: time.Minute}, sums: map[Key]*sum{}}, nil
}

// Run folds until ctx ends. Sums are first written once the topic has been read up to the
// end offsets it had at the start, so that a restarted controller never writes a partial
// sum over a complete one.
func (f *Fold) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, f.opts...),
		kgo.ConsumeTopics(f.cfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("counters fold: %w", err)
	}
	defer cl.Close()
	f.mu.Lock()
	f.cl = cl
	f.mu.Unlock()
	remaining := f.endOffsets(ctx, cl)

	tick := time.NewTicker(f.cfg.Interval)
	defer tick.Stop()
	fetched := make(chan kgo.Fetches)
	go func() {
		defer close(fetched)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			select {
			case fetched <- fs:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			for range fetched {
			}
			return nil
		case fs, ok := <-fetched:
			if !ok {
				return nil
			}
			fs.EachError(func(t string, p int32, err error) {
				f.warn.Do(func() { f.log.Warn("reading pipeline counters", "topic", t, "partition", p, "err", err) })
			})
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				for _, r := range p.Records {
					f.add(r)
				}
				reached(remaining, p)
			})
		case <-tick.C:
			if remaining == nil {
				remaining = f.endOffsets(ctx, cl) // the first look-up failed
			}
			if len(remaining) == 0 {
				f.flush(ctx)
			}
		}
	}
}

// endOffsets is endOffsets of the fold's topic, nil (logged, retried) when it fails.
func (f *Fold) endOffsets(ctx context.Context, cl *kgo.Client) map[int32]int64 {
	out, err := endOffsets(ctx, cl, f.cfg.Topic)
	if err != nil {
		f.warn.Do(func() { f.log.Warn("listing the counters topic's offsets", "topic", f.cfg.Topic, "err", err) })
		return nil
	}
	return out
}

func (f *Fold) add(r *kgo.Record) {
	f.m.records.Inc()
	node, k, err := ParseKey(r.Key)
	var v Value
	var live bool
	if err == nil {
		v, live, err = Decode(r.Value)
	}
	if errors.Is(err, ErrLegacyKey) {
		if len(r.Value) > 0 {
			f.m.legacy.Inc()
			f.produceTombstone(context.Background(), r.Key, k)
		}
		return
	}
	if err == nil && k.Dir() {
		// A --pipelines-dir collector's: no LogPipeline to write, and not stale either.
		f.m.dirRecords.Inc()
		return
	}
	if err != nil {
		f.m.invalid.Inc()
		f.warn.Do(func() { f.log.Warn("skipping a pipeline counters record", "offset", r.Offset, "err", err) })
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sums[k]
	if s == nil {
		if !live {
			return
		}
		s = &sum{nodes: map[string]Value{}}
		f.sums[k] = s
	}
	if old, ok := s.nodes[node]; ok {
		s.total.Sub(old.Counts)
	}
	if live {
		s.nodes[node] = v
		s.total.Add(v.Counts)
		if v.Time.After(s.at) {
			s.at = v.Time
		}
	} else {
		delete(s.nodes, node)
		if len(s.nodes) == 0 {
			// Every node's record is gone: the pipeline was deleted (records of pipelines
			// that exist are never tombstoned), nothing is left to write.
			delete(f.sums, k)
			return
		}
	}
	s.dirty = s.total != s.written
}

// flush writes every changed sum, Writers at a time, and waits for them.
func (f *Fold) flush(ctx context.Context) {
	type job struct {
		k  Key
		c  Counts
		at time.Time
	}
	f.mu.Lock()
	var jobs []job
	for k, s := range f.sums {
		if s.dirty {
			jobs = append(jobs, job{k, s.total, s.at})
		}
	}
	f.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range min(f.cfg.Writers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				err := f.write(ctx, j.k, j.c, j.at)
				f.mu.Lock()
				s := f.sums[j.k]
				switch {
				case err == nil || errors.Is(err, ErrGone):
					if err == nil {
						f.m.writes.Inc()
					}
					if s != nil {
						s.written = j.c
						s.dirty = s.total != s.written
						if err != nil {
							f.tombstone(ctx, j.k, s)
						}
					}
				default:
					f.m.writeErrors.Inc()
					f.warn.Do(func() { f.log.Warn("writing pipeline counters", "pipeline", j.k.String(), "err", err) })
				}
				f.mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
}

// tombstone produces a tombstone for every node's record of pipeline k, which the API server
// says does not exist: collectors tombstone their own records when they see the deletion, but
// a node gone for good never will. A collector that publishes again (it has not seen the
// deletion yet) brings the pipeline back into the fold and gets tombstoned again. f.mu is held.
func (f *Fold) tombstone(ctx context.Context, k Key, s *sum) {
	if f.cl == nil {
		return
	}
	for node := range s.nodes {
		f.m.tombstones.Inc()
		f.produceTombstone(ctx, RecordKey(node, k), k)
	}
}

// produceTombstone produces a tombstone for key (of pipeline k) without waiting for it.
func (f *Fold) produceTombstone(ctx context.Context, key []byte, k Key) {
	if f.cl == nil {
		return
	}
	f.cl.Produce(ctx, &kgo.Record{Topic: f.cfg.Topic, Key: key}, func(_ *kgo.Record, err error) {
		if err != nil {
			f.warn.Do(func() { f.log.Warn("tombstoning pipeline counters", "pipeline", k.String(), "err", err) })
		}
	})
}

// Sum returns a pipeline's current sum over nodes (what the next write stores).
func (f *Fold) Sum(k Key) (Counts, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sums[k]
	if !ok {
		return Counts{}, false
	}
	return s.total, true
}
