package router

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/sink"
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
	gone := c.goneUnread()
	if len(files) == 0 && len(gone) == 0 {
		return
	}
	if c.cfg.Node == "" {
		// Without a node name another node's records could look like ours.
		c.log.Info("no --node-name: lines acknowledged after the last checkpoint are sent again")
		return
	}
	if c.gate {
		// The pipelines in force decide which suffix topics may hold the files' records.
		select {
		case <-c.applied:
		case <-ctx.Done():
			return
		}
	}
	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()

	bySrc := map[string]*file{}
	since := map[string]int64{} // topic -> earliest time to read from, in ms
	lookIn := func(topic string, from time.Time) {
		ms := from.Add(-10 * time.Second).UnixMilli()
		if cur, ok := since[topic]; !ok || ms < cur {
			since[topic] = ms
		}
	}
	for _, f := range files {
		topic, err := c.fileTopic(f.meta.Namespace)
		if err != nil {
			// A template on namespace labels needs the enricher: duplicates, not loss.
			c.readbackFailed("topic", f.meta.Namespace, err)
			continue
		}
		f.inKafka = map[[2]int64]uint64{}
		bySrc[f.meta.Src] = f
		// The namespace's pipelines may have sent its lines to suffix topics too.
		topics := append([]string{topic}, c.suffixTopics(f.meta.Namespace, topic)...)
		from := f.checkpointAt
		if tr := f.pendingTrunc; tr != nil && tr.gone != nil {
			// What the previous run sent of the content before the truncation.
			tr.gone.topics = topics
			if tr.gone.entry.Updated.Before(from) {
				from = tr.gone.entry.Updated
			}
		}
		for _, t := range topics {
			lookIn(t, from)
		}
	}
	// Files gone since their checkpoint: what of them reached Kafka after it was saved is not lost.
	goneBySrc := map[string]*goneFile{}
	for _, g := range gone {
		topic, err := c.fileTopic(g.namespace)
		if err != nil {
			c.readbackFailed("topic", g.namespace, err)
			continue
		}
		goneBySrc[g.src()] = g
		c.mu.Lock()
		if f := c.files[fileid.ID{Dev: g.entry.Dev, Inode: g.entry.Inode}]; f != nil && f.meta.Src == g.src() {
			g.holder = f.fd // a new file took the inode: its records are not the gone file's
		}
		c.mu.Unlock()
		g.topics = append([]string{topic}, c.suffixTopics(g.namespace, topic)...)
		for _, t := range g.topics {
			lookIn(t, g.entry.Updated)
		}
	}
	opts, err := c.cfg.Sink.Kafka.Options()
	if err != nil {
		c.readbackFailed("client", "", err)
		return
	}
	adm := kadm.NewClient(c.sink.Client())
	found := 0
	failed := map[string]bool{} // topics not read back completely
	for topic, ms := range since {
		sink.ReadBack(rctx, opts, adm, topic, ms, func(r *kgo.Record) {
			var v struct {
				Node      string `json:"node"`
				Message   string `json:"message"`
				Src       string `json:"src"`
				Offset    int64  `json:"offset"`
				Namespace string `json:"namespace"`
				Pod       string `json:"pod"`
				Container string `json:"container"`
				Split     *struct {
					Index int64 `json:"index"`
				} `json:"split"`
			}
			if json.Unmarshal(r.Value, &v) != nil || v.Node != c.cfg.Node {
				return
			}
			k := [2]int64{v.Offset, -1}
			if v.Split != nil {
				k[1] = v.Split.Index
			}
			rec := filemeta.PathMeta{Namespace: v.Namespace, Pod: v.Pod, Container: v.Container}
			f := bySrc[v.Src]
			if g := goneBySrc[v.Src]; g != nil && !g.holderHas(k[0], k[1], v.Message) {
				g.sawLine(k[0], k[1], v.Message, rec)
				found++
				return
			}
			if f == nil {
				return
			}
			if tr := f.pendingTrunc; tr != nil && tr.gone != nil {
				tr.gone.sawLine(k[0], k[1], v.Message, rec) // of its content before the truncation
			}
			if v.Offset < f.acked {
				return
			}
			f.inKafka[k] = maphash.String(c.msgSeed, v.Message)
			found++
		}, func(step string, err error) {
			c.readbackFailed(step, topic, err)
			failed[topic] = true
		})
	}
	settle := func(g *goneFile) {
		g.unsure = false
		for _, t := range g.topics {
			g.unsure = g.unsure || failed[t]
		}
	}
	for _, g := range goneBySrc {
		settle(g)
	}
	for _, f := range bySrc {
		if tr := f.pendingTrunc; tr != nil && tr.gone != nil {
			settle(tr.gone)
		}
	}
	for _, f := range files {
		if len(f.inKafka) == 0 {
			f.inKafka = nil
		}
	}
	c.log.Info("read back what the previous run produced after its checkpoints (or of files without one)", "files", len(files), "records_found", found, "took", time.Since(began).String())
}

// readbackFailed counts and logs a failed step of the read-back: the lines it covers are sent
// again, never lost.
func (c *Collector) readbackFailed(step, topic string, err error) {
	c.metrics.readbackErrors.Inc()
	c.readbackLog.Log("read-back of the previous run's records failed; lines it would have found are sent again", "step", step, "topic", topic, "err", err)
}
