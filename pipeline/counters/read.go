package counters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endOffsets lists the topic's partitions that hold records and the end offset of each, the
// offset a reader from the start has to reach. A missing topic holds nothing.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(lctx, topic)
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(lctx, topic)
	}
	if err == nil {
		err = errors.Join(starts.Error(), ends.Error())
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); ok && o.Offset > s.Offset {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

// reached removes from remaining the partition of p when its records reach its end offset.
func reached(remaining map[int32]int64, p kgo.FetchTopicPartition) {
	if end, ok := remaining[p.Partition]; ok && len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset+1 >= end {
		delete(remaining, p.Partition)
	}
}

// ReadToEnd calls fn for every record of topic, in offset order per partition, from the start
// up to the end offsets the topic had when it began, through a client made with opts. A
// missing topic has no records. Publisher.Resume reads the node's records with it.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	remaining, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return err
	}
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				fn(r)
			}
			reached(remaining, p)
		})
	}
	return nil
}
