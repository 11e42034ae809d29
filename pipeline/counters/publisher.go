package counters

import (
	"context"
	"errors"
	"log/slog"
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

// Publisher publishes one node's per-pipeline totals: every Interval it asks totals for the
// current values and produces the ones that changed since the last successful publication,
// and a tombstone for each pipeline that is no longer there.
type Publisher struct {
	cfg    PublisherConfig
	cl     *kgo.Client
	totals func() map[Key]Counts
	log    *slog.Logger
	errLog rate.Sometimes // a broker outage fails every publication: log it rarely

	sent map[Key]Counts // what Kafka acknowledged
}

// NewPublisher returns a publisher producing through cl. totals returns the node's current
// cumulative counts per pipeline; it is called from Run's goroutine only and the map is not
// kept after it returns.
func NewPublisher(cfg PublisherConfig, cl *kgo.Client, totals func() map[Key]Counts, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{
		cfg: cfg, cl: cl, totals: totals, log: log,
		errLog: rate.Sometimes{First: 1, Interval: time.Minute},
		sent:   map[Key]Counts{},
	}, nil
}

// Run publishes every Interval until ctx ends, then publishes once more (the last totals of a
// collector that stops) and returns nil. A failed publication is logged and retried at the
// next interval: counters are never worth stopping a collector for.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			p.Publish(fctx)
			cancel()
			return nil
		case <-t.C:
			p.Publish(ctx)
		}
	}
}

// Publish produces what changed since the last publication and returns how many records
// Kafka acknowledged. Run calls it; it is exported for collectors that publish at shutdown.
func (p *Publisher) Publish(ctx context.Context) int {
	cur := p.totals()
	type pending struct {
		k  Key
		c  Counts
		ok bool // false: tombstone
	}
	var recs []*kgo.Record
	pend := map[*kgo.Record]pending{}
	now := time.Now().UTC()
	for k, c := range cur {
		if old, ok := p.sent[k]; ok && old == c {
			continue
		}
		r := &kgo.Record{Topic: p.cfg.Topic, Key: RecordKey(p.cfg.Node, k), Value: Encode(Value{Counts: c, Time: now})}
		recs = append(recs, r)
		pend[r] = pending{k, c, true}
	}
	for k := range p.sent {
		if _, ok := cur[k]; !ok {
			r := &kgo.Record{Topic: p.cfg.Topic, Key: RecordKey(p.cfg.Node, k)}
			recs = append(recs, r)
			pend[r] = pending{k: k}
		}
	}
	if len(recs) == 0 {
		return 0
	}
	res := p.cl.ProduceSync(ctx, recs...)
	n := 0
	// Results come in acknowledgement order, not in the order produced.
	for _, r := range res {
		if r.Err != nil {
			p.errLog.Do(func() {
				p.log.Warn("publishing pipeline counters failed; retrying at the next interval", "topic", p.cfg.Topic, "err", r.Err)
			})
			continue
		}
		n++
		if pd := pend[r.Record]; pd.ok {
			p.sent[pd.k] = pd.c
		} else {
			delete(p.sent, pd.k)
		}
	}
	return n
}
