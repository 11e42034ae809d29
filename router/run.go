package router

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/logline"
)

// Running tenant pipelines on a file's lines.
//
// A file keeps one pipeline.Runner per pipeline that selected any of its lines (runSlot), made
// for the namespace's Set in force (runSet). When a chunk loads another Set, the old runners'
// held lines are flushed into that chunk first, then new runners start.
//
// What pipelines see: whole lines. Lines the assembler cut because they were longer than the
// record limit (split chunks) and lines whose runtime framing could not be parsed bypass the
// pipeline's steps and ship raw, as without pipelines but to the pipeline's output topic
// (counted as outcome "bypassed"): a
// chunk of a line is not a line a parser or condition can judge, and joining chunks back would
// defeat the bound that cut them.
//
// Checkpoints: while a runner holds lines (multiline), the chunk's checkpoint stays at the last
// checkpointable position before the first held line, with the assembler's state there. A
// restart or a produce failure reads them again and joins them again; what was already
// acknowledged from there on is skipped by its dedup key (start offset, message hash).

// ckPos is a checkpointable position: offset and the assembler's state there.
type ckPos struct {
	off int64
	st  assemble.State
}

// runSlot is one pipeline's runner for one file.
type runSlot struct {
	p     *pipeline.Pipeline
	r     *pipeline.Runner
	topic string
	// refused says why the lines it selects are read and not produced: its output topic is the
	// platform's (reserved.go); refusedLogged once logged.
	refused       string
	refusedLogged bool
	room          int // the topic's record room (sink.LineRoom), refreshed per chunk
	pm            *pipeMetrics
	// held are the input lines the runner holds, oldest first, each with the checkpoint
	// before it; heldBytes their message bytes (counted in the budget).
	held      []heldLine
	heldBytes int64
	counts    [numOutcomes]int64 // not yet added to pm
}

type heldLine struct {
	start, bytes int64
	ck           ckPos
}

// Per-pipeline outcomes (logrouter_collector_pipeline_lines_total{outcome}).
const (
	outEmitted        = iota // records emitted (a joined record once)
	outDropped               // removed by a keep/drop condition
	outSampledOut            // removed by a sample step
	outParseFailed           // marked by a parse step (fields_error)
	outPanicked              // a step panicked: shipped raw
	outHeldFlushed           // joined records emitted by a flush (timeout, rotation, shutdown, change)
	outJoined                // input lines joined into a record with lines before them
	outBypassed              // split chunks and unparseable framing: shipped raw without the pipeline
	outLimitDropped          // dropped by the namespace's limit (drop action)
	outLimitThrottled        // fed after it waited for the namespace's limit (throttle action)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"emitted", "dropped", "sampled_out", "parse_failed", "panicked", "held_flushed", "joined", "bypassed", "limit_dropped", "limit_throttled"}

// pipeMetrics is one pipeline object's counts: its series (by namespace and name, so shared
// with an object of the same name created again) and its own totals (by UID too: what
// PipelineCounters publishes for status.counters, where a recreated pipeline starts at zero).
type pipeMetrics struct {
	prom [numOutcomes]prometheus.Counter
	n    [numOutcomes]atomic.Int64
}

// add counts n lines or records of outcome o.
func (pm *pipeMetrics) add(o int, n int64) {
	pm.prom[o].Add(float64(n))
	pm.n[o].Add(n)
}

// forPipeline returns the counts of pipeline p (namespace, name and UID).
func (m *metrics) forPipeline(p *pipeline.Pipeline) *pipeMetrics {
	return m.forKey(counters.Key{Namespace: p.Namespace, Pipeline: p.Name, UID: p.UID})
}

func (m *metrics) forKey(k counters.Key) *pipeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pm := m.pipes[k]; pm != nil {
		return pm
	}
	pm := &pipeMetrics{}
	for i := range pm.prom {
		pm.prom[i] = m.pipeLines.WithLabelValues(k.Namespace, k.Pipeline, outcomeNames[i])
	}
	m.pipes[k] = pm
	return pm
}

// metaOf is what selectors and conditions see of a snapshot: built once per snapshot.
func metaOf(s *filemeta.Snapshot, node string) *pipeline.Meta {
	m := &pipeline.Meta{Namespace: s.Namespace, Pod: s.Pod, Container: s.Container, Node: node}
	if k := s.Kubernetes; k != nil {
		m.Labels, m.Annotations, m.OwnerKind, m.OwnerName = k.Labels, k.Annotations, k.OwnerKind, k.OwnerName
	}
	return m
}

// useSet makes the file's runners those of set: the old runners' held records go into ch.
func (f *file) useSet(ch *chunk, set *pipeline.Set) {
	if set == f.runSet {
		return
	}
	f.flushRunners(ch, nil)
	f.flushPipeCounts(ch)
	f.slots = f.slots[:0]
	f.runSet = set
	f.forOK = [3]bool{}
}

