package integration

// The collector against a real Kafka broker started with testcontainers-go. Skipped cleanly
// where there is no Docker engine.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/kafka"

	"github.com/logrouter/logrouter/integration/collectortest"
)

// realKafkaImage is the broker image (a KRaft single node); LOGROUTER_KAFKA_IMAGE overrides it.
func realKafkaImage() string {
	if img := os.Getenv("LOGROUTER_KAFKA_IMAGE"); img != "" {
		return img
	}
	return "confluentinc/confluent-local:7.5.0" // Apache Kafka 3.5
}

// startRealKafka starts a Kafka container and returns its bootstrap address. It skips the
// test when there is no healthy Docker engine: this must come before any other testcontainers
// call, which would panic without one.
func startRealKafka(t *testing.T) string {
	t.Helper()
	testcontainers.SkipIfProviderIsNotHealthy(t)
	// Pulling the image may take a while the first time on a CI runner.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kc, err := kafka.Run(ctx, realKafkaImage(), kafka.WithClusterID("logrouter-test"))
	testcontainers.CleanupContainer(t, kc)
	if err != nil {
		t.Fatalf("start kafka container %s: %v", realKafkaImage(), err)
	}
	brokers, err := kc.Brokers(ctx)
	if err != nil {
		t.Fatalf("kafka container brokers: %v", err)
	}
	return strings.Join(brokers, ",")
}

// TestCollectorRealKafka runs the collector against a real Kafka broker (topic creation with
// the broker's default replication, idempotent acks=all production), then reads each
// namespace topic back with franz-go, a sarama consumer group and, when installed, kcat.
func TestCollectorRealKafka(t *testing.T) {
	brokers := startRealKafka(t)
	w := collectortest.NewWorkload(t, []string{"team-a", "team-b"}, 2, []string{"app", "sidecar"})
	w.Write(t, 150, 200)
	col := collectortest.Start(t, collectortest.Config(t, w.Node, brokers, 3))
	w.Write(t, 150, 200)
	adm := collectortest.Admin(t, brokers)
	collectortest.WaitForRecords(t, adm, w.Want(), 45*time.Second)
	if err := col.Stop(); err != nil {
		t.Fatal(err)
	}
	collectortest.WaitForRecords(t, adm, w.Want(), 5*time.Second)

	schema := collectortest.LoadSchema(t)
	want := w.Want()
	for _, ns := range w.Namespaces {
		topic := collectortest.Topic(ns)
		t.Run("franz-go/"+ns, func(t *testing.T) {
			w.Verify(t, "franz-go", ns, schema, collectortest.ReadAll(t, brokers, topic, int(want[topic]), 30*time.Second))
		})
		t.Run("sarama/"+ns, func(t *testing.T) {
			group := "realkafka-sarama-" + ns
			msgs := saramaGroupRead(t, brokers, group, topic, sarama.V3_5_0_0, int(want[topic]), 30*time.Second)
			w.Verify(t, "sarama", ns, schema, msgs)
			collectortest.CheckCommitted(t, adm, group, topic)
		})
		t.Run("kcat/"+ns, func(t *testing.T) {
			kcat := kcatPath(t)
			out := runKcat(t, kcat, 30*time.Second, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "10", "-J")
			w.Verify(t, "kcat -J", ns, schema, parseKcatJSON(t, out))
		})
	}
}
