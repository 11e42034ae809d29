package counters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/internal/topic"
)

// PublisherConfig configures a collector's Publisher.
type PublisherConfig struct {
	// Node is the collector's node name (the first part of every key). Required.
	Node string
	// Topic defaults to topic.CountersTopic.
	Topic string
	// Interval between publications (default 10s).
	Interval time.Duration
}

// DefaultPublisherConfig returns the defaults (Node still to be set).
func DefaultPublisherConfig() PublisherConfig {
	return PublisherConfig{Topic: topic.CountersTopic, Interval: 10 * time.Second}
}

// Validate reports every problem at once.
func (c PublisherConfig) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("counters publisher: a node name is required"))
	}
	if err := topic.Valid(c.Topic); err != nil {
		errs = append(errs, err)
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("counters publisher: interval must be positive"))
	}
	return errors.Join(errs...)
}

// Source is what a Publisher reads from its collector. Its methods are called from one
// goroutine at a time.
type Source interface {
	// Totals returns the cumulative counts of each pipeline this process counted since it
	// started. The map is not kept after the call.
	Totals() map[Key]Counts
	// Exists reports whether pipeline k exists (running or not); known is false while the
	// collector does not know yet (its pipeline source has not delivered a first state).
	Exists(k Key) (exists, known bool)
	// Forget is called for a deleted pipeline once its tombstone is acknowledged (and one
	// interval has passed for the last held lines to be counted), or at once when nothing of
	// it was ever published: the collector deletes its series.
	Forget(k Key)
}

// ErrNotResumed is returned by Publish before Resume succeeded.
var ErrNotResumed = errors.New("counters publisher: the node's last published counters have not been read yet")

// Publisher publishes one node's per-pipeline totals. They are monotonic across restarts of
// the collector: before its first publication a Publisher reads back the node's last
// published record of every pipeline (Resume) and from then on publishes that plus what this
// process counted. A pipeline that no longer exists gets a tombstone; one that exists and no
// longer runs on the node keeps its record (the sum over nodes must not go down).
type Publisher struct {
	cfg    PublisherConfig
	opts   []kgo.Opt
	cl     *kgo.Client
	src    Source
	log    *slog.Logger
	errLog rate.Sometimes // a broker outage fails every publication: log it rarely
	close  sync.Once

	mu      sync.Mutex // Run's publications and a caller's (tests, a collector at shutdown)
	resumed bool
	base    map[Key]Counts // what earlier processes published (read back by Resume)
	sent    map[Key]Counts // what Kafka holds for this node (acknowledged)
	forget  map[Key]bool   // tombstoned: Forget at the next publication
}

// NewPublisher returns a publisher producing through its own client made with opts (seed
// brokers, TLS, SASL).
func NewPublisher(cfg PublisherConfig, opts []kgo.Opt, src Source, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("counters publisher: kafka client: %w", err)
	}
	return &Publisher{
		cfg: cfg, opts: opts, cl: cl, src: src, log: log,
		errLog: rate.Sometimes{First: 1, Interval: time.Minute},
		base:   map[Key]Counts{}, sent: map[Key]Counts{}, forget: map[Key]bool{},
	}, nil
}

// Close closes the producing client (Run does at its end).
func (p *Publisher) Close() { p.close.Do(p.cl.Close) }

// Resume reads the topic up to its current end and takes the node's last record of each
// pipeline as this process's base. Publish does nothing before it succeeded.
func (p *Publisher) Resume(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumed {
		return nil
	}
	last := map[Key]Counts{}
	bad := 0
	err := ReadToEnd(ctx, p.opts, p.cfg.Topic, func(r *kgo.Record) {
		node, k, err := ParseKey(r.Key)
		if err != nil || node != p.cfg.Node {
			return
		}
		v, live, err := Decode(r.Value)
		switch {
		case err != nil:
			bad++ // skipped: the fold skips it too
		case live:
			last[k] = v.Counts
		default:
			delete(last, k)
		}
	})
	if err != nil {
		return fmt.Errorf("counters publisher: reading %s back: %w", p.cfg.Topic, err)
	}
	if bad > 0 {
		p.log.Warn("skipped undecodable records of this node while reading the pipeline counters back", "topic", p.cfg.Topic, "records", bad)
	}
	for k, c := range last {
		p.base[k], p.sent[k] = c, c
	}
	p.resumed = true
	p.log.Info("pipeline counters resumed from the counters topic", "topic", p.cfg.Topic, "pipelines", len(last))
	return nil
}

