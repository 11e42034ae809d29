package router

import (
	"hash/maphash"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/filemeta"
)

// fileView is what one metadata snapshot means for a file's records: topic, key, headers and
// the namespace's metrics. Built once per snapshot (useSnapshot), read by the line step.
type fileView struct {
	snap    *filemeta.Snapshot
	nss     *nsState
	nsm     *nsMetrics
	topic   string
	topicOK error
	key     []byte
	headers []kgo.RecordHeader
	framing int            // bytes of key and headers in a record (fitLines)
	meta    *pipeline.Meta // what pipelines' selectors and conditions see
	// The policy as last computed for this view (policy), and from which Policy.
	pol    *nsPolicy
	polSrc *pipeline.Policy
	// node is a node file's source (nodefiles.go); nil for container logs.
	node *nodeSource
	// refused says why a container log's lines are read and not produced: its namespace or
	// topic is the platform's (reserved.go).
	refused string
}

func (c *Collector) newView(s *filemeta.Snapshot) *fileView {
	nss := c.namespace(s.Namespace)
	v := &fileView{snap: s, nss: nss, nsm: nss.m, key: []byte(s.Key), meta: metaOf(s, c.cfg.Node)}
	v.topic, v.topicOK = c.tmpl.Render(s.Namespace, s.NamespaceLabels)
	v.headers = []kgo.RecordHeader{
		{Key: record.HeaderNamespace, Value: []byte(s.Namespace)},
		{Key: record.HeaderPod, Value: []byte(s.Pod)},
		{Key: record.HeaderContainer, Value: []byte(s.Container)},
		{Key: record.HeaderSchema, Value: record.SchemaHeaderValue},
	}
	if ns := c.nodeSource(s.Namespace); ns != nil {
		ns.view(v)
	} else {
		v.refused = c.refusal(s.Namespace, v.topic)
	}
	return v
}

// policy returns the namespace policy in force for the view, computed again only when the
// collector's policy changed (one atomic load otherwise).
func (v *fileView) policy(c *Collector) *nsPolicy {
	if v.node != nil {
		return v.pol // the platform's own: no tenant policy or limit applies
	}
	p := c.policy.Load()
	if v.pol == nil || v.polSrc != p {
		v.pol, v.polSrc = v.nss.policy(p, v.snap.NamespaceLabels), p
	}
	return v.pol
}

// skipped reports whether lines are read and not produced: the namespace opted out
// (annotation) or the platform's policy does not collect it.
func (v *fileView) skipped(p *nsPolicy) bool {
	return v.snap.Excluded || !p.Collected || v.refused != ""
}

// verdict is what the line step did with one assembled line.
type verdict uint8

const (
	verdictEmit verdict = iota // a record of the line is in the chunk
	verdictDrop                // no record: skipped (excluded namespace, already in Kafka)
	verdictHold                // held for joining; a later record carries it
)

// lineCounts is what the line step counted for one chunk: flushed to the namespace's metrics
// once per chunk (read counters when it is produced, acknowledged ones when Kafka has it).
type lineCounts struct {
	lines, msgBytes, parseErrs, splits, invalid, excluded, inKafka int64
	refused                                                        int64 // lines of a refused view (reserved.go)
	// limitDropped: lines beyond the namespace's limit (drop); limitThrottled: lines fed after
	// they waited for it (throttle); both counted with the pipeline outcomes (flushCounted).
	limitDropped, limitThrottled int64
	// shipped is the number of input lines the chunk's records carry.
	shipped int64
}

// Add adds o to c.
func (c *lineCounts) Add(o lineCounts) {
	c.lines += o.lines
	c.msgBytes += o.msgBytes
	c.parseErrs += o.parseErrs
	c.splits += o.splits
	c.invalid += o.invalid
	c.excluded += o.excluded
	c.refused += o.refused
	c.inKafka += o.inKafka
	c.shipped += o.shipped
	c.limitDropped += o.limitDropped
	c.limitThrottled += o.limitThrottled
}

// flushRead adds the counters known when the chunk is produced.
func (c *lineCounts) flushRead(m *nsMetrics) {
	m.linesRead.Add(float64(c.lines))
	m.bytesRead.Add(float64(c.msgBytes))
	for _, x := range [...]struct {
		n int64
		m interface{ Add(float64) }
	}{{c.parseErrs, m.parseErrors}, {c.splits, m.splitLines}, {c.invalid, m.invalidUTF8}, {c.excluded, m.excludedLines}, {c.refused, m.refusedLines}, {c.inKafka, m.alreadyInKafka}} {
		if x.n > 0 {
			x.m.Add(float64(x.n))
		}
	}
}

// flushCounted adds the counters that count as the pipeline outcomes do: once, when Kafka
// acknowledged the chunk in read order (counted.go).
func (c *lineCounts) flushCounted(m *nsMetrics) {
	if c.limitThrottled > 0 {
		m.limitThrottled.Add(float64(c.limitThrottled))
	}
	if c.limitDropped > 0 {
		m.limitDropped.Add(float64(c.limitDropped))
	}
}

// flushAcked adds the counters of a chunk Kafka acknowledged.
func (c *lineCounts) flushAcked(m *nsMetrics) {
	m.linesAcked.Add(float64(c.shipped))
	m.bytesAcked.Add(float64(c.msgBytes))
}

