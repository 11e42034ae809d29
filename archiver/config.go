// Package archiver copies every namespace topic into object storage exactly once: a Kafka
// consumer group reads the topics, spools each partition's records on local disk, cuts them
// into objects at hour boundaries, by size and by age, and claims every offset range with a
// write-if-absent object before it commits offsets (docs/archive.md).
package archiver

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/internal/bucketurl"
	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/topic"
)

// Config configures an Archiver. Start from DefaultConfig.
type Config struct {
	Kafka kafkaconn.Config
	// Bucket is a gocloud.dev/blob URL of a durable bucket: s3://, gs://, azblob://, file:///abs/path
	// (internal/bucketurl.Check). Tests may archive into memory with WithBucket instead.
	Bucket string
	// Prefix is the key prefix of the archive inside the bucket.
	Prefix string
	// TopicsRegex selects the topics; a capture group named "namespace" gives the namespace
	// for records without a namespace header. The default, topic.SuffixPattern, selects every
	// namespace topic and its suffix topics (logs.<ns>, logs.<ns>.<suffix>).
	TopicsRegex string
	Group       string
	// InstanceID makes the archiver a static group member: a restarted process with the same
	// ID takes its partitions back at once, without waiting for the session timeout.
	InstanceID     string
	SessionTimeout time.Duration
	// Format is "parquet" or "ndjson".
	Format string
	// MaxObjectBytes rotates an object after this much input (record values).
	MaxObjectBytes int64
	// MaxObjectAge rotates an object this long after its first record arrived, so an idle
	// partition's records reach the archive within this bound (plus the upload of the
	// partition's previous object, which an age seal waits for).
	MaxObjectAge time.Duration
	// MemoryBudget bounds the heap the archiver plans for: fetch buffers, Parquet row groups
	// and spool write buffers are sized from it.
	MemoryBudget int64
	// SpoolDir holds spool files; it is cleared at start and locked against a second process.
	SpoolDir string
	// MaxSpoolBytes pauses consumption while this much sealed data waits for upload.
	MaxSpoolBytes int64
	// Uploaders is how many objects are encoded and uploaded at once.
	Uploaders int
	// TopicRefresh is how often new topics matching TopicsRegex are looked for.
	TopicRefresh time.Duration
	// DrainTimeout bounds the final flush on shutdown.
	DrainTimeout time.Duration
	// StagingGrace is how old an unclaimed staging object must be before the sweeper deletes
	// it; an upload attempt gives up claiming after half of it.
	StagingGrace time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Kafka:          kafkaconn.Config{Brokers: "localhost:9092"},
		TopicsRegex:    topic.SuffixPattern,
		Group:          "logrouter-archiver",
		SessionTimeout: 45 * time.Second,
		Format:         "parquet",
		MaxObjectBytes: 128 << 20,
		MaxObjectAge:   10 * time.Minute,
		MemoryBudget:   192 << 20,
		SpoolDir:       filepath.Join(os.TempDir(), "logrouter-archiver-spool"),
		MaxSpoolBytes:  4 << 30,
		Uploaders:      2,
		TopicRefresh:   30 * time.Second,
		DrainTimeout:   2 * time.Minute,
		StagingGrace:   6 * time.Hour,
	}
}

