// Package archivetest helps tests of the archive: it produces sequence-numbered records in the
// collector's format and audits an archive, counting in how many objects each Kafka record
// appears.
package archivetest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/archiver/row"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
)

// Line describes one produced record.
type Line struct {
	Namespace, Pod, Container string
	Time                      time.Time // the line's own time
	Message                   string
	KafkaTime                 time.Time // zero: the producer's clock
	Partition                 int32     // -1: by key
	// Suffix, if set, sends the record to the namespace's suffix topic logs.<ns>.<suffix>.
	Suffix string
	// Fields, FieldsError and Lines are a tenant pipeline's output (record.Line).
	Fields      []byte
	FieldsError string
	Lines       int
}

// WaitArchived waits until the claim chain of each partition in want reaches its next offset
// (one past the last record produced there), following the claims from offset 0, and every
// object the claims name is at its final key: a claim is the commit point, and its objects are
// published after it (by its writer, or by whoever recovers the chain after a kill,
// docs/archive.md). A claim is never replaced, so each poll goes on from where the last one
// stopped: one read per new claim, not the whole chain again (hundreds of claims per partition
// in the system tests). On timeout the error counts the partitions behind and their unclaimed
// records, and names the first ten: one stalled partition reads differently from an archiver
// behind on all of them.
func WaitArchived(ctx context.Context, b *blob.Bucket, prefix string, want map[Pos]int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	next := map[Pos]int64{}
	unpublished := map[Pos][]string{} // final keys of claimed objects not seen yet
	for {
		// The last pass looks at every partition, so that a failure tells one stalled
		// partition from an archiver behind on many.
		last := time.Now().After(deadline)
		var behind []string
		var missing int64
		for p, end := range want {
			for next[p] < end {
				data, err := b.ReadAll(ctx, layout.ClaimKey(prefix, p.Topic, p.Partition, next[p]))
				if err != nil {
					break
				}
				c, err := layout.DecodeClaim(data)
				if err != nil {
					return err
				}
				if c.Next() <= next[p] {
					return fmt.Errorf("%s[%d]: the claim at %d ends at %d: the chain does not advance", p.Topic, p.Partition, next[p], c.Next())
				}
				next[p] = c.Next()
				for _, o := range c.Objects {
					unpublished[p] = append(unpublished[p], o.Key)
				}
			}
			if next := next[p]; next < end {
				behind = append(behind, fmt.Sprintf("%s[%d] at %d of %d", p.Topic, p.Partition, next, end))
				missing += end - next
			} else {
				for len(unpublished[p]) > 0 {
					key := unpublished[p][0]
					if ok, err := b.Exists(ctx, key); err != nil || !ok {
						behind = append(behind, fmt.Sprintf("%s[%d]: claimed object %s not published (%v)", p.Topic, p.Partition, key, err))
						break
					}
					unpublished[p] = unpublished[p][1:]
				}
			}
			if len(behind) > 0 && !last {
				break
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if last {
			slices.Sort(behind)
			shown := behind[:min(len(behind), 10)]
			return fmt.Errorf("archive incomplete after %v: %d of %d partitions behind, %d records unclaimed: %s",
				timeout, len(behind), len(want), missing, strings.Join(shown, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Record builds the Kafka record the collector would produce for l.
func Record(l Line) *kgo.Record {
	src := record.Source{Namespace: l.Namespace, Pod: l.Pod, Container: l.Container, Node: "node-1", PodUID: "uid-" + l.Pod,
		Kubernetes: &record.Kubernetes{Labels: map[string]string{"app": l.Pod}}}
	v, _ := record.AppendJSON(nil, src.Fragment(), &record.Line{
		TS: []byte(l.Time.UTC().Format(time.RFC3339Nano)), Stream: record.StreamStdout, Message: []byte(l.Message),
		Fields: l.Fields, FieldsError: l.FieldsError, Lines: l.Lines,
	})
	r := &kgo.Record{
		Topic: topic.WithSuffix(topic.Of(l.Namespace), l.Suffix), Value: v, Timestamp: l.KafkaTime, Partition: l.Partition,
		Key: []byte(record.Key("", src.PodUID, l.Namespace, l.Pod, l.Container)),
		Headers: []kgo.RecordHeader{
			{Key: record.HeaderNamespace, Value: []byte(l.Namespace)},
			{Key: record.HeaderPod, Value: []byte(l.Pod)},
			{Key: record.HeaderContainer, Value: []byte(l.Container)},
			{Key: record.HeaderSchema, Value: record.SchemaHeaderValue},
		},
	}
	return r
}

// Seq formats a sequence-numbered message.
func Seq(ns string, i int) string { return ns + "-seq-" + strconv.Itoa(i) }

// Produce produces records synchronously.
func Produce(ctx context.Context, cl *kgo.Client, rs []*kgo.Record) error {
	return cl.ProduceSync(ctx, rs...).FirstErr()
}

// Pos is a Kafka record's position.
type Pos struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Audit is what an archive holds.
type Audit struct {
	// Count is how many objects hold each record.
	Count map[Pos]int
	// Rows holds each record's row (the last one read, when duplicated).
	Rows map[Pos]row.Row
	// Objects lists the data objects.
	Objects []layout.Object
	// Problems lists objects whose content disagrees with their name.
	Problems []string
}

// Read audits every data object under prefix (listing the whole archive: tests only).
func Read(ctx context.Context, b *blob.Bucket, prefix string) (*Audit, error) {
	a := &Audit{Count: map[Pos]int{}, Rows: map[Pos]row.Row{}}
	it := b.List(&blob.ListOptions{Prefix: layout.Join(prefix, "namespace=")})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, err
		}
		o, err := layout.ParseKey(prefix, obj.Key)
		if err != nil {
			a.Problems = append(a.Problems, err.Error())
			continue
		}
		a.Objects = append(a.Objects, o)
		check := func(r *row.Row) {
			p := Pos{r.KafkaTopic, r.KafkaPartition, r.KafkaOffset}
			if p.Topic != o.Topic || p.Partition != o.Partition || p.Offset < o.Start || p.Offset > o.End || r.Namespace != o.Namespace {
				a.Problems = append(a.Problems, fmt.Sprintf("%s holds %v of namespace %s", obj.Key, p, r.Namespace))
			}
			a.Count[p]++
			a.Rows[p] = *r
		}
		switch o.Format {
		case layout.Parquet:
			data, err := b.ReadAll(ctx, obj.Key)
			if err != nil {
				return nil, err
			}
			err = objectformat.ParquetRows(bytesReaderAt(data), int64(len(data)), func(rows []row.Row) error {
				for i := range rows {
					check(&rows[i])
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", obj.Key, err)
			}
		case layout.NDJSON:
			r, err := b.NewReader(ctx, obj.Key, nil)
			if err != nil {
				return nil, err
			}
			err = objectformat.NDJSONRows(r, func(rw *row.Row) error {
				check(rw)
				return nil
			})
			r.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", obj.Key, err)
			}
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteObject encodes entries as the archiver would and stores them as object o, with the
// statistics metadata the query engine prunes by (none when withStats is false, as for
// objects written by other tools). It returns the object's statistics.
func WriteObject(ctx context.Context, b *blob.Bucket, prefix string, o layout.Object, es []objectformat.Entry, withStats bool) (*objectformat.Stats, error) {
	w, err := b.NewWriter(ctx, o.Key(prefix), nil)
	if err != nil {
		return nil, err
	}
	enc, err := objectformat.New(o.Format, w, objectformat.Options{})
	if err != nil {
		return nil, err
	}
	for i := range es {
		if err := enc.Add(&es[i]); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if withStats {
		// Rewrite with metadata now that the statistics are known.
		data, err := b.ReadAll(ctx, o.Key(prefix))
		if err != nil {
			return nil, err
		}
		if err := b.WriteAll(ctx, o.Key(prefix), data, &blob.WriterOptions{Metadata: enc.Stats().Metadata()}); err != nil {
			return nil, err
		}
	}
	return enc.Stats(), nil
}

// Entry builds the archiver's entry for a line at a Kafka position.
func Entry(l Line, topic string, partition int32, offset int64) objectformat.Entry {
	r := Record(l)
	return objectformat.Entry{Topic: topic, Partition: partition, Offset: offset, KafkaTime: l.KafkaTime,
		Namespace: l.Namespace, Pod: l.Pod, Container: l.Container, Value: r.Value}
}
