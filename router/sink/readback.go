package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadBack reads topic from the first record at or after sinceMs (Unix milliseconds) to the
// partitions' end offsets as of the call, and calls each for every record: a restart uses it to
// find what its previous run produced after its last checkpoint. A topic that does not exist
// holds nothing. Every failed step is passed to report (step "list offsets", "client" or
// "incomplete") and reading goes on where it can: a caller must treat what was not found as not
// in Kafka (sent again), never the other way round. opts connect a new consumer client.
func ReadBack(ctx context.Context, opts []kgo.Opt, adm *kadm.Client, topic string, sinceMs int64, each func(*kgo.Record), report func(step string, err error)) {
	starts, err := adm.ListOffsetsAfterMilli(ctx, sinceMs, topic)
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err == nil {
		err = errors.Join(starts.Error(), ends.Error())
	}
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return // no topic: nothing was sent to it
	case err != nil && (len(starts) == 0 || len(ends) == 0):
		report("list offsets", err)
		return
	case err != nil:
		report("list offsets", err) // the other partitions are read back
	}
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{} // partition -> end offset still to reach
	starts.Each(func(o kadm.ListedOffset) {
		end, ok := ends.Lookup(topic, o.Partition)
		if o.Err != nil || !ok || end.Err != nil || o.Offset < 0 || o.Offset >= end.Offset {
			return // an error was reported above
		}
		offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
		remaining[o.Partition] = end.Offset
	})
	if len(offsets) == 0 {
		return
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		// Small fetches: this runs before the budget governs memory.
		kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20))...)
	if err != nil {
		report("client", err)
		return
	}
	defer cl.Close()
	var fetchErr error
	for len(remaining) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = err
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			each(r)
		})
	}
	if len(remaining) > 0 {
		err := fetchErr
		if err == nil {
			err = ctx.Err()
		}
		report("incomplete", fmt.Errorf("%d partitions not read to their end: %w", len(remaining), err))
	}
}