// newChunk starts a chunk whose lines are made with the file's current view: its emit is where
// the assembler's outputs go.
func (f *file) newChunk(reserve int64, lines, slab int) *chunk {
	ch := &chunk{f: f, view: f.view, ns: f.view.snap.Namespace, reserved: reserve, ckOff: -1,
		recs: f.c.getRecs(lines), keys: f.c.getKeys(lines), slab: f.c.getSlab(slab),
		pol: f.view.policy(f.c), set: f.view.nss.set.Load()}
	ch.promise = ch.onPromise
	ch.pemit = func(r *pipeline.Record) { f.emitPiped(ch, r) }
	f.useSet(ch, ch.set)
	f.refreshRooms()
	ch.emit = func(o *assemble.Output) {
		var st assemble.State
		if o.Checkpointable {
			st = f.asm.State()
		}
		f.line(ch, o, st)
	}
	return ch
}

// line is the line step: it turns one assembled line o into a record of chunk ch (made with
// ch.view) and moves the chunk's checkpoint to o's end with state st when o is checkpointable.
func (f *file) line(ch *chunk, o *assemble.Output, st assemble.State) verdict {
	prev := f.lastCk
	if o.Checkpointable {
		f.lastCk = ckPos{o.End, st}
	}
	v := f.lineRecord(ch, o, prev)
	if o.Checkpointable {
		// Not past a line a pipeline holds: it is read again after a restart.
		ck, held := f.holdFloor()
		if !held {
			ck = f.lastCk
		}
		ch.ckOff, ch.ckState = ck.off, ck.st
	}
	return v
}

// lineRecord is the line step without its checkpoint: prev is the checkpoint before o.
func (f *file) lineRecord(ch *chunk, o *assemble.Output, prev ckPos) verdict {
	n := &ch.counts
	n.lines++
	n.msgBytes += int64(len(o.Msg))
	if o.ParseError != "" {
		n.parseErrs++
	}
	if o.Split && o.Index == 0 {
		n.splits++
	}
	if ch.view.skipped(ch.pol) {
		if ch.view.refused != "" {
			n.refused++
		} else {
			n.excluded++
		}
		return verdictDrop
	}
	if ch.limitDrop {
		// Counted as the pipeline outcomes are (counted.go): a line read again after a rewind
		// was counted by the read before it.
		if o.Start >= f.countFrom {
			n.limitDropped++
			if s := f.slotFor(ch, o.Stream); s != nil {
				s.counts[outLimitDropped]++
			}
		}
		return verdictDrop
	}
	topic := ch.view.topic
	if s := f.slotFor(ch, o.Stream); s != nil {
		if s.refused != "" {
			n.refused++
			f.reportPipelineRefused(s)
			return verdictDrop
		}
		if !o.Split && o.ParseError == "" {
			v := f.runLine(ch, s, o, prev)
			f.syncPipeHeld()
			return v
		}
		// Raw, but where the pipeline's records go: a long line does not change destination.
		if o.Start >= f.countFrom {
			s.counts[outBypassed]++
		}
		topic = s.topic
	}
	key := outKey{o.Start, -1, o.End}
	if o.Split {
		key[1] = int64(o.Index)
	}
	if f.sentBefore(key, o.Msg) {
		n.inKafka++
		return verdictDrop
	}
	l := record.Line{TS: o.TS, Stream: o.Stream, Message: o.Msg, Offset: o.Start,
		Split: o.Split, SplitIndex: o.Index, SplitLast: o.Last, ParseError: o.ParseError}
	if ch.view.node != nil {
		f.parseNodeLine(ch, ch.view.node, o, &l)
	}
	f.appendRecord(ch, topic, key, &l, 1)
	return verdictEmit
}

// sentBefore reports whether the output key with message msg is known to be in Kafka: acknowledged
// before a produce failure (resend), or found by the restart read-back (inKafka).
func (f *file) sentBefore(key outKey, msg []byte) bool {
	if f.resend != nil {
		if _, ok := f.resend[key]; ok {
			return true
		}
	}
	if f.inKafka == nil {
		return false
	}
	k := [2]int64{key[0], key[1]}
	h, ok := f.inKafka[k]
	if !ok {
		return false
	}
	delete(f.inKafka, k)
	if len(f.inKafka) == 0 {
		f.inKafka = nil
	}
	if h != maphash.Bytes(f.c.msgSeed, msg) {
		return false
	}
	f.skipAgain(key) // also after a produce failure before the next checkpoint
	return true
}

// appendRecord encodes l into the chunk as a record to topic carrying lines input lines.
func (f *file) appendRecord(ch *chunk, topic string, key outKey, l *record.Line, lines int) {
	start := len(ch.slab)
	var invalid bool
	ch.slab, invalid = record.AppendJSON(ch.slab, ch.view.snap.Fragment, l)
	if invalid {
		ch.counts.invalid++
	}
	ch.counts.shipped += int64(lines)
	v := ch.view
	ch.recs = append(ch.recs, kgo.Record{Topic: topic, Key: v.key, Headers: v.headers, Value: ch.slab[start:len(ch.slab):len(ch.slab)]})
	ch.keys = append(ch.keys, key)
}