// resetRunners drops the runners' state without emitting: the file is read again from its
// checkpoint (a rewind or truncation), which lies before every held line.
func (f *file) resetRunners(at ckPos) {
	for _, s := range f.slots {
		s.r.TakeCounts() // of lines read again now: counted then
		s.counts = [numOutcomes]int64{}
		s.r = s.p.NewRunner()
		s.held = s.held[:0]
		s.heldBytes = 0
	}
	f.lastCk = at
	f.syncPipeHeld()
}

// slotFor returns the runner that takes lines of stream, or nil (the line ships unchanged).
func (f *file) slotFor(ch *chunk, stream string) *runSlot {
	if ch.set == nil {
		return nil
	}
	si := 2
	switch stream {
	case record.StreamStdout:
		si = 0
	case record.StreamStderr:
		si = 1
	}
	if !f.forOK[si] || si == 2 {
		f.forP[si], f.forOK[si] = ch.set.For(ch.view.meta, stream), true
	}
	p := f.forP[si]
	if p == nil {
		return nil
	}
	for _, s := range f.slots {
		if s.p == p {
			return s
		}
	}
	s := &runSlot{p: p, r: p.NewRunner(), topic: ch.view.topic, pm: f.c.metrics.forPipeline(p)}
	if p.Suffix != "" {
		s.topic = topic.WithSuffix(ch.view.topic, p.Suffix)
		s.refused = f.c.topicRefusal(s.topic)
	}
	s.room = f.lineRoom(s.topic)
	f.slots = append(f.slots, s)
	return s
}

// runLine runs slot's pipeline on line o of chunk ch. prev is the checkpoint before o.
func (f *file) runLine(ch *chunk, s *runSlot, o *assemble.Output, prev ckPos) verdict {
	rec := &f.rec
	*rec = pipeline.Record{Meta: ch.view.meta, Stream: o.Stream, Message: o.Msg, Start: o.Start, End: o.End, Lines: 1}
	if t, err := logline.ParseUTC(o.TS); err == nil {
		rec.Time = t
	}
	f.recTime, f.recTS = rec.Time, o.TS
	ch.slot = s
	var now time.Time // only a multiline step reads it: no clock read per line otherwise
	if s.p.Joins() {
		now = f.c.now()
	}
	out := s.r.Process(rec, now, ch.pemit)
	ch.slot = nil
	f.recTS = nil
	f.lastStart = o.Start
	if o.Start < f.countFrom {
		s.r.TakeCounts() // read again: its outcomes were counted (counted.go)
	}
	v := verdictEmit
	switch out.Verdict {
	case pipeline.Drop, pipeline.SampledOut:
		v = verdictDrop
	case pipeline.Hold:
		s.held = append(s.held, heldLine{start: o.Start, bytes: int64(len(o.Msg)), ck: prev})
		s.heldBytes += int64(len(o.Msg))
		v = verdictHold
	}
	f.trimHeld(s)
	if start, ok := s.r.Holding(); ok && (len(s.held) == 0 || s.held[0].start > start) {
		// Held from a line we did not see held: keep the checkpoint before this line at least.
		s.held = append([]heldLine{{start: start, bytes: int64(len(o.Msg)), ck: prev}}, s.held...)
		s.heldBytes += int64(len(o.Msg))
	}
	return v
}

// trimHeld drops the held lines the runner no longer holds.
func (f *file) trimHeld(s *runSlot) {
	start, ok := s.r.Holding()
	i := 0
	for i < len(s.held) && (!ok || s.held[i].start < start) {
		s.heldBytes -= s.held[i].bytes
		i++
	}
	if i > 0 {
		s.held = append(s.held[:0], s.held[i:]...)
	}
}

// holdFloor is the checkpoint before the first line any runner holds (ok false: none held).
func (f *file) holdFloor() (ck ckPos, ok bool) {
	for _, s := range f.slots {
		if len(s.held) > 0 && (!ok || s.held[0].ck.off < ck.off) {
			ck, ok = s.held[0].ck, true
		}
	}
	return ck, ok
}

// pipeHeldBytes is what the runners hold.
func (f *file) pipeHeldBytes() (n int64) {
	for _, s := range f.slots {
		n += s.heldBytes
	}
	return n
}

// syncPipeHeld makes the budget count what the runners hold.
func (f *file) syncPipeHeld() { f.syncBudgetHeld(&f.pipeHeld, f.pipeHeldBytes()) }

