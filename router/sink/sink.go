// Package sink is the collector's Kafka side: one franz-go producer (idempotent, acks=all) and
// the per-namespace topics it writes, created on first use. A topic that cannot be created or
// written is an error for its namespace only: Ensure remembers the failure and answers it again
// until a backoff passes, so a broken namespace costs the broker one request per backoff and
// never blocks the others.
package sink

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/internal/kafkaconn"
	topicname "github.com/logrouter/logrouter/internal/topic"
)

// Config of the producer and of the topics it creates.
type Config struct {
	Kafka             kafkaconn.Config
	Compression       string // zstd, lz4, snappy, gzip, none
	Linger            time.Duration
	BatchMaxBytes     int
	Partitions        int
	ReplicationFactor int
	Retention         time.Duration
	// TopicBackoff is how long a failed topic creation is answered from memory before retrying.
	TopicBackoff time.Duration
	// MaxRecordBytes is the largest record value the collector can make; the topics it creates
	// get a max.message.bytes that accepts such a record (set by the collector). Topics created
	// by others keep their limit: the collector reads it and cuts lines to fit (LineRoom).
	MaxRecordBytes int
	// LimitRefresh is how often a topic's max.message.bytes is read again.
	LimitRefresh time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Kafka:             kafkaconn.Config{Brokers: "127.0.0.1:9092", ClientID: "logrouter-collector"},
		Compression:       "zstd",
		Linger:            5 * time.Millisecond,
		BatchMaxBytes:     1 << 20,
		Partitions:        6,
		ReplicationFactor: -1, // the broker's default
		Retention:         72 * time.Hour,
		TopicBackoff:      5 * time.Second,
		LimitRefresh:      time.Minute,
	}
}

// Register adds the flags.
func (c *Config) Register(fs *flag.FlagSet) {
	c.Kafka.Register(fs, c.Kafka.Brokers)
	fs.StringVar(&c.Compression, "compression", c.Compression, "Kafka batch compression: zstd, lz4, snappy, gzip or none")
	fs.DurationVar(&c.Linger, "linger", c.Linger, "how long the producer waits to fill a batch")
	fs.IntVar(&c.BatchMaxBytes, "batch-max-bytes", c.BatchMaxBytes, "largest produce batch per partition")
	fs.IntVar(&c.Partitions, "topic-partitions", c.Partitions, "partitions of topics the collector creates")
	fs.IntVar(&c.ReplicationFactor, "topic-replication-factor", c.ReplicationFactor, "replication factor of topics the collector creates (-1: broker default)")
	fs.DurationVar(&c.Retention, "topic-retention", c.Retention, "retention.ms of topics the collector creates (Kafka keeps recent data; the archive keeps the rest)")
}

// Validate reports every problem.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := codec(c.Compression); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("--topic-partitions %d: must be at least 1", c.Partitions))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("--topic-replication-factor %d: must be -1 or at least 1", c.ReplicationFactor))
	}
	if c.Retention < time.Minute {
		errs = append(errs, fmt.Errorf("--topic-retention %s: must be at least 1m", c.Retention))
	}
	if c.LimitRefresh <= 0 {
		errs = append(errs, fmt.Errorf("topic limit refresh %s: must be positive", c.LimitRefresh))
	}
	if c.BatchMaxBytes < 1024 {
		errs = append(errs, fmt.Errorf("--batch-max-bytes %d: must be at least 1024", c.BatchMaxBytes))
	}
	return errors.Join(errs...)
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none", "":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want zstd, lz4, snappy, gzip or none", name)
}

// Sink produces records and manages topics.
type Sink struct {
	cfg    Config
	client *kgo.Client
	adm    *kadm.Client
	zstd   *zstdCompressor // nil unless --compression zstd

	mu     sync.Mutex
	topics map[string]*topicState
}

type topicState struct {
	mu        sync.Mutex
	ready     bool
	retention time.Duration // applied retention (0: the default)
	err       error
	retryAt   time.Time

	limit       int       // the topic's max.message.bytes, as last described (0: not yet)
	describedAt time.Time // when limit was read
	// stale is set when Kafka answered MESSAGE_TOO_LARGE: the limit is read again before the
	// next produce.
	stale atomic.Bool
	// batchMax is the batch cap franz-go was given for the topic (ProducerBatchMaxBytesFn;
	// franz-go caches it per partition). Read without ts.mu, from franz-go's goroutines.
	batchMax atomic.Int32
	// served is set once franz-go read batchMax (it does when it first produces to a partition):
	// from then on batchMax may only be lowered, with a purge.
	served atomic.Bool
	warn   rate.Sometimes
}