// Run resumes (retrying with backoff), then publishes every Interval until ctx ends, then
// publishes once more (the last totals of a collector that stops), closes the client and
// returns nil. A failed publication is logged and retried at the next interval: counters are
// never worth stopping a collector for.
func (p *Publisher) Run(ctx context.Context) error {
	defer p.Close()
	for failures := 0; ; failures++ {
		err := p.Resume(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			p.log.Warn("stopped before the node's last pipeline counters were read back: what this process counted is not published", "topic", p.cfg.Topic)
			return nil
		}
		p.errLog.Do(func() {
			p.log.Warn("reading the pipeline counters back failed; retrying (nothing is published until it succeeds)", "err", err)
		})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Second<<min(failures, 6), p.cfg.Interval)):
		}
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = p.Publish(fctx)
			cancel()
			return nil
		case <-t.C:
			_, _ = p.Publish(ctx)
		}
	}
}

// Publish produces, for each pipeline, the node's total (the resumed base plus what this
// process counted) when it changed since the last publication, and a tombstone for each
// pipeline that no longer exists. It returns how many records Kafka acknowledged.
func (p *Publisher) Publish(ctx context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.resumed {
		return 0, ErrNotResumed
	}
	for k := range p.forget {
		delete(p.forget, k)
		if exists, _ := p.src.Exists(k); !exists {
			p.src.Forget(k)
		}
	}
	cur := p.src.Totals()
	type pending struct {
		k    Key
		c    Counts
		live bool // false: tombstone
	}
	var recs []*kgo.Record
	pend := map[*kgo.Record]pending{}
	now := time.Now().UTC()
	// gone queues pipeline k's tombstone when it was deleted.
	gone := func(k Key) bool {
		if exists, known := p.src.Exists(k); !known || exists {
			return false
		}
		if _, inTopic := p.sent[k]; inTopic {
			r := &kgo.Record{Topic: p.cfg.Topic, Key: RecordKey(p.cfg.Node, k)}
			recs = append(recs, r)
			pend[r] = pending{k: k}
		} else {
			p.src.Forget(k) // nothing of it in the topic
		}
		return true
	}
	for k, n := range cur {
		if gone(k) {
			continue
		}
		c := p.base[k]
		c.Add(n)
		if old, ok := p.sent[k]; ok && old == c {
			continue
		}
		r := &kgo.Record{Topic: p.cfg.Topic, Key: RecordKey(p.cfg.Node, k), Value: Encode(Value{Counts: c, Time: now})}
		recs = append(recs, r)
		pend[r] = pending{k, c, true}
	}
	// A pipeline this process has not counted keeps its record: an earlier process's (or
	// what this one published before its pods left the node).
	for k := range p.sent {
		if _, ok := cur[k]; !ok {
			gone(k)
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	res := p.cl.ProduceSync(ctx, recs...)
	n := 0
	var firstErr error
	// Results come in acknowledgement order, not in the order produced.
	for _, r := range res {
		if r.Err != nil {
			if firstErr == nil {
				firstErr = r.Err
			}
			continue
		}
		n++
		if pd := pend[r.Record]; pd.live {
			p.sent[pd.k] = pd.c
		} else {
			delete(p.sent, pd.k)
			delete(p.base, pd.k)
			p.forget[pd.k] = true
		}
	}
	if firstErr != nil {
		p.errLog.Do(func() {
			p.log.Warn("publishing pipeline counters failed; retrying at the next interval", "topic", p.cfg.Topic, "err", firstErr)
		})
	}
	return n, firstErr
}