// flushRunners emits into ch what the runners hold (only those due at now, unless now is
// nil), and moves ch's checkpoint as far as what is still held allows.
func (f *file) flushRunners(ch *chunk, now *time.Time) {
	flushed := false
	for _, s := range f.slots {
		if len(s.held) == 0 {
			if _, ok := s.r.Holding(); !ok {
				continue
			}
		}
		if now != nil && !s.r.FlushDue(*now) {
			continue
		}
		ch.slot = s
		s.r.Flush(ch.pemit)
		ch.slot = nil
		if f.lastStart < f.countFrom {
			s.r.TakeCounts() // flushed while reading again: counted then (counted.go)
		}
		f.trimHeld(s)
		flushed = true
	}
	if !flushed {
		return
	}
	f.syncPipeHeld()
	ck, held := f.holdFloor()
	if !held {
		ck = f.lastCk
	}
	if ck.off > ch.ckOff {
		ch.ckOff, ch.ckState = ck.off, ck.st
	}
}

// flushDue reports whether a runner's held lines waited past their flush timeout.
func (f *file) flushDue(now time.Time) bool {
	for _, s := range f.slots {
		if len(s.held) > 0 && s.r.FlushDue(now) {
			return true
		}
	}
	return false
}

// emitPiped encodes a record a pipeline emitted into ch (pemit).
func (f *file) emitPiped(ch *chunk, r *pipeline.Record) {
	s := ch.slot
	lines := max(r.Lines, 1)
	key := outKey{r.Start, -1, r.End}
	if f.sentBefore(key, r.Message) {
		ch.counts.inKafka += int64(lines)
		return
	}
	ts := f.recTS
	if r != &f.rec || ts == nil || !r.Time.Equal(f.recTime) {
		f.tsBuf = r.Time.UTC().AppendFormat(f.tsBuf[:0], "2006-01-02T15:04:05.000000000Z07:00")
		ts = f.tsBuf
	}
	l := record.Line{TS: ts, Stream: r.Stream, Message: r.Message, Offset: r.Start, FieldsError: r.FieldsError, Lines: r.Lines}
	if r.Fields != nil {
		f.fieldsBuf = pipeline.AppendFieldsJSON(f.fieldsBuf[:0], r.Fields)
		l.Fields = f.fieldsBuf
	}
	if len(l.Message) > f.lineMax && f.lineMax >= minLine {
		// A joined record longer than the topic allows goes as split chunks, like a long line:
		// nothing is cut off. Its fields (of the whole) are not repeated on every chunk.
		f.appendSplit(ch, s.topic, &l, r.End, lines)
		return
	}
	start, n := len(ch.slab), len(ch.recs)
	f.appendRecord(ch, s.topic, key, &l, lines)
	if room := s.room; room > 0 && len(ch.slab)-start+ch.view.framing > room {
		// Fields made the record too large for its topic: it ships without them, marked.
		ch.slab, ch.recs, ch.keys = ch.slab[:start], ch.recs[:n], ch.keys[:n]
		ch.counts.shipped -= int64(lines)
		l.Fields, l.FieldsError = nil, "fields dropped: the record would exceed the topic's max.message.bytes"
		f.appendRecord(ch, s.topic, key, &l, lines)
	}
}

// appendSplit appends l as split chunks of at most lineMax message bytes. end is where the
// record's last input line ends.
func (f *file) appendSplit(ch *chunk, topic string, l *record.Line, end int64, lines int) {
	msg := l.Message
	l.Fields, l.Split = nil, true
	for i := 0; len(msg) > 0; i++ {
		n := min(len(msg), f.lineMax)
		l.Message, l.SplitIndex, l.SplitLast = msg[:n], i, n == len(msg)
		msg = msg[n:]
		c := 0
		if l.SplitLast {
			c = lines
		}
		f.appendRecord(ch, topic, outKey{l.Offset, int64(i), end}, l, c)
	}
}

// flushPipeCounts moves the runners' counts into ch (once per chunk), where they count once
// Kafka acknowledged ch (counted.go).
func (f *file) flushPipeCounts(ch *chunk) {
	for _, s := range f.slots {
		s.takeCounts()
		if s.counts != ([numOutcomes]int64{}) {
			ch.takePipeCounts(s.pm, &s.counts)
		}
	}
}

// takeCounts moves the runner's own counts into the slot's.
func (s *runSlot) takeCounts() {
	c := s.r.TakeCounts()
	s.counts[outEmitted] += c.Emitted
	s.counts[outDropped] += c.Dropped
	s.counts[outSampledOut] += c.SampledOut
	s.counts[outParseFailed] += c.ParseFailed
	s.counts[outPanicked] += c.Panicked
	s.counts[outHeldFlushed] += c.HeldFlushed
	s.counts[outJoined] += c.Joined
}

// lineRoom is the record room of topic (0: unknown).
func (f *file) lineRoom(topic string) int {
	if f.c.sink == nil {
		return 0
	}
	return f.c.sink.LineRoom(topic)
}

// refreshRooms reads the runners' topics' record room again (once per chunk).
func (f *file) refreshRooms() {
	for _, s := range f.slots {
		s.room = f.lineRoom(s.topic)
	}
}
