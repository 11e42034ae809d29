package token

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"
)

// DefaultTopic is the compacted topic of token records.
const DefaultTopic = "logrouter.tokens"

// DefaultMaxStaleness is how long the store may go without confirming that it holds everything
// in the token topic before it refuses every token: the longest a revocation can go unseen
// while the topic cannot be read.
const DefaultMaxStaleness = 10 * time.Second

// Errors callers branch on.
var (
	// ErrStoreUnavailable: the store could not confirm its view of the topic within the bound,
	// so no token is accepted (fail closed).
	ErrStoreUnavailable = errors.New("token store unavailable")
	// ErrTopicMissing: the token topic does not exist (deleted while the gateway runs).
	ErrTopicMissing = errors.New("token topic does not exist")
	// ErrKafkaUnreachable: the probe of the token topic got no answer.
	ErrKafkaUnreachable = errors.New("kafka unreachable")
	errTopicReplaced    = errors.New("token topic was deleted and recreated")
)

// Store is the in-memory view of the token topic. Every gateway replica runs one: it reads the
// topic from the start with a direct (group-less) consumer, so replicas share no state but the
// topic, and a revocation reaches all of them as fast as a fetch returns (well under a second).
//
// The view is trusted only while it is confirmed: every probe interval the store asks Kafka
// (real round trips, not cached metadata) for the topic's ID and end offsets, and the view is
// confirmed as of that probe once the consumer has applied everything up to those offsets. A
// deleted topic, a recreated one (new topic ID) or Kafka not answering stops confirmation; after
// the max staleness every token is refused with ErrStoreUnavailable. A recreated topic is read
// again from its start and replaces the view once caught up.
type Store struct {
	topic    string
	opts     []kgo.Opt
	log      *slog.Logger
	maxStale time.Duration
	every    time.Duration
	now      func() time.Time

	mu        sync.RWMutex
	recs      map[string]*Record
	wake      chan struct{} // closed and replaced on every applied batch
	confirmed time.Time     // the view held the whole topic as of this time; zero = not known
	problem   error         // why the last probe or read failed; nil once confirmed again
	topicID   [16]byte      // of the topic the view was read from
	probedAt  time.Time     // last probe Kafka answered
	ready     chan struct{}
	once      sync.Once

	errLog   rate.Sometimes // store problems repeat every probe: log them rarely
	invalid  prometheus.Counter
	applied  prometheus.Counter
	failures *prometheus.CounterVec
	reloads  prometheus.Counter
}

// StoreOption adjusts NewStore.
type StoreOption func(*Store)

// WithMaxStaleness sets how long the view may go unconfirmed before every token is refused
// (default DefaultMaxStaleness). The probe interval is a quarter of it, at most one second.
func WithMaxStaleness(d time.Duration) StoreOption {
	return func(s *Store) { s.maxStale = d }
}

// WithClock replaces time.Now for the staleness bound (tests).
func WithClock(now func() time.Time) StoreOption { return func(s *Store) { s.now = now } }

// NewStore returns a store reading topic through a client built from opts (seed brokers, TLS,
// SASL). Metrics are registered on reg when it is non-nil.
func NewStore(opts []kgo.Opt, topic string, reg prometheus.Registerer, log *slog.Logger, sopts ...StoreOption) (*Store, error) {
	s := &Store{
		topic: topic, opts: opts, log: log, maxStale: DefaultMaxStaleness, now: time.Now,
		recs: map[string]*Record{}, wake: make(chan struct{}), ready: make(chan struct{}),
		errLog: rate.Sometimes{First: 1, Interval: 10 * time.Second},
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_records_invalid_total",
			Help: "Token topic records that could not be decoded and were skipped.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_records_applied_total",
			Help: "Token topic records applied to the in-memory store.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_store_failures_total",
			Help: "Failed reads of the token topic by reason (kafka_unreachable, topic_missing, topic_replaced, fetch).",
		}, []string{"reason"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_token_store_reloads_total",
			Help: "Times the token store started reading the topic from its start (startup, recovery, recreated topic).",
		}),
	}
	for _, o := range sopts {
		o(s)
	}
	if s.maxStale <= 0 {
		return nil, fmt.Errorf("token store: max staleness must be positive, got %s", s.maxStale)
	}
	s.every = min(time.Second, s.maxStale/4)
	if reg != nil {
		for _, c := range []prometheus.Collector{s.invalid, s.applied, s.failures, s.reloads, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logrouter_gateway_tokens_known",
			Help: "Token records in the in-memory store (including revoked and expired).",
		}, func() float64 { s.mu.RLock(); defer s.mu.RUnlock(); return float64(len(s.recs)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "logrouter_gateway_token_store_staleness_seconds",
				Help: "Seconds since the token store last confirmed it holds the whole topic (+Inf: never or no longer); tokens are refused above --token-max-staleness.",
			}, func() float64 {
				s.mu.RLock()
				defer s.mu.RUnlock()
				if s.confirmed.IsZero() {
					return math.Inf(1)
				}
				return s.now().Sub(s.confirmed).Seconds()
			})} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register token store metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Ready is closed once the store has read the topic up to its end as of startup.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// MaxStaleness is the bound after which an unconfirmed view refuses every token.
