package controller

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// Config configures the controller.
type Config struct {
	Kafka kafkaconn.Config
	// TopicTemplate names a namespace's topic (as the collector's --topic-template).
	TopicTemplate string

	// LeaderElect: only the instance holding the Lease reconciles (default true).
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease; empty: the pod's own namespace.
	LeaderElectionNamespace string
	// LeaderElectionID is the Lease's name.
	LeaderElectionID string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration

	// Workers is how many pipelines are reconciled at once.
	Workers int
	// KubeQPS and KubeBurst bound the controller's requests to the API server (client side).
	KubeQPS   float64
	KubeBurst int
	// KafkaTimeout bounds one namespace's topic calls.
	KafkaTimeout time.Duration

	// Counters: how the collectors' counters are folded into status.
	Counters counters.FoldConfig
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		TopicTemplate:    topic.DefaultTemplate,
		LeaderElect:      true,
		LeaderElectionID: "logrouter-controller",
		LeaseDuration:    15 * time.Second,
		RenewDeadline:    10 * time.Second,
		RetryPeriod:      2 * time.Second,
		Workers:          16,
		KubeQPS:          300,
		KubeBurst:        600,
		KafkaTimeout:     15 * time.Second,
		Counters:         counters.DefaultFoldConfig(),
	}
}

// Register adds the controller's flags to fs.
func (c *Config) Register(fs *flag.FlagSet) {
	c.Kafka.Register(fs, "")
	// --kafka-brokers is the name the controller documents; --brokers (kafkaconn's) is its alias.
	fs.StringVar(&c.Kafka.Brokers, "kafka-brokers", c.Kafka.Brokers, "Kafka bootstrap brokers, comma-separated host:port (alias of --brokers)")
	fs.StringVar(&c.TopicTemplate, "topic-template", c.TopicTemplate, "a namespace's topic: {namespace} and {label:<name>} placeholders (as the collector's)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "elect one active instance through a Lease (run several replicas with it)")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", c.LeaderElectionNamespace, "namespace of the Lease (default: the pod's namespace)")
	fs.StringVar(&c.LeaderElectionID, "leader-election-id", c.LeaderElectionID, "name of the Lease")
	fs.DurationVar(&c.LeaseDuration, "leader-election-lease-duration", c.LeaseDuration, "how long a Lease holds without renewal before another instance takes over")
	fs.IntVar(&c.Workers, "workers", c.Workers, "pipelines reconciled at once")
	fs.Float64Var(&c.KubeQPS, "kube-api-qps", c.KubeQPS, "requests per second to the Kubernetes API (client-side limit)")
	fs.IntVar(&c.KubeBurst, "kube-api-burst", c.KubeBurst, "burst of requests to the Kubernetes API")
	fs.DurationVar(&c.Counters.Interval, "counters-interval", c.Counters.Interval, "a pipeline's status.counters is written at most this often (and only when changed)")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("kafka: %w", err))
	}
	if _, err := topic.Parse(c.TopicTemplate); err != nil {
		errs = append(errs, fmt.Errorf("--topic-template: %w", err))
	}
	if c.LeaderElect && c.LeaderElectionID == "" {
		errs = append(errs, errors.New("--leader-election-id is required with --leader-elect"))
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		errs = append(errs, fmt.Errorf("leader election: want lease duration (%v) > renew deadline (%v) > retry period (%v) > 0", c.LeaseDuration, c.RenewDeadline, c.RetryPeriod))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("--workers must be at least 1"))
	}
	if c.KubeQPS <= 0 || c.KubeBurst < 1 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	if c.KafkaTimeout <= 0 {
		errs = append(errs, errors.New("kafka timeout must be positive"))
	}
	if err := c.Counters.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
