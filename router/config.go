package router

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/nodefiles"
	"github.com/logrouter/logrouter/router/sink"
)

// Config of the collector. DefaultConfig gives the defaults; Register binds the flags.
type Config struct {
	LogDir        string
	PodsDir       string
	CheckpointDir string
	TopicTemplate string
	Node          string
	// Cluster names the cluster in every record (empty: not written), for several clusters
	// sharing one Kafka (docs/operations.md#many-clusters).
	Cluster string

	Sink sink.Config

	// BufferBytes is the global budget of bytes held for lines: read but not yet acknowledged by
	// Kafka, and parts of lines waiting for their end.
	BufferBytes int64
	// MaxLineBytes is the largest message one record carries; longer lines are cut into chunks.
	MaxLineBytes int
	// ReadBytes is the size of one read from a file.
	ReadBytes int

	PollInterval       time.Duration // how often an idle file is checked for growth
	ScanInterval       time.Duration // how often the directories are scanned for new files
	CheckpointInterval time.Duration
	// RotatedIdle is how long a rotated or deleted file must stay idle at its end before it is let go.
	RotatedIdle time.Duration
	// ShutdownGrace bounds how long SIGTERM waits for in-flight records.
	ShutdownGrace time.Duration
	// AckTimeout is how long lines may wait for Kafka's acknowledgement, with none arriving,
	// before the collector logs, counts and reports itself not ready.
	AckTimeout time.Duration
	// StartAtEnd makes files without a checkpoint start at their end (default: beginning).
	StartAtEnd bool
	// NodeFiles are the node's own files (the audit log) read with the container logs.
	NodeFiles nodefiles.Config
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		LogDir:        "/var/log/containers",
		PodsDir:       "/var/log/pods",
		CheckpointDir: "/var/lib/logrouter",
		TopicTemplate: topic.DefaultTemplate,
		Sink:          sink.DefaultConfig(),
		// In flight for throughput is bandwidth x acknowledgement latency: 6 MiB loses no
		// throughput and keeps a collector with 500 open files under 64 MiB RSS
		// (docs/benchmarks.md). Partial lines count against it too.
		BufferBytes:        6 << 20,
		MaxLineBytes:       1 << 20,
		ReadBytes:          64 << 10,
		PollInterval:       250 * time.Millisecond,
		ScanInterval:       time.Second,
		CheckpointInterval: time.Second,
		RotatedIdle:        5 * time.Second,
		ShutdownGrace:      20 * time.Second,
		AckTimeout:         15 * time.Second,
	}
}

// Register binds the collector's flags to c.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.LogDir, "log-dir", c.LogDir, "directory of the container log symlinks")
	fs.StringVar(&c.PodsDir, "pods-dir", c.PodsDir, "kubelet's pod log directory")
	fs.StringVar(&c.CheckpointDir, "checkpoint-dir", c.CheckpointDir, "where read positions are saved (a hostPath that outlives the pod)")
	fs.StringVar(&c.TopicTemplate, "topic-template", c.TopicTemplate, "Kafka topic of a namespace: {namespace} and {label:<namespace label>} are replaced")
	fs.StringVar(&c.Node, "node-name", c.Node, "this node's name, put in every record (in Kubernetes: the downward API's spec.nodeName)")
	fs.StringVar(&c.Cluster, "cluster", c.Cluster, "this cluster's name, put in every record as \"cluster\" when several clusters share one Kafka (a DNS-1123 label or subdomain); empty: not written")
	c.Sink.Register(fs)
	fs.Int64Var(&c.BufferBytes, "buffer-bytes", c.BufferBytes, "bytes held in memory for lines (read and not yet acknowledged by Kafka, or parts of lines waiting for their end), shared fairly by namespaces; reading pauses beyond it")
	fs.IntVar(&c.MaxLineBytes, "max-line-bytes", c.MaxLineBytes, "largest message in one record; longer lines are cut into ordered chunks marked split")
	fs.IntVar(&c.ReadBytes, "read-bytes", c.ReadBytes, "size of one read from a log file")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "how often an idle file is checked for new lines")
	fs.DurationVar(&c.ScanInterval, "scan-interval", c.ScanInterval, "how often the log directories are scanned for new and rotated files")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", c.CheckpointInterval, "how often read positions are saved")
	fs.DurationVar(&c.RotatedIdle, "rotated-idle", c.RotatedIdle, "how long a rotated or deleted file stays idle at its end before it is closed")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "on SIGTERM, how long to wait for Kafka to acknowledge in-flight lines")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", c.AckTimeout, "how long lines may wait for Kafka's acknowledgement, with none arriving, before the collector logs it, counts it and reports not ready on /readyz")
	fs.BoolVar(&c.StartAtEnd, "start-at-end", c.StartAtEnd, "start files that have no checkpoint at their end instead of their beginning")
	c.NodeFiles.Register(fs)
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.LogDir == "" && c.PodsDir == "" {
		errs = append(errs, errors.New("--log-dir or --pods-dir is required"))
	}
	if c.CheckpointDir == "" {
		errs = append(errs, errors.New("--checkpoint-dir is required"))
	}
	if c.Cluster != "" {
		if msgs := validation.IsDNS1123Subdomain(c.Cluster); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--cluster %q: %s", c.Cluster, strings.Join(msgs, "; ")))
		}
	}
	if _, err := topic.Parse(c.TopicTemplate); err != nil {
		errs = append(errs, fmt.Errorf("--topic-template: %w", err))
	}
	if err := c.Sink.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxLineBytes < 256 {
		errs = append(errs, fmt.Errorf("--max-line-bytes %d: must be at least 256", c.MaxLineBytes))
	}
	if c.ReadBytes < 4096 {
		errs = append(errs, fmt.Errorf("--read-bytes %d: must be at least 4096", c.ReadBytes))
	}
	if c.BufferBytes < int64(8*c.ReadBytes) {
		errs = append(errs, fmt.Errorf("--buffer-bytes %d: must be at least 8 x --read-bytes (%d): a read reserves six times its size", c.BufferBytes, 8*c.ReadBytes))
	}
	for name, d := range map[string]time.Duration{"--poll-interval": c.PollInterval, "--scan-interval": c.ScanInterval, "--checkpoint-interval": c.CheckpointInterval, "--ack-timeout": c.AckTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if err := c.NodeFiles.Validate(c.LogDir, c.PodsDir); err != nil {
		errs = append(errs, err)
	}
	if c.RotatedIdle < 0 || c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("--rotated-idle and --shutdown-grace must not be negative"))
	}
	return errors.Join(errs...)
}