func (s *Store) MaxStaleness() time.Duration { return s.maxStale }

// Health returns nil while the store is loaded and confirmed against the topic within the last
// few probe intervals, or the reason it is not (for readiness).
func (s *Store) Health() error {
	select {
	case <-s.ready:
	default:
		return errors.New("token store not loaded yet")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.problem != nil {
		return s.problem
	}
	now := s.now()
	if age := now.Sub(s.probedAt); age > 3*s.every {
		return fmt.Errorf("token store: %w: no answer to the probe of %s for %s", ErrKafkaUnreachable, s.topic, age.Round(time.Millisecond))
	}
	if age := now.Sub(s.confirmed); s.confirmed.IsZero() || age > 3*s.every {
		return fmt.Errorf("token store: behind the topic %s: not caught up for %s", s.topic, age.Round(time.Millisecond))
	}
	return nil
}

// Run tails the topic until ctx ends. At start it creates the topic (compacted) when it is
// missing; it retries while Kafka is unreachable and follows the topic when it is deleted or
// recreated. The store is not Ready until it has caught up once.
func (s *Store) Run(ctx context.Context) error {
	adm, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer adm.Close()
	for {
		loaded := false
		select {
		case <-s.ready:
			loaded = true
		default:
		}
		// A topic deleted while the gateway runs is not recreated here: that would hide the
		// deletion. `logrouter tokens create` (or a restart) creates it again.
		err := s.follow(ctx, adm, !loaded)
		if ctx.Err() != nil {
			return nil
		}
		s.fail(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.every):
		}
	}
}

// fail records why reading the topic stopped. A topic that is gone or was replaced makes the
// view wrong at once; Kafka not answering leaves it valid until the staleness bound.
func (s *Store) fail(err error) {
	reason := "fetch"
	switch {
	case errors.Is(err, ErrTopicMissing):
		reason = "topic_missing"
		err = fmt.Errorf("%w; logrouter tokens are refused until it exists again (`logrouter tokens create` creates it)", err)
	case errors.Is(err, errTopicReplaced):
		reason = "topic_replaced"
	case errors.Is(err, ErrKafkaUnreachable):
		reason = "kafka_unreachable"
	}
	s.failures.WithLabelValues(reason).Inc()
	s.mu.Lock()
	s.problem = err
	if reason == "topic_missing" || reason == "topic_replaced" {
		s.confirmed = time.Time{}
	}
	s.mu.Unlock()
	s.errLog.Do(func() {
		s.log.Error("token store cannot read its topic", "topic", s.topic, "reason", reason, "err", err)
	})
}

// generation is one read of the topic from its start; it lives under Store.mu.
type generation struct {
	id      [16]byte
	recs    map[string]*Record // private until caught up, then it is Store.recs
	live    bool
	next    map[int32]int64 // next offset to apply, per partition
	pendAt  time.Time       // the oldest probe not yet confirmed
	pendEnd map[int32]int64
}

// follow reads the topic from its start and then tails it, probing it every interval, until a
// probe or a fetch fails.
func (s *Store) follow(ctx context.Context, adm *kgo.Client, create bool) error {
	if create {
		if err := EnsureTopic(ctx, kadm.NewClient(adm), s.topic); err != nil {
			return fmt.Errorf("%w: %w", ErrKafkaUnreachable, err)
		}
	}
	at := s.now()
	id, ends, err := s.probe(ctx, adm)
	if err != nil {
		return err
	}
	s.reloads.Inc()
	g := &generation{id: id, recs: map[string]*Record{}, next: map[int32]int64{}, pendAt: at, pendEnd: ends}
	s.mu.Lock()
	s.probedAt = at
	if s.topicID != id && s.topicID != ([16]byte{}) {
		s.confirmed = time.Time{} // what we hold came from a topic that no longer exists
	}
	s.mu.Unlock()
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.opts...),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer cl.Close()
	gctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	s.mu.Lock()
	s.catchUpLocked(g)
	s.mu.Unlock()
	wg.Go(func() { s.prober(gctx, cancel, adm, g) })
	for {
		fs := cl.PollFetches(gctx)
		if gctx.Err() != nil {
			return context.Cause(gctx)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		s.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if g.live {
				s.apply(s.recs, r)
			} else {
				s.apply(g.recs, r)
			}
			g.next[r.Partition] = r.Offset + 1
		})
		s.catchUpLocked(g)
		w := s.wake
		s.wake = make(chan struct{})
		s.mu.Unlock()
		close(w)
		if ferr != nil {
			// The consumer retries by itself in a tight loop (UNKNOWN_TOPIC_ID thousands of times
			// a second once the topic is gone): start over from a probe instead.
			if errors.Is(ferr, kerr.UnknownTopicID) || errors.Is(ferr, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("%w: %w", errTopicReplaced, ferr)
			}
			return ferr
		}
	}
}