// New connects the producer. maxBuffered bounds franz-go's own buffer; the collector's byte
// budget is the real bound, so this only needs to be above it.
func New(cfg Config, maxBufferedBytes int64) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.Kafka.Options()
	if err != nil {
		return nil, err
	}
	cc, _ := codec(cfg.Compression)
	s := &Sink{cfg: cfg, topics: map[string]*topicState{}}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(cc),
		kgo.ProducerLinger(cfg.Linger),
		// Per topic: a batch above the topic's max.message.bytes is refused whole (compression
		// does not help incompressible lines), so batches are capped at each topic's limit.
		kgo.ProducerBatchMaxBytesFn(s.batchMaxFor),
		// The collector's byte budget is the real bound: every record accounts for more than
		// 256 bytes, so these caps never bind first and Produce never blocks. (franz-go sizes its
		// promise ring from the record cap, so it must not be huge.)
		kgo.MaxBufferedRecords(int(max(maxBufferedBytes/256, 10000))),
		kgo.MaxBufferedBytes(int(maxBufferedBytes)*2+(64<<20)),
	)
	if strings.EqualFold(cfg.Compression, "zstd") {
		s.zstd = newZstdCompressor()
		opts = append(opts, kgo.WithCompressor(s.zstd))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	s.client, s.adm = client, kadm.NewClient(client)
	return s, nil
}

// defaultBatchMax is franz-go's own default, under Kafka's default max.message.bytes; it is
// used only for a topic whose limit was not read (the collector reads it before producing).
const defaultBatchMax = 1000012

// batchMaxFor answers franz-go's per-topic batch cap. It must not block: franz-go calls it
// while it holds its metadata locks.
func (s *Sink) batchMaxFor(topic string) int32 {
	s.mu.Lock()
	ts := s.topics[topic]
	s.mu.Unlock()
	if ts != nil {
		if v := ts.batchMax.Load(); v > 0 {
			ts.served.Store(true)
			return v
		}
	}
	return defaultBatchMax
}

// batchOverhead is a record batch's header (61 bytes) and the record's own framing (length,
// attributes, timestamp and offset deltas, key and value lengths, header count) at their largest.
const batchOverhead = 61 + 40

// LineRoom is the room for one record's key, value and headers (each header's key and value,
// plus 10 bytes of framing) on topic: what fits the smaller of the topic's max.message.bytes and
// the batch cap franz-go uses for it. 0 before Ensure succeeded for the topic.
func (s *Sink) LineRoom(topic string) int {
	s.mu.Lock()
	ts := s.topics[topic]
	s.mu.Unlock()
	if ts == nil {
		return 0
	}
	b := int(ts.batchMax.Load())
	if b == 0 {
		return 0
	}
	return max(0, b-batchOverhead)
}

// Warn runs log at most once a minute per topic: a problem of one topic (a limit too small for a
// record) is reported by each of its files.
func (s *Sink) Warn(topic string, log func()) {
	s.mu.Lock()
	ts := s.topics[topic]
	s.mu.Unlock()
	if ts != nil {
		ts.warn.Do(log)
	}
}

// TooLarge reports that Kafka refused a record of topic as too large: the topic's limit is
// read again before its next produce (it may have been lowered). It never blocks.
func (s *Sink) TooLarge(topic string, err error) {
	if !errors.Is(err, kerr.MessageTooLarge) && !errors.Is(err, kerr.RecordListTooLarge) {
		return
	}
	s.mu.Lock()
	ts := s.topics[topic]
	s.mu.Unlock()
	if ts != nil {
		ts.stale.Store(true)
	}
}

// Client exposes the franz-go client (for flushing and closing).
func (s *Sink) Client() *kgo.Client { return s.client }

// Produce sends r asynchronously; promise is called once with the outcome. It never blocks on
// the broker: memory is bounded by the collector's budget before records get here.
func (s *Sink) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	s.client.Produce(ctx, r, promise)
}

// Flush waits until every buffered record has been acknowledged or failed, or ctx ends.
func (s *Sink) Flush(ctx context.Context) error { return s.client.Flush(ctx) }

// Close closes the client; records still buffered fail.
func (s *Sink) Close() { s.client.Close() }

// ErrTopic wraps a topic that could not be created or configured.
var ErrTopic = errors.New("topic unavailable")

// ErrRetentionRefused is returned by Ensure, once per topic and retention, when Kafka refused to
// set a namespace's logrouter.io/retention on an existing topic because the collector may not
// alter topic configs (its documented ACLs have no ALTER_CONFIGS: under a controller, the
// controller sets retention). The topic is usable: callers report it and produce.
var ErrRetentionRefused = errors.New("retention not applied: Kafka refused ALTER_CONFIGS")