// Register adds the archiver's flags to fs, with c's current values as defaults.
func (c *Config) Register(fs *flag.FlagSet) {
	c.Kafka.Register(fs, c.Kafka.Brokers)
	fs.StringVar(&c.Bucket, "bucket", c.Bucket, "archive bucket URL (s3://, gs://, azblob://, file://)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "key prefix of the archive inside the bucket")
	fs.StringVar(&c.TopicsRegex, "topics-regex", c.TopicsRegex, "topics to archive; a (?P<namespace>...) group names the namespace of records without a namespace header")
	fs.StringVar(&c.Group, "group", c.Group, "Kafka consumer group")
	fs.StringVar(&c.InstanceID, "instance-id", c.InstanceID, "static group membership ID (for example the pod name of a StatefulSet)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", c.SessionTimeout, "group session timeout: how long a dead archiver keeps its partitions")
	fs.StringVar(&c.Format, "format", c.Format, "object format: parquet or ndjson")
	fs.Int64Var(&c.MaxObjectBytes, "max-object-bytes", c.MaxObjectBytes, "rotate an object after this many bytes of input")
	fs.DurationVar(&c.MaxObjectAge, "max-object-age", c.MaxObjectAge, "rotate an object this long after its first record")
	fs.Int64Var(&c.MemoryBudget, "memory-budget", c.MemoryBudget, "bytes of memory to plan buffers for")
	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "local directory for spool files (cleared at start)")
	fs.Int64Var(&c.MaxSpoolBytes, "max-spool-bytes", c.MaxSpoolBytes, "pause consuming while this many bytes wait for upload")
	fs.IntVar(&c.Uploaders, "uploaders", c.Uploaders, "objects encoded and uploaded concurrently")
	fs.DurationVar(&c.TopicRefresh, "topic-refresh", c.TopicRefresh, "how often to look for new topics")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "bound on the final flush at shutdown")
	fs.DurationVar(&c.StagingGrace, "staging-grace", c.StagingGrace, "age after which unclaimed staging objects are deleted")
}

// Validate reports every problem at once.
func (c *Config) Validate() error { return c.validate(true) }

// validate checks Bucket only when the archiver is to open it (see WithBucket).
func (c *Config) validate(bucket bool) error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !bucket {
		// The caller supplied the bucket.
	} else if c.Bucket == "" {
		errs = append(errs, errors.New("--bucket is required"))
	} else if err := bucketurl.Check(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("--bucket: %w", err))
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "//") {
		errs = append(errs, fmt.Errorf("--prefix %q: want a relative key prefix", c.Prefix))
	}
	if _, err := regexp.Compile(c.TopicsRegex); err != nil {
		errs = append(errs, fmt.Errorf("--topics-regex: %w", err))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("--group is required"))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--session-timeout %v: want at least 1s", c.SessionTimeout))
	}
	if _, err := layout.ParseFormat(c.Format); err != nil {
		errs = append(errs, fmt.Errorf("--format: %w", err))
	}
	if c.MaxObjectBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("--max-object-bytes %d: want at least 1024", c.MaxObjectBytes))
	}
	if c.MaxObjectAge < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--max-object-age %v: want at least 100ms", c.MaxObjectAge))
	}
	if c.MemoryBudget < 32<<20 {
		errs = append(errs, fmt.Errorf("--memory-budget %d: want at least 32 MiB", c.MemoryBudget))
	}
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("--spool-dir is required"))
	}
	if c.MaxSpoolBytes < c.MaxObjectBytes {
		errs = append(errs, fmt.Errorf("--max-spool-bytes %d: want at least --max-object-bytes", c.MaxSpoolBytes))
	}
	if c.Uploaders < 1 || c.Uploaders > 64 {
		errs = append(errs, fmt.Errorf("--uploaders %d: want 1..64", c.Uploaders))
	}
	if c.TopicRefresh < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--topic-refresh %v: want at least 100ms", c.TopicRefresh))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout %v: want > 0", c.DrainTimeout))
	}
	if c.StagingGrace < time.Second {
		errs = append(errs, fmt.Errorf("--staging-grace %v: want at least 1s", c.StagingGrace))
	}
	return errors.Join(errs...)
}

// rowGroupBytes is the input buffered per Parquet row group: a quarter of the budget shared by
// the concurrent encoders (the rest is fetch buffers, spool buffers and the runtime).
func (c *Config) rowGroupBytes() int64 {
	return min(64<<20, c.MemoryBudget/4/int64(c.Uploaders))
}

// fetchMaxBytes bounds one fetch response.
func (c *Config) fetchMaxBytes() int32 { return int32(min(32<<20, c.MemoryBudget/8)) }
