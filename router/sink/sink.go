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
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/kafkaconn"
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
	// MaxRecordBytes is the largest record value the collector can make; batches and the
	// topics' max.message.bytes are sized so that such a record is accepted (set by the collector).
	MaxRecordBytes int
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

	mu     sync.Mutex
	topics map[string]*topicState
}

type topicState struct {
	mu        sync.Mutex
	ready     bool
	retention time.Duration // applied retention (0: the default)
	err       error
	retryAt   time.Time
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
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(cc),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytes(int32(max(cfg.BatchMaxBytes, cfg.MaxRecordBytes+recordSlack))),
		// The collector's byte budget is the real bound: every record accounts for more than
		// 256 bytes, so these caps never bind first and Produce never blocks. (franz-go sizes its
		// promise ring from the record cap, so it must not be huge.)
		kgo.MaxBufferedRecords(int(max(maxBufferedBytes/256, 10000))),
		kgo.MaxBufferedBytes(int(maxBufferedBytes)*2+(64<<20)),
	)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &Sink{cfg: cfg, client: client, adm: kadm.NewClient(client), topics: map[string]*topicState{}}, nil
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

// Ensure makes sure topic exists (creating it with the configured partitions, replication and
// retention) and that its retention is retention when that is non-zero. It is cheap once the
// topic is ready. After a failure it returns the same error until the backoff has passed.
func (s *Sink) Ensure(ctx context.Context, topic string, retention time.Duration) error {
	s.mu.Lock()
	ts := s.topics[topic]
	if ts == nil {
		ts = &topicState{}
		s.topics[topic] = ts
	}
	s.mu.Unlock()

	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.ready && ts.retention == retention {
		return nil
	}
	if ts.err != nil && time.Now().Before(ts.retryAt) {
		return ts.err
	}
	err := s.ensure(ctx, topic, retention, ts.ready)
	if err != nil {
		ts.err = fmt.Errorf("%w: %s: %v", ErrTopic, topic, err)
		ts.retryAt = time.Now().Add(s.cfg.TopicBackoff)
		return ts.err
	}
	ts.ready, ts.retention, ts.err = true, retention, nil
	return nil
}

func (s *Sink) ensure(ctx context.Context, topic string, retention time.Duration, exists bool) error {
	if err := ValidTopic(topic); err != nil {
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
	if err != nil {
		return fmt.Errorf("set retention.ms=%s: %w", retMS, err)
	}
	return nil
}

// recordSlack covers a record's key, headers and batch framing.
const recordSlack = 16 << 10

// ValidTopic checks Kafka's rules for topic names.
func ValidTopic(t string) error {
	if t == "" || t == "." || t == ".." {
		return fmt.Errorf("invalid topic name %q", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("invalid topic name %q: longer than 249 characters", t)
	}
	return validTopicChars(t)
}

func validTopicChars(t string) error {
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid topic name %q: character %q (allowed: ASCII letters, digits, '.', '_', '-')", t, c)
		}
	}
	return nil
}
