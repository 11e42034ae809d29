package collectortest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
)

// Broker starts a one-broker kfake cluster, closed at the end of the test, and returns its
// address.
func Broker(t testing.TB) string {
	t.Helper()
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl.ListenAddrs()[0]
}

// Admin is a franz-go admin client for brokers, closed at the end of the test.
func Admin(t testing.TB, brokers string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// EndOffsets returns the end offset of every partition of topic (partition -> offset).
func EndOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	res, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	var errs []error
	res.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
			return
		}
		out[o.Partition] = o.Offset
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s: no partitions (not created yet)", topic)
	}
	return out, nil
}

func sum(m map[int32]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// WaitForRecords polls until each topic's partitions together hold exactly want[topic]
// records (the collector writes no control records: end offsets count records). It fails at
// once when a topic holds more (duplicates), and at the deadline when one holds fewer.
func WaitForRecords(t testing.TB, adm *kadm.Client, want map[string]int64, timeout time.Duration) {
	t.Helper()
	WaitForRecordsWhile(t, adm, want, timeout, nil)
}

// WaitForRecordsWhile is WaitForRecords that also fails as soon as alive (when not nil)
// returns an error, e.g. because the collector process exited.
func WaitForRecordsWhile(t testing.TB, adm *kadm.Client, want map[string]int64, timeout time.Duration, alive func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	topics := slices.Sorted(maps.Keys(want))
	got := map[string]string{}
	for {
		done := true
		for _, topic := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ends, err := EndOffsets(ctx, adm, topic)
			cancel()
			if err != nil {
				got[topic] = err.Error()
				done = false
				continue
			}
			n := sum(ends)
			got[topic] = fmt.Sprint(n)
			if n > want[topic] {
				t.Fatalf("topic %s holds %d records, more than the %d lines written (duplicates)", topic, n, want[topic])
			}
			if n < want[topic] {
				done = false
			}
		}
		if done {
			return
		}
		if alive != nil {
			if err := alive(); err != nil {
				t.Fatalf("while waiting for records (per topic %v, want %v): %v", got, want, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: records per topic %v, want %v", timeout, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CheckCommitted fails unless group committed, for every partition of topic, exactly the
// partition's end offset: the group read everything and its commits work on these topics.
func CheckCommitted(t testing.TB, adm *kadm.Client, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := EndOffsets(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	for p, end := range ends {
		o, ok := committed.Lookup(topic, p)
		switch {
		case !ok && end == 0:
		case !ok:
			t.Errorf("group %s committed nothing for %s/%d (end offset %d)", group, topic, p, end)
		case o.Err != nil:
			t.Errorf("group %s, %s/%d: %v", group, topic, p, o.Err)
		case o.At != end:
			t.Errorf("group %s committed %d for %s/%d, want the end offset %d", group, o.At, topic, p, end)
		}
	}
}

// ReadAll reads topic from its start with franz-go until it has read want records or the
// timeout passed; every record is returned.
func ReadAll(t testing.TB, brokers, topic string, want int, timeout time.Duration) []Msg {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []Msg
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Errorf("franz-go: read %d of %d records from %s in %s", len(out), want, topic, timeout)
			break
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("franz-go: fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			m := Msg{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, Header{h.Key, string(h.Value)})
			}
			out = append(out, m)
		})
	}
	return out
}

// CompressionCodes are the Kafka record batch attribute codes of the collector's codecs.
var CompressionCodes = map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

// CheckCompression fails unless every batch franz-go fetches from topic's first want records
// was compressed with codec: a compatibility check of a codec is only one if the codec was used.
func CheckCompression(t testing.TB, brokers, topic, codec string, want int) {
	t.Helper()
	code, ok := CompressionCodes[codec]
	if !ok {
		t.Fatalf("unknown codec %q", codec)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, bad := 0, map[uint8]int{}
	for n < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n++
			if c := r.Attrs.CompressionType(); c != code {
				bad[c]++
			}
		})
	}
	if n < want {
		t.Errorf("read %d of %d records from %s to check their compression", n, want, topic)
	}
	if len(bad) > 0 {
		t.Errorf("%s: records by compression code %v, want all %d (%s)", topic, bad, code, codec)
	}
}

// WaitForMessage reads topic with franz-go until a record whose message is msg arrives, and
// fails at the timeout.
func WaitForMessage(t testing.TB, brokers, topic, msg string, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		found := false
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record with message %q in %s within %s", msg, topic, timeout)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if rec, err := record.Decode(r.Value); err == nil && rec.Message == msg {
				found = true
			}
		})
		if found {
			return
		}
	}
}

// TopicRecords returns how many records topic holds (the sum of its end offsets).
func TopicRecords(t testing.TB, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := EndOffsets(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	return sum(ends)
}