// prober checks the topic every interval and ends the generation (through cancel) when the
// topic is gone, replaced, or Kafka does not answer.
func (s *Store) prober(ctx context.Context, cancel context.CancelCauseFunc, adm *kgo.Client, g *generation) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at := s.now()
		id, ends, err := s.probe(ctx, adm)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		if err == nil && id != g.id {
			err = fmt.Errorf("%w (topic ID changed)", errTopicReplaced)
		}
		for p, e := range ends {
			if err == nil && e < g.next[p] {
				err = fmt.Errorf("%w (partition %d end offset %d is behind what was read, %d)", errTopicReplaced, p, e, g.next[p])
			}
		}
		if err == nil {
			s.probedAt = at
		}
		if err == nil && g.pendEnd == nil {
			g.pendAt, g.pendEnd = at, ends
			s.catchUpLocked(g)
		}
		s.mu.Unlock()
		if err != nil {
			cancel(err)
			return
		}
	}
}

// catchUpLocked confirms the view as of the pending probe once g has applied everything up to
// that probe's end offsets; the first confirmation of a generation makes its records the view.
func (s *Store) catchUpLocked(g *generation) {
	if g.pendEnd == nil {
		return
	}
	for p, end := range g.pendEnd {
		if g.next[p] < end {
			return
		}
	}
	if !g.live {
		s.recs, g.live = g.recs, true
		s.topicID = g.id
		w := s.wake
		s.wake = make(chan struct{})
		close(w)
	}
	s.confirmed, s.problem, g.pendEnd = g.pendAt, nil, nil
	s.once.Do(func() { close(s.ready) })
}

// probe asks Kafka for the topic's ID and end offsets. The metadata request goes to the broker
// (kadm's ListTopics would answer from franz-go's metadata cache, which outlives a broker).
func (s *Store) probe(ctx context.Context, adm *kgo.Client) ([16]byte, map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, max(2*s.every, time.Second))
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(s.topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, adm)
	if err != nil {
		return [16]byte{}, nil, fmt.Errorf("%w: metadata of %s: %w", ErrKafkaUnreachable, s.topic, err)
	}
	if len(resp.Topics) != 1 {
		return [16]byte{}, nil, fmt.Errorf("%w: metadata of %s: %d topics in the answer", ErrKafkaUnreachable, s.topic, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return [16]byte{}, nil, fmt.Errorf("%w: %s", ErrTopicMissing, s.topic)
		}
		return [16]byte{}, nil, fmt.Errorf("%w: metadata of %s: %w", ErrKafkaUnreachable, s.topic, err)
	}
	ls, err := kadm.NewClient(adm).ListEndOffsets(ctx, s.topic)
	if err == nil {
		err = ls.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return [16]byte{}, nil, fmt.Errorf("%w: %s", ErrTopicMissing, s.topic)
		}
		return [16]byte{}, nil, fmt.Errorf("%w: end offsets of %s: %w", ErrKafkaUnreachable, s.topic, err)
	}
	ends := map[int32]int64{}
	ls.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return resp.Topics[0].TopicID, ends, nil
}

// apply runs under s.mu.
func (s *Store) apply(recs map[string]*Record, r *kgo.Record) {
	id := string(r.Key)
	if r.Value == nil { // tombstone: the token is gone for good
		delete(recs, id)
		s.applied.Inc()
		return
	}
	var rec Record
	if err := json.Unmarshal(r.Value, &rec); err != nil || rec.ID != id || !ValidID(id) {
		s.invalid.Inc()
		s.log.Warn("skipping invalid token record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	recs[id] = &rec
	s.applied.Inc()
}

// freshLocked returns ErrStoreUnavailable when the view is not confirmed within the bound.
func (s *Store) freshLocked() error {
	if s.confirmed.IsZero() {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, cmp.Or(s.problem, errors.New("not loaded")))
	}
	if age := s.now().Sub(s.confirmed); age > s.maxStale {
		return fmt.Errorf("%w: not confirmed for %s (bound %s): %w", ErrStoreUnavailable, age.Round(time.Millisecond), s.maxStale, cmp.Or(s.problem, errors.New("no probe answered")))
	}
	return nil
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
	stale := s.freshLocked()
	s.mu.RUnlock()
	if stale != nil {
		return Record{}, stale
	}
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
	stale := s.freshLocked()
	s.mu.RUnlock()
	if stale != nil {
		return stale
	}
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
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(rec.ID), Value: v}).FirstErr()
	if errors.Is(err, kerr.UnknownTopicID) {
		// The topic was deleted and recreated since cl last wrote to it: franz-go keeps failing
		// on the old ID until the topic is purged from the client and added again.
		cl.PurgeTopicsFromProducing(topic)
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(rec.ID), Value: v}).FirstErr()
	}
	if err != nil {
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
