package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultTopic is the compacted topic of token records.
const DefaultTopic = "logrouter.tokens"

// Store is the in-memory view of the token topic. Every gateway replica runs one: it reads the
// topic from the start with a direct (group-less) consumer, so replicas share no state but the
// topic, and a revocation reaches all of them as fast as a fetch returns (well under a second).
type Store struct {
	topic string
	opts  []kgo.Opt
	log   *slog.Logger

	mu    sync.RWMutex
	recs  map[string]*Record
	wake  chan struct{} // closed and replaced on every applied batch
	ready chan struct{}
	once  sync.Once

	invalid prometheus.Counter
	applied prometheus.Counter
}

// NewStore returns a store reading topic through a client built from opts (seed brokers, TLS,
// SASL). Metrics are registered on reg when it is non-nil.
func NewStore(opts []kgo.Opt, topic string, reg prometheus.Registerer, log *slog.Logger) (*Store, error) {
	s := &Store{
		topic: topic, opts: opts, log: log,
		recs: map[string]*Record{}, wake: make(chan struct{}), ready: make(chan struct{}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_records_invalid_total",
			Help: "Token topic records that could not be decoded and were skipped.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_records_applied_total",
			Help: "Token topic records applied to the in-memory store.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.invalid, s.applied, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logrouter_gateway_tokens_known",
			Help: "Token records in the in-memory store (including revoked and expired).",
		}, func() float64 { s.mu.RLock(); defer s.mu.RUnlock(); return float64(len(s.recs)) })} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register token store metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Ready is closed once the store has read the topic up to its end as of startup.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Run tails the topic until ctx ends. It creates the topic (compacted) when it is missing and
// retries while Kafka is unreachable; the store is not Ready until it has caught up.
func (s *Store) Run(ctx context.Context) error {
	var pending map[int32]int64
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var err error
		if pending, err = s.endOffsets(ctx); err == nil {
			break
		}
		s.log.Warn("token store: waiting for Kafka", "topic", s.topic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	if len(pending) == 0 {
		s.markReady()
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.opts...),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("token store fetch", "topic", t, "partition", p, "err", err)
		})
		s.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			s.apply(r)
			if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
		})
		w := s.wake
		s.wake = make(chan struct{})
		s.mu.Unlock()
		close(w)
		if len(pending) == 0 {
			s.markReady()
		}
	}
}

// endOffsets ensures the topic exists and returns the end offsets of its non-empty partitions.
func (s *Store) endOffsets(ctx context.Context) (map[int32]int64, error) {
	admCl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if err := EnsureTopic(ctx, adm, s.topic); err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("token store: list end offsets of %s: %w", s.topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	return pending, nil
}

func (s *Store) markReady() { s.once.Do(func() { close(s.ready) }) }

// apply runs under s.mu.
func (s *Store) apply(r *kgo.Record) {
	id := string(r.Key)
	if r.Value == nil { // tombstone: the token is gone for good
		delete(s.recs, id)
		s.applied.Inc()
		return
	}
	var rec Record
	if err := json.Unmarshal(r.Value, &rec); err != nil || rec.ID != id || !ValidID(id) {
		s.invalid.Inc()
		s.log.Warn("skipping invalid token record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	s.recs[id] = &rec
	s.applied.Inc()
}

// Authenticate checks a token string and returns a copy of its record.
func (s *Store) Authenticate(tok string, now time.Time) (Record, error) {
	id, secret, err := Parse(tok)
	if err != nil {
		return Record{}, err
	}
	s.mu.RLock()
	rec, ok := s.recs[id]
	var r Record
	if ok {
		r = *rec
	}
	s.mu.RUnlock()
	if !ok || !r.Verify(secret) {
		return Record{}, ErrUnknown
	}
	if err := r.Check(now); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Recheck returns nil while token id is still valid at now (for open streams).
func (s *Store) Recheck(id string, now time.Time) error {
	s.mu.RLock()
	rec, ok := s.recs[id]
	var r Record
	if ok {
		r = *rec
	}
	s.mu.RUnlock()
	if !ok {
		return ErrUnknown
	}
	return r.Check(now)
}

// Get returns token id's record.
func (s *Store) Get(id string) (Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r, ok := s.recs[id]; ok {
		return *r, true
	}
	return Record{}, false
}

// List returns all records without hashes, oldest first.
func (s *Store) List() []Record {
	s.mu.RLock()
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r.Public())
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// WaitFor blocks until cond holds for token id's record (nil if absent) or ctx ends: writers use
// it to read their own write before answering.
func (s *Store) WaitFor(ctx context.Context, id string, cond func(*Record) bool) error {
	for {
		s.mu.RLock()
		ok := cond(s.recs[id])
		w := s.wake
		s.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("waiting for token %s in the store: %w", id, ctx.Err())
		}
	}
}

// EnsureTopic creates the compacted token topic if it does not exist.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create token topic %s: %w", topic, err)
	}
	return nil
}

// Put writes rec (keyed by its ID) to the token topic and waits for the broker's ack.
func Put(ctx context.Context, cl *kgo.Client, topic string, rec Record) error {
	if !ValidID(rec.ID) {
		return fmt.Errorf("put token: %w: id %q", ErrMalformed, rec.ID)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("put token %s: %w", rec.ID, err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(rec.ID), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("put token %s: %w", rec.ID, err)
	}
	return nil
}

// Spec is what a new token grants.
type Spec struct {
	Name       string
	Namespaces []string
	Admin      bool
	TTL        time.Duration // 0 = no expiry
}

// Create generates a token for spec, stores it and returns the secret (shown once) and record.
func Create(ctx context.Context, cl *kgo.Client, topic string, spec Spec, now time.Time) (string, Record, error) {
	secret, rec, err := Generate(now)
	if err != nil {
		return "", Record{}, err
	}
	rec.Name, rec.Namespaces, rec.Admin = spec.Name, spec.Namespaces, spec.Admin
	if spec.TTL > 0 {
		rec.ExpiresAt = rec.CreatedAt.Add(spec.TTL)
	}
	if err := Put(ctx, cl, topic, rec); err != nil {
		return "", Record{}, err
	}
	return secret, rec, nil
}

// Revoke marks rec revoked at now and stores it; revoked records are kept (not tombstoned) so
// lists and audits can still name them.
func Revoke(ctx context.Context, cl *kgo.Client, topic string, rec Record, now time.Time) (Record, error) {
	if rec.RevokedAt.IsZero() {
		rec.RevokedAt = now.UTC()
	}
	return rec, Put(ctx, cl, topic, rec)
}
