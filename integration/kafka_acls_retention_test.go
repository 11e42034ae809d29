package integration

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/router/sink"
)

// TestCollectorRetentionUnderACLs: a namespace's logrouter.io/retention on a topic that already
// exists needs ALTER_CONFIGS, which the collector's documented ACLs do not have (the controller
// sets retention). Kafka's refusal must not hold the namespace's lines back: Ensure reports it
// once, as ErrRetentionRefused, and the topic takes records with its retention unchanged.
func TestCollectorRetentionUnderACLs(t *testing.T) {
	k := startACLKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const name = "logs.team-r"
	adm := kadm.NewClient(k.admin)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil {
		t.Fatal(err)
	}
	retention := func() string {
		rc, err := adm.DescribeTopicConfigs(ctx, name)
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
	before := retention()

	cfg := sink.DefaultConfig()
	cfg.Kafka = k.conn("collector")
	s, err := sink.New(cfg, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Ensure(ctx, name, 2*24*time.Hour)
	if !errors.Is(err, sink.ErrRetentionRefused) {
		t.Fatalf("first Ensure = %v, want ErrRetentionRefused", err)
	}
	if err := s.Ensure(ctx, name, 2*24*time.Hour); err != nil {
		t.Fatalf("second Ensure = %v, want nil (reported once)", err)
	}
	if got := retention(); got != before || got == strconv.FormatInt((2*24*time.Hour).Milliseconds(), 10) {
		t.Fatalf("retention.ms = %q, want it unchanged (%q)", got, before)
	}
	done := make(chan error, 1)
	s.Produce(ctx, &kgo.Record{Topic: name, Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("produce after the refusal: %v", err)
	}

	// Any other failure still holds the lines: a topic the collector may not even describe.
	k.revoke(t, "collector", func(b kafkaacl.Binding) bool { return b.Operation.String() == "DESCRIBE_CONFIGS" && b.Prefixed })
	s2, err := sink.New(cfg, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Ensure(ctx, name, 0); err == nil || errors.Is(err, sink.ErrRetentionRefused) {
		t.Fatalf("Ensure without DESCRIBE_CONFIGS = %v, want a topic error", err)
	}
}
