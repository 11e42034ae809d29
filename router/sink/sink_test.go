package sink

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newTestSink starts a kfake cluster and a sink on it, with cfg changed by set.
func newTestSink(t *testing.T, set func(*Config)) (*kfake.Cluster, *Sink) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()[0]
	set(&cfg)
	s, err := New(cfg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return c, s
}

func TestEnsureCreatesWithRetentionAndUpdates(t *testing.T) {
	_, s := newTestSink(t, func(cfg *Config) {
		cfg.Partitions = 3
		cfg.TopicBackoff = 50 * time.Millisecond
	})
	ctx := context.Background()
	if err := s.Ensure(ctx, "logs.a", 0); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(s.Client())
	retention := func() string {
		rc, err := adm.DescribeTopicConfigs(ctx, "logs.a")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc[0].Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				return *c.Value
			}
		}
		return ""
	}
	if got := retention(); got != strconv.FormatInt((72*time.Hour).Milliseconds(), 10) {
		t.Fatalf("retention.ms = %q", got)
	}
	td, _ := adm.ListTopics(ctx, "logs.a")
	if len(td["logs.a"].Partitions) != 3 {
		t.Fatalf("partitions: %d", len(td["logs.a"].Partitions))
	}
	// A namespace override is applied to the existing topic.
	if err := s.Ensure(ctx, "logs.a", 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := retention(); got != strconv.FormatInt((7*24*time.Hour).Milliseconds(), 10) {
		t.Fatalf("retention.ms after override = %q", got)
	}
	// Produce works once the topic exists.
	done := make(chan error, 1)
	s.Produce(ctx, &kgo.Record{Topic: "logs.a", Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEnsureInvalidTopicIsRememberedAndRetried(t *testing.T) {
	c, _ := kfake.NewCluster(kfake.NumBrokers(1))
	defer c.Close()
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()[0]
	cfg.TopicBackoff = time.Hour
	s, err := New(cfg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err1 := s.Ensure(context.Background(), "bad topic", 0)
	if !errors.Is(err1, ErrTopic) {
		t.Fatalf("err = %v", err1)
	}
	if err2 := s.Ensure(context.Background(), "bad topic", 0); err2 != err1 {
		t.Fatalf("failure not remembered during backoff: %v", err2)
	}
	if err := s.Ensure(context.Background(), "logs.good", 0); err != nil {
		t.Fatalf("another topic affected: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Kafka.Brokers = ""
	c.Compression = "brotli"
	c.Partitions = 0
	c.ReplicationFactor = 0
	c.Retention = time.Second
	err := c.Validate()
	for _, want := range []string{"--brokers", "--compression", "--topic-partitions", "--topic-replication-factor", "--topic-retention"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want mention of %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestLineRoom: the record room follows each topic's own max.message.bytes (read with
// DescribeConfigs): Kafka's default and a small limit for topics created beforehand, the raised
// one for a topic the sink creates. Without DESCRIBE_CONFIGS the topic is an error that says so.
func TestLineRoom(t *testing.T) {
	c, s := newTestSink(t, func(cfg *Config) {
		cfg.TopicBackoff = 10 * time.Millisecond
		cfg.MaxRecordBytes = 8 << 20
	})
	ctx := context.Background()
	adm := kadm.NewClient(s.Client())
	small := "262144"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "logs.default"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, "logs.small"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		topic string
		batch int
	}{
		{"logs.default", 1048588},
		{"logs.small", 262144},
		{"logs.created", 8<<20 + recordSlack}, // created by the sink, with room for MaxRecordBytes
	} {
		if got := s.LineRoom(tt.topic); got != 0 {
			t.Errorf("%s: LineRoom before Ensure = %d, want 0", tt.topic, got)
		}
		if err := s.Ensure(ctx, tt.topic, 0); err != nil {
			t.Fatal(err)
		}
		if got := s.batchMaxFor(tt.topic); int(got) != tt.batch {
			t.Errorf("%s: batch cap %d, want %d", tt.topic, got, tt.batch)
		}
		if got := s.LineRoom(tt.topic); got != tt.batch-batchOverhead {
			t.Errorf("%s: LineRoom = %d, want %d", tt.topic, got, tt.batch-batchOverhead)
		}
	}

	denied := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "logs.denied"); err != nil {
		t.Fatal(err)
	}
	err := s.Ensure(ctx, "logs.denied", 0)
	if !errors.Is(err, ErrTopic) || !strings.Contains(err.Error(), "DESCRIBE_CONFIGS") {
		t.Fatalf("Ensure without DESCRIBE_CONFIGS = %v", err)
	}
	if s.LineRoom("logs.denied") != 0 {
		t.Errorf("LineRoom known without reading the limit")
	}
	denied.Remove()
	time.Sleep(20 * time.Millisecond) // past the topic backoff
	if err := s.Ensure(ctx, "logs.denied", 0); err != nil {
		t.Fatalf("after the permission was granted: %v", err)
	}
	if got := s.LineRoom("logs.denied"); got != 1048588-batchOverhead {
		t.Errorf("LineRoom = %d", got)
	}
}