// Ensure makes sure topic exists (creating it with the configured partitions, replication and
// retention), that its retention is retention when that is non-zero, and that its
// max.message.bytes is known (read again every LimitRefresh, and after Kafka refused a record as
// too large). It is cheap once the topic is ready. After a failure it returns the same error
// until the backoff has passed.
func (s *Sink) Ensure(ctx context.Context, topic string, retention time.Duration) error {
	s.mu.Lock()
	ts := s.topics[topic]
	if ts == nil {
		ts = &topicState{warn: rate.Sometimes{First: 1, Interval: time.Minute}}
		s.topics[topic] = ts
	}
	s.mu.Unlock()

	ts.mu.Lock()
	defer ts.mu.Unlock()
	configured := ts.ready && ts.retention == retention
	if configured && !s.limitDue(ts) {
		return nil
	}
	if ts.err != nil && time.Now().Before(ts.retryAt) {
		return ts.err
	}
	fail := func(err error) error {
		ts.err = fmt.Errorf("%w: %s: %v", ErrTopic, topic, err)
		ts.retryAt = time.Now().Add(s.cfg.TopicBackoff)
		return ts.err
	}
	var notice error
	if !configured {
		if err := s.ensure(ctx, topic, retention, ts.ready); err != nil {
			if !errors.Is(err, ErrRetentionRefused) {
				return fail(err)
			}
			notice = fmt.Errorf("%s: %w", topic, err)
		}
		ts.ready, ts.retention = true, retention
	}
	if s.limitDue(ts) {
		if err := s.readLimit(ctx, topic, ts); err != nil {
			if ts.limit == 0 {
				// Producing without the limit could exceed it: the lines wait in their files.
				return fail(fmt.Errorf("read max.message.bytes (the collector needs DESCRIBE_CONFIGS on its topics): %w", err))
			}
			ts.describedAt = time.Now() // keep the known limit; read it again at the next refresh
		}
	}
	ts.err = nil
	return notice
}

func (s *Sink) limitDue(ts *topicState) bool {
	return ts.limit == 0 || ts.stale.Load() || time.Since(ts.describedAt) >= s.cfg.LimitRefresh
}

// readLimit describes the topic's effective max.message.bytes and sizes its batches to it.
func (s *Sink) readLimit(ctx context.Context, topic string, ts *topicState) error {
	ts.stale.Store(false)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rcs, err := s.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return err
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return err
	}
	limit := 0
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			limit, err = strconv.Atoi(*c.Value)
			if err != nil {
				return fmt.Errorf("max.message.bytes %q: %w", *c.Value, err)
			}
		}
	}
	if limit <= 0 {
		return errors.New("max.message.bytes missing from the topic's configuration")
	}
	ts.limit, ts.describedAt = limit, time.Now()
	// Batches never exceed the topic's limit; below it, the configured cap (raised so the
	// largest record of a topic the collector created fits in one batch).
	want := int32(min(limit, max(s.cfg.BatchMaxBytes, s.cfg.MaxRecordBytes+recordSlack), 1<<30))
	switch cur := ts.batchMax.Load(); {
	case cur == 0 || !ts.served.Load():
		ts.batchMax.Store(want) // franz-go has not read it yet
	case want < cur:
		// Lowered while in use: franz-go keeps a partition's cap until the partition is
		// rebuilt, so drop the topic's producer state. Its buffered records fail and their
		// files send them again (only what Kafka did not acknowledge).
		ts.batchMax.Store(want)
		ts.served.Store(false)
		s.client.PurgeTopicsFromProducing(topic)
	}
	// A limit raised while in use is used from the next start: the cap franz-go holds stays,
	// and records are sized to it (LineRoom), so they always fit.
	return nil
}

func (s *Sink) ensure(ctx context.Context, topic string, retention time.Duration, exists bool) error {
	if err := topicname.Valid(topic); err != nil {
		return err
	}
	ret := s.cfg.Retention
	if retention > 0 {
		ret = retention
	}
	retMS := strconv.FormatInt(ret.Milliseconds(), 10)
	configs := map[string]*string{"retention.ms": &retMS}
	if s.cfg.MaxRecordBytes > 0 {
		// Kafka's default (about 1 MB) is below a --max-line-bytes line after JSON escaping.
		mmb := strconv.Itoa(max(s.cfg.MaxRecordBytes+recordSlack, 1<<20))
		configs["max.message.bytes"] = &mmb
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if !exists {
		resp, err := s.adm.CreateTopic(ctx, int32(s.cfg.Partitions), int16(s.cfg.ReplicationFactor), configs, topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.TopicAlreadyExists):
		default:
			return fmt.Errorf("create: %w", err)
		}
		if retention == 0 {
			return nil // someone else created it: keep its settings
		}
	}
	if retention == 0 {
		return nil
	}
	resps, err := s.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &retMS}}, topic)
	if err == nil {
		_, err = resps.On(topic, nil)
		if err == nil {
			for _, r := range resps {
				if r.Err != nil {
					err = r.Err
				}
			}
		}
	}
	if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return fmt.Errorf("%w (set retention.ms=%s: %v)", ErrRetentionRefused, retMS, err)
	}
	if err != nil {
		return fmt.Errorf("set retention.ms=%s: %w", retMS, err)
	}
	return nil
}

// recordSlack covers a record's key, headers and batch framing.
const recordSlack = 16 << 10
