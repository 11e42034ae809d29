package router

import (
	"context"
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// reconcile narrows what a restart sends twice. A file resumed from its checkpoint re-reads the
// lines Kafka acknowledged after that checkpoint was saved (at most --checkpoint-interval worth);
// before reading, the collector looks in the namespace's topic, from shortly before the
// checkpoint's save time, for records this node produced from that file (node, src, offset, split
// index) past its checkpoint, and the file skips exactly those outputs. Anything not found is sent
// again: a failed or incomplete look-up costs duplicates, never a line.
func (c *Collector) reconcile(ctx context.Context) {
	c.mu.Lock()
	files, done := c.resumed, c.reconciling
	c.resumed, c.reconciling = nil, nil
	c.mu.Unlock()
	defer close(done)
	if len(files) == 0 {
		return
	}
	if c.cfg.Node == "" {
		// Without a node name another node's records could look like ours.
		c.log.Info("no --node-name: lines acknowledged after the last checkpoint are sent again")
		return
	}
	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()

	bySrc := map[string]*file{}
	since := map[string]int64{} // topic -> earliest time to read from, in ms
	for _, f := range files {
		topic, err := c.tmpl.Render(f.meta.Namespace, nil)
		if err != nil {
			continue // a template on namespace labels needs the enricher: duplicates, not loss
		}
		f.inKafka = map[[2]int64]struct{}{}
		bySrc[f.meta.Src] = f
		ms := f.checkpointAt.Add(-10 * time.Second).UnixMilli()
		if cur, ok := since[topic]; !ok || ms < cur {
			since[topic] = ms
		}
	}
	opts, err := c.cfg.Sink.Kafka.Options()
	if err != nil {
		return
	}
	adm := kadm.NewClient(c.sink.Client())
	found := 0
	for topic, ms := range since {
		starts, err := adm.ListOffsetsAfterMilli(rctx, ms, topic)
		if err != nil {
			c.log.Warn("read-back of the previous run's records failed; they may be sent again", "topic", topic, "err", err)
			continue
		}
		ends, err := adm.ListEndOffsets(rctx, topic)
		if err != nil {
			c.log.Warn("read-back of the previous run's records failed; they may be sent again", "topic", topic, "err", err)
			continue
		}
		offsets := map[int32]kgo.Offset{}
		remaining := map[int32]int64{} // partition -> end offset still to reach
		starts.Each(func(o kadm.ListedOffset) {
			end, ok := ends.Lookup(topic, o.Partition)
			if o.Err != nil || !ok || end.Err != nil || o.Offset < 0 || o.Offset >= end.Offset {
				return
			}
			offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
			remaining[o.Partition] = end.Offset
		})
		if len(offsets) == 0 {
			continue
		}
		cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
		if err != nil {
			continue
		}
		for len(remaining) > 0 && rctx.Err() == nil {
			fs := cl.PollFetches(rctx)
			fs.EachRecord(func(r *kgo.Record) {
				if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
					delete(remaining, r.Partition)
				}
				var v struct {
					Node   string `json:"node"`
					Src    string `json:"src"`
					Offset int64  `json:"offset"`
					Split  *struct {
						Index int64 `json:"index"`
					} `json:"split"`
				}
				if json.Unmarshal(r.Value, &v) != nil || v.Node != c.cfg.Node {
					return
				}
				f := bySrc[v.Src]
				if f == nil || v.Offset < f.acked {
					return
				}
				k := [2]int64{v.Offset, -1}
				if v.Split != nil {
					k[1] = v.Split.Index
				}
				f.inKafka[k] = struct{}{}
				found++
			})
		}
		cl.Close()
		if len(remaining) > 0 {
			c.log.Warn("read-back of the previous run's records incomplete; some may be sent again", "topic", topic)
		}
	}
	for _, f := range files {
		if len(f.inKafka) == 0 {
			f.inKafka = nil
		}
	}
	c.log.Info("read back what the previous run produced after its checkpoints", "files", len(files), "records_found", found, "took", time.Since(began).String())
}
