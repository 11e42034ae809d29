package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/logline"
	"github.com/logrouter/logrouter/router/sink"
)

// recordOverhead approximates what one record costs beyond its value: the kgo.Record and
// franz-go's bookkeeping for it.
const recordOverhead = int64(unsafe.Sizeof(kgo.Record{})) + 64

// file is one open log file and the goroutine that reads it.
type file struct {
	c      *Collector
	id     fileid.ID
	meta   filemeta.PathMeta
	group  string
	fd     *os.File
	handle filemeta.Handle
	live   atomic.Bool
	path   atomic.Pointer[string]
	prev   *file // an older file of the same container, read first so lines keep their order
	// node is a node file's source (nodefiles.go); nil for container logs.
	node *nodeSource
	// idleMtime is the modification time last checked at the end of the file (step).
	idleMtime time.Time
	// refusedLogged is the refusal last logged for the file (reserved.go).
	refusedLogged string

	caughtUp     chan struct{} // closed once the file is at its end and no longer live
	caughtUpOnce sync.Once
	reconciled   chan struct{} // closed when inKafka is known (files resumed at start)
	checkpointAt time.Time     // when the checkpoint it resumed from was saved
	// pendingTrunc: truncated while the collector was stopped; the copy's tail is read first.
	pendingTrunc *truncation

	// Owned by the file's goroutine.
	asm     *assemble.Assembler
	snap    *filemeta.Snapshot
	view    *fileView // what snap means for records: built once per snapshot
	bufSize int
	// sizeSeen is the largest size the content was seen with: stat'ed before a read that found
	// the content unchanged. A truncation counts the copy's unread tail to it if the copy is gone.
	sizeSeen int64
	// Tenant pipelines (run.go): the Set the runners belong to, a runner per pipeline that took
	// lines, the pipeline per stream (stdout, stderr, other) for runSet and view, the last
	// checkpointable position passed, and what the runners hold (in the budget).
	runSet    *pipeline.Set
	slots     []*runSlot
	forP      [3]*pipeline.Pipeline
	forOK     [3]bool
	lastCk    ckPos
	pipeHeld  int64
	rec       pipeline.Record // the line being run
	recTime   time.Time
	recTS     []byte
	tsBuf     []byte
	fieldsBuf []byte
	// waited: lines that waited for the namespace's limit and are not behind the checkpoint
	// (limit.go: they count as throttled when fed).
	waited   []waitSpan
	waitOpen bool // the last read was held back by the limit: what follows waits too
	// countFrom: the pipeline outcomes of lines that start before it were counted already
	// (their chunks were acknowledged before a rewind, or a previous process's, see
	// counted.go); a line read again there is not counted again. lastStart is where the last
	// line run through a pipeline starts (a flush's outcomes are counted as of it).
	countFrom, lastStart int64
	held                 int64 // bytes of partial lines the assembler holds, counted in the budget (Hold)
	// inKafka holds outputs (start offset, split index or -1) that a previous run produced and
	// Kafka has, with a hash of their message: they are not sent again. The message must match
	// too, so an older file whose inode this one reuses cannot hide its lines. Set before the
	// file's goroutine starts reading.
	inKafka map[[2]int64]uint64
	// resend holds outputs (outKey) past the checkpoint that Kafka acknowledged before a produce
	// failure: reading again from the checkpoint skips them. resendEnd is their largest end.
	resend    map[outKey]struct{}
	resendEnd int64
	// room is the topic's record room (sink.LineRoom) lineMax was computed from, for roomSnap.
	room     int
	roomSnap *filemeta.Snapshot
	lineMax  int
	log      *slog.Logger

	// Shared with promise callbacks and the checkpointer.
	mu     sync.Mutex
	fpLen  int
	fp     uint64
	head   uint64 // the hash of the fingerprint's first bytes (fileid.Head), if headOK
	headOK bool
	// readUnprinted: the reader read (or is reading) content it has no fingerprint of (fpLen
	// 0): only the bytes it read may become the fingerprint (printRead), not the file's first
	// bytes read later, which a truncation in between makes another content's.
	readUnprinted bool
	format        logline.Format
	acked         int64          // checkpoint: all lines before it acknowledged
	ackedState    assemble.State // assembler state at acked
	queue         []*chunk       // chunks in read order, not yet popped
	beyond        []outKey       // acknowledged outputs of popped chunks that end past acked
	inflight      int
	failed        error
	// unackedSince is when the oldest line not yet acknowledged was produced (zero: none):
	// kept across a rewind, so a failing file shows its real wait.
	unackedSince time.Time
	// countedTo: every pipeline outcome of the lines before it is counted (read end of the
	// last chunk popped acknowledged).
	countedTo int64
	gen       uint64
	idle      chan struct{} // signalled when inflight drops to 0
}

// chunk is the records made from one read. Its promise callbacks count down; when all are in,
// the file's checkpoint may move to the chunk's last checkpointable position.
type chunk struct {
	f        *file
	view     *fileView // the snapshot the chunk's lines are turned into records with
	gen      uint64
	ns       string
	reserved int64
	recs     []kgo.Record
	keys     []outKey // keys[i] identifies recs[i]; its end is set to -1 when the record failed
	slab     []byte
	pending  atomic.Int64
	errOnce  sync.Once
	err      error
	done     bool
	ckOff    int64
	ckState  assemble.State
	promise  func(*kgo.Record, error)
	emit     func(*assemble.Output) // the assembler's outputs go to this chunk (newChunk)
	// The namespace's policy and pipelines, loaded once for the chunk (newChunk).
	pol       *nsPolicy
	set       *pipeline.Set
	pemit     func(*pipeline.Record) // pipelines' records go to this chunk
	slot      *runSlot               // the runner pemit's records come from
	limitDrop bool                   // lines fed now are beyond the namespace's limit (drop)
	at        time.Time              // when it was produced
	counts    lineCounts
	// pipe are the chunk's pipeline outcomes, counted once it is acknowledged (counted.go);
	// readEnd is the file offset its read ended at.
	pipe    []pipeCount
	readEnd int64
}

// outKey identifies an output of a file: start offset, split index (-1: not split) and end
// offset. The same key read again is the same bytes.
type outKey [3]int64

func (ch *chunk) onPromise(r *kgo.Record, err error) {
	if err != nil {
		ch.errOnce.Do(func() { ch.err = err })
		// Only this record is to be sent again: the others of the chunk may be in Kafka.
		// (Promises of different records write different elements.)
		i := (uintptr(unsafe.Pointer(r)) - uintptr(unsafe.Pointer(&ch.recs[0]))) / unsafe.Sizeof(kgo.Record{})
		ch.keys[i][2] = -1
		ch.f.c.sink.TooLarge(r.Topic, err)
	}
	ch.finishOne()
}

func (ch *chunk) finishOne() {
	if ch.pending.Add(-1) == 0 {
		ch.f.complete(ch)
	}
}

type stepResult int

const (
	stepProgress  stepResult = iota
	stepIdle                 // at the end of the file
	stepBlocked              // waiting on metadata or a topic
	stepStop                 // the collector is stopping
	stepThrottled            // the namespace's limit: the file waits (the file is the buffer)
)

// awaitsReadBack: resumed at start, its read-back not done yet (it has read nothing since).
func (f *file) awaitsReadBack() bool {
	if f.reconciled == nil {
		return false
	}
	select {
	case <-f.reconciled:
		return false
	default:
		return true
	}
}

func (f *file) curPath() string { return *f.path.Load() }

// run reads the file until it is let go or ctx ends.
func (f *file) run(ctx context.Context) {
	defer f.c.wg.Done()
	defer f.flushAtExit()
	if f.c.gate {
		select {
		case <-f.c.applied:
		case <-ctx.Done():
			return
		}
	}
	if f.reconciled != nil {
		select {
		case <-f.reconciled:
		case <-ctx.Done():
			return
		}
		f.countFrom = resumedCountFrom(f.inKafka)
	}
	if f.prev != nil && !f.waitPrev(ctx) {
		return
	}
	if tr := f.pendingTrunc; tr != nil {
		f.pendingTrunc = nil
		f.followTruncation(ctx, tr)
	}
	var idleSince time.Time
	backoff := time.Duration(0)
	failedAt := int64(-1) // acknowledged offset at the last failure
	for ctx.Err() == nil {
		if err := f.failure(); err != nil {
			backoff = nextBackoff(backoff)
			failedAt = f.ackedOffset()
			f.log.Warn("Kafka did not accept lines; reading again from the last acknowledged line", "err", err, "retry_in", backoff.String())
			if !f.rewind(ctx) || !sleep(ctx, backoff) {
				return
			}
			continue
		}
		switch f.step(ctx) {
		case stepProgress:
			idleSince = time.Time{}
			// A failure is reported after the read that caused it succeeded: only Kafka
			// acknowledging lines past the failure point shows the problem is gone.
			if failedAt >= 0 && f.ackedOffset() > failedAt {
				backoff, failedAt = 0, -1
			}
		case stepStop:
			return
		case stepThrottled:
			idleSince = time.Time{}
			if !sleep(ctx, f.c.cfg.PollInterval) {
				return
			}
		case stepBlocked:
			backoff = nextBackoff(backoff)
			if !sleep(ctx, max(backoff, f.c.cfg.PollInterval)) {
				return
			}
		case stepIdle:
			if !f.live.Load() {
				f.caughtUpOnce.Do(func() { close(f.caughtUp) })
				if idleSince.IsZero() {
					idleSince = time.Now()
				}
				if time.Since(idleSince) >= f.c.cfg.RotatedIdle && f.finish(ctx) {
					return
				}
			}
			if !sleep(ctx, f.c.cfg.PollInterval) {
				return
			}
		}
	}
}

// waitPrev waits until the older file of the group is read to its end, or found live again: a
// node file taken for rotated that a later scan finds the newest again (node globs tell the live
// file by modification time) may never be read to its end while it is written, and the files
// waiting for it would wait for ever. It reports false when ctx ended.
func (f *file) waitPrev(ctx context.Context) bool {
	t := time.NewTicker(f.c.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-f.prev.caughtUp:
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
			if f.prev.live.Load() {
				return true
			}
		}
	}
}

func nextBackoff(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return 100 * time.Millisecond
	case d >= 15*time.Second:
		return 30 * time.Second
	default:
		return 2 * d
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (f *file) ackedOffset() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked
}

func (f *file) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// useSnapshot switches to new metadata.
func (f *file) useSnapshot(s *filemeta.Snapshot) {
	f.snap = s
	f.view = f.c.newView(s)
	f.reportRefused()
	f.forOK = [3]bool{} // the pipeline per stream depends on the metadata
}

// ensureTopic is sink.Ensure, with a retention Kafka refused to set reported, not waited on:
// the topic exists and takes lines; only its retention is not the namespace's annotation.
func (f *file) ensureTopic(ctx context.Context, t string, retention time.Duration) error {
	err := f.c.sink.Ensure(ctx, t, retention)
	if errors.Is(err, sink.ErrRetentionRefused) {
		f.view.nsm.retentionRefused.Inc()
		f.log.Warn("the namespace's logrouter.io/retention is not applied to its topic: Kafka refused the collector ALTER_CONFIGS (grant it, or let the controller set retention); lines are produced with the topic's current retention", "topic", t, "err", err)
		return nil
	}
	return err
}

// step reads once and produces what it read.
func (f *file) step(ctx context.Context) stepResult {
	snap := f.handle.Load()
	if snap == nil {
		return stepBlocked // the provider waits (a bounded time) for the pod's metadata
	}
	if snap != f.snap {
		f.useSnapshot(snap)
	}
	if !f.view.skipped(f.view.policy(f.c)) {
		err := f.view.topicOK
		if err == nil {
			err = f.ensureTopic(ctx, f.view.topic, snap.Retention)
		}
		if err != nil {
			if ctx.Err() != nil {
				return stepStop
			}
			f.view.nsm.topicErrors.Inc()
			f.log.Warn("namespace topic unavailable; its lines wait in the file", "topic", f.view.topic, "err", err)
			return stepBlocked
		}
		if !f.fitLines() {
			return stepBlocked
		}
		if set := f.view.nss.set.Load(); set != nil {
			for _, p := range set.Pipelines {
				t := topic.WithSuffix(f.view.topic, p.Suffix)
				if p.Suffix == "" || f.c.topicRefusal(t) != "" {
					continue // (a refused one takes no lines: line.go)
				}
				if err := f.ensureTopic(ctx, t, snap.Retention); err != nil {
					if ctx.Err() != nil {
						return stepStop
					}
					f.view.nsm.topicErrors.Inc()
					f.log.Warn("pipeline output topic unavailable; the namespace's lines wait in the file", "topic", t, "pipeline", p.Name, "err", err)
					return stepBlocked
				}
			}
		}
		if now := f.c.now(); f.flushDue(now) {
			ch := f.newChunk(0, 0, 0)
			f.flushRunners(ch, &now)
			f.submit(ch)
		}
	}
	if f.resend != nil && f.ackedOffset() >= f.resendEnd {
		f.resend = nil // all of it is behind the checkpoint: never read again
	}
	size := f.bufSize
	pos := f.asm.Pos()
	// The fingerprint's length before the stat: a checkpoint save lengthens it from the file's
	// bytes at that moment (extendFingerprint), which may be newer than a stat taken before.
	fpLen := f.fpLenNow()
	fi, statErr := f.fd.Stat()
	if f.c.afterStat != nil {
		f.c.afterStat(f)
	}
	want := size
	if statErr == nil {
		nothing := fi.Size() <= pos || fi.Size() < fpLen
		if nothing && f.held == 0 && f.pipeHeld == 0 {
			// Nothing new: checked without the budget, which a poll of an idle file would
			// otherwise take a read's worth of (with many files open, idle polls queued
			// behind each other and delayed the reads that had lines). A file holding bytes
			// still asks the budget, which may tell it to let them go (acquire).
			return f.atEnd(ctx, fi, pos, fpLen)
		}
		if !nothing {
			// Only what is there: a small write reserves a small read, so a namespace's fair
			// share holds many of them.
			want = int(min(int64(size), fi.Size()-pos))
		}
	}
	// At most half the budget, so that a long line's read does not wait for an idle collector;
	// what it really costs is counted once it is read.
	reserve := min(int64(want)*6+4096, f.c.cfg.BufferBytes/2)
	if err := f.acquire(ctx, snap.Namespace, reserve); err != nil {
		return stepStop
	}
	buf := f.c.getBuf(size)
	defer f.c.putBuf(buf)
	if pos == 0 {
		f.mu.Lock()
		f.readUnprinted = f.readUnprinted || f.fpLen == 0
		f.mu.Unlock()
	}
	n, err := f.fd.ReadAt(buf[:want], pos)
	if n > 0 && !f.sameContent() {
		// Truncated and written again (copytruncate) before its size fell below our offset: what
		// was just read is not the continuation of what came before. Checked after the read, so
		// a read that passes came from the old content.
		f.c.budget.Release(snap.Namespace, reserve)
		f.truncated(ctx, "content changed")
		return stepProgress
	}
	if n == 0 {
		f.c.budget.Release(snap.Namespace, reserve)
		if err != nil && !errors.Is(err, io.EOF) {
			f.c.fileLog.Log("read failed", "path", f.curPath(), "namespace", f.meta.Namespace, "err", err) // retried every poll
			return stepBlocked
		}
		fpLen := f.fpLenNow()
		if fi, err := f.fd.Stat(); err == nil {
			return f.atEnd(ctx, fi, pos, fpLen) // shrank between the stat and the read
		}
		return stepIdle
	}
	if statErr == nil {
		// Stat'ed before a read that found the same content: a size of this content.
		f.sizeSeen = max(f.sizeSeen, fi.Size())
	}
	data := buf[:n]
	if pos == 0 {
		f.printRead(data)
	}
	if f.asm.Format() == logline.FormatUnknown {
		f.detectFormat(data)
	}
	// Size the chunk from what was read: tiny lines cost a record each.
	lines := int64(bytes.Count(data, []byte{'\n'})) + 1
	perLine := int64(len(snap.Fragment)) + 96
	estimate := int64(n)*4 + lines*(2*perLine+recordOverhead) // our copy and franz-go's
	if estimate > reserve {
		f.c.budget.Force(snap.Namespace, estimate-reserve)
		reserve = estimate
	}
	ch := f.newChunk(reserve, int(lines), int(int64(n)*2+lines*perLine))
	lim := f.limit(ch, data)
	if lim.throttled {
		f.submitOrRelease(ch)
		return stepThrottled
	}
	consumed := f.asm.Feed(data[:lim.allowed], false, ch.emit)
	if lim.allowed < len(data) && consumed == lim.allowed && ch.pol.Limits.Drop {
		// Beyond the namespace's limit with action drop: read, counted, not produced.
		ch.limitDrop = true
		consumed += f.asm.Feed(data[lim.allowed:], false, ch.emit)
		ch.limitDrop = false
	}
	f.charge(ch, lim, data[:min(consumed, lim.allowed)])
	if consumed == 0 {
		f.submitOrRelease(ch) // a pipeline change may have flushed held lines into it
		if n == size && size <= f.c.cfg.MaxLineBytes {
			f.bufSize = min(2*size, f.c.cfg.MaxLineBytes+1) // a line longer than the buffer
			return stepProgress
		}
		return stepIdle // an unfinished last line
	}
	f.bufSize = f.c.cfg.ReadBytes
	f.extendFingerprint()
	f.syncHeld()
	f.submit(ch)
	return stepProgress
}

// atEnd handles a poll that found nothing to read at pos, with fi stat'ed for it and fpLen the
// fingerprint's length read before that stat: a file that shrank below pos, or below the
// fingerprint of its content (truncated before any of it was
// read: copytruncate of a file opened and not read yet), was truncated; one written at its
// end and no longer (mtime changed) may have been truncated and written again to the same
// size, which only its content tells.
func (f *file) atEnd(ctx context.Context, fi os.FileInfo, pos, fpLen int64) stepResult {
	switch {
	case fi.Size() < pos:
		f.truncated(ctx, "file shrank")
		return stepProgress
	case fi.Size() < fpLen:
		f.truncated(ctx, "file shrank below its fingerprint")
		return stepProgress
	case pos > 0 && fi.Size() == pos && !fi.ModTime().Equal(f.idleMtime):
		if !f.sameContent() {
			f.truncated(ctx, "content changed")
			return stepProgress
		}
		// A write sets the modification time before it copies its bytes: content checked
		// just after may predate the time stat'ed. The time is taken as checked only once
		// no write of it can still be under way.
		if time.Since(fi.ModTime()) > time.Second {
			f.idleMtime = fi.ModTime()
		}
	}
	return stepIdle
}

// print is the content's fingerprint.
func (f *file) print() filePrint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return filePrint{n: f.fpLen, sum: f.fp, head: f.head, headOK: f.headOK}
}

// fpLenNow is the length of the content's fingerprint.
func (f *file) fpLenNow() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.fpLen)
}

// submitOrRelease submits a chunk that holds records or a checkpoint, else gives its
// reservation back.
func (f *file) submitOrRelease(ch *chunk) {
	if len(ch.recs) > 0 || ch.ckOff >= 0 {
		f.syncHeld()
		f.submit(ch)
		return
	}
	f.flushPipeCounts(ch)            // what was counted without producing (lines that wait)
	ch.addPipeCounts()               // (no line of it is read again: counted now)
	ch.counts.flushRead(ch.view.nsm) // likewise per namespace
	ch.counts.flushCounted(ch.view.nsm)
	f.c.putRecs(ch.recs)
	f.c.putKeys(ch.keys)
	f.c.putSlab(ch.slab)
	f.c.budget.Release(ch.ns, ch.reserved)
}

// minLine is the smallest message cut worth producing (--max-line-bytes' minimum).
const minLine = 256

// fitLines cuts lines so that every record of the file fits its topic's max.message.bytes
// (after JSON escaping, with the file's key, headers and metadata). A topic whose limit is too
// small for even one record is an error for that topic only: its lines wait in the file, and
// the next limit read (after the platform team raised it) lets them go.
func (f *file) fitLines() bool {
	v := f.view
	room := f.c.sink.LineRoom(v.topic)
	framing := len(v.key)
	for _, h := range v.headers {
		framing += len(h.Key) + len(h.Value) + 10
	}
	v.framing = framing
	if room != f.room || f.snap != f.roomSnap {
		f.room, f.roomSnap = room, f.snap
		f.lineMax = min(f.c.cfg.MaxLineBytes, record.MaxMessageLen(room-framing, len(f.snap.Fragment)))
		if f.lineMax >= minLine && f.lineMax != f.asm.MaxLine() {
			f.asm.SetMaxLine(f.lineMax)
		}
	}
	if f.lineMax >= minLine {
		return true
	}
	v.nsm.topicErrors.Inc()
	f.c.sink.Warn(v.topic, func() {
		f.log.Error("topic's max.message.bytes is too small for one record of this file: its lines wait in the file; raise the topic's max.message.bytes",
			"topic", v.topic, "record_room_bytes", room, "record_needs_bytes", framing+record.MaxValueLen(minLine, len(f.snap.Fragment)))
	})
	return false
}

// acquire reserves n bytes of the budget for a read. While the assembler holds part of a line
// and only held bytes could make room, the held parts are sent on as chunks first (cut), so
// that lines waiting for their end never leave every file waiting.
func (f *file) acquire(ctx context.Context, ns string, n int64) error {
	for f.held > 0 || f.pipeHeld > 0 {
		err := f.c.budget.AcquireHolding(ctx, ns, n)
		if !errors.Is(err, budget.ErrHeld) {
			return err
		}
		if f.held > 0 {
			f.cut()
			continue
		}
		// Lines held for joining are flushed (emitted as joined so far) to make room.
		ch := f.newChunk(0, 0, 0)
		f.flushRunners(ch, nil)
		f.submit(ch)
	}
	return f.c.budget.Acquire(ctx, ns, n)
}

// cut sends what the assembler holds as split chunks of lines that continue.
func (f *file) cut() {
	ch := f.newChunk(0, 2, int(f.held)*2)
	f.asm.Cut(ch.emit)
	f.syncHeld()
	f.submit(ch)
}

// syncHeld makes the budget count what the assembler holds between reads.
func (f *file) syncHeld() { f.syncBudgetHeld(&f.held, int64(f.asm.Held())) }

// syncBudgetHeld moves the budget's count of held bytes from *cur to h.
func (f *file) syncBudgetHeld(cur *int64, h int64) {
	switch {
	case h > *cur:
		f.c.budget.Hold(f.meta.Namespace, h-*cur)
	case h < *cur:
		f.c.budget.Unhold(f.meta.Namespace, *cur-h)
	}
	*cur = h
}

// skipAgain adds an output known to be in Kafka to the set reading skips.
func (f *file) skipAgain(k outKey) {
	if f.resend == nil {
		f.resend = map[outKey]struct{}{}
	}
	f.resend[k] = struct{}{}
	f.resendEnd = max(f.resendEnd, k[2])
}

// submit queues the chunk for its file and produces its records.
func (f *file) submit(ch *chunk) {
	f.flushPipeCounts(ch)
	ch.readEnd = f.asm.Pos()
	ch.counts.flushRead(ch.view.nsm)
	// Give back what the reservation over-estimated. franz-go encodes each record into its
	// batch when it is produced, so every value is held twice until acknowledged.
	actual := int64(cap(ch.slab)) + int64(len(ch.slab)) + int64(len(ch.recs))*recordOverhead
	if actual < ch.reserved {
		f.c.budget.Release(ch.ns, ch.reserved-actual)
		ch.reserved = actual
	} else if actual > ch.reserved {
		f.c.budget.Force(ch.ns, actual-ch.reserved)
		ch.reserved = actual
	}
	ch.at = time.Now()
	f.mu.Lock()
	ch.gen = f.gen
	if f.unackedSince.IsZero() {
		f.unackedSince = ch.at
	}
	f.queue = append(f.queue, ch)
	f.inflight++
	f.mu.Unlock()
	ch.pending.Store(int64(len(ch.recs)) + 1)
	f.c.metrics.inFlight.Add(float64(len(ch.recs)))
	for i := range ch.recs {
		// The Kafka timestamp is the produce time, as franz-go would set it, read once per
		// chunk instead of once per record (a clock read per line was 2% of the CPU).
		ch.recs[i].Timestamp = ch.at
		// Not the collector's context: in-flight records must drain on shutdown.
		f.c.sink.Produce(context.Background(), &ch.recs[i], ch.promise)
	}
	ch.finishOne()
}

// complete runs when every record of ch has its outcome. It never blocks.
func (f *file) complete(ch *chunk) {
	f.c.metrics.inFlight.Sub(float64(len(ch.recs)))
	f.mu.Lock()
	ch.done = true
	popped := false
	for len(f.queue) > 0 && f.queue[0].done {
		h := f.queue[0]
		if h.err != nil {
			if f.failed == nil {
				f.failed = h.err
			}
			break
		}
		if h.gen == f.gen && h.ckOff >= 0 && h.ckOff > f.acked {
			f.acked, f.ackedState = h.ckOff, h.ckState
			f.beyond = pruneKeys(f.beyond, f.acked)
		}
		if h.gen == f.gen {
			// Acknowledged, in order: its pipeline outcomes count (once: see counted.go).
			h.addPipeCounts()
			h.counts.flushCounted(h.view.nsm)
			f.countedTo = max(f.countedTo, h.readEnd)
		}
		// Outputs past the checkpoint are read again after a failure: remember they are in Kafka.
		for _, k := range h.keys {
			if k[2] > f.acked {
				f.beyond = append(f.beyond, k)
			}
		}
		f.c.putKeys(h.keys)
		h.keys = nil
		f.queue[0] = nil
		f.queue = f.queue[1:]
		popped = true
	}
	if popped {
		f.unackedSince = time.Time{}
		if len(f.queue) > 0 {
			f.unackedSince = f.queue[0].at
		}
	}
	f.inflight--
	if f.inflight == 0 {
		select {
		case f.idle <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
	f.c.budget.Release(ch.ns, ch.reserved)
	// Every promise of the chunk has returned: franz-go no longer uses its records or values.
	f.c.putRecs(ch.recs)
	f.c.putSlab(ch.slab)
	ch.recs, ch.slab = nil, nil
	if ch.err == nil {
		f.c.lastAck.Store(time.Now().UnixNano())
		ch.counts.flushAcked(ch.view.nsm)
	} else {
		ch.view.nsm.produceErrors.Inc()
	}
}

// drain waits until no chunk of the file is in flight.
func (f *file) drain(ctx context.Context) bool {
	for {
		f.mu.Lock()
		n := f.inflight
		f.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-f.idle:
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rewind goes back to the last acknowledged position after a failure.
func (f *file) rewind(ctx context.Context) bool {
	if !f.drain(ctx) {
		return false
	}
	f.mu.Lock()
	off, st := f.acked, f.ackedState
	// What Kafka acknowledged past the checkpoint is skipped when read again: only the records
	// that failed (and those never sent) go out a second time.
	for _, k := range f.ackedPastLocked() {
		f.skipAgain(k)
	}
	f.beyond = nil
	f.queue, f.failed = nil, nil
	f.gen++
	f.countFrom = f.countedTo // lines before it are read again, and were counted
	f.mu.Unlock()
	f.asm.Restore(off, st)
	f.syncHeld()
	f.resetRunners(ckPos{off, st})
	return true
}

// ackedPastLocked takes the outputs past the checkpoint that Kafka acknowledged (after a
// failure) from the settled chunks; f.mu is held.
func (f *file) ackedPastLocked() []outKey {
	var out []outKey
	for _, k := range f.beyond {
		if k[2] > f.acked {
			out = append(out, k)
		}
	}
	for _, ch := range f.queue {
		for _, k := range ch.keys {
			if k[2] > f.acked { // a failed record's end is -1
				out = append(out, k)
			}
		}
		f.c.putKeys(ch.keys)
		ch.keys = nil
	}
	return out
}

// pruneKeys drops the keys that end at or before off (behind the checkpoint).
func pruneKeys(keys []outKey, off int64) []outKey {
	kept := keys[:0]
	for _, k := range keys {
		if k[2] > off {
			kept = append(kept, k)
		}
	}
	return kept
}

// sameContent reports whether the file still starts with the bytes it was fingerprinted by.
func (f *file) sameContent() bool {
	f.mu.Lock()
	n, sum := f.fpLen, f.fp
	f.mu.Unlock()
	if n == 0 {
		return true
	}
	ok, err := fileid.Matches(f.fd, n, sum)
	return ok || err != nil
}

// truncated handles copytruncate: the file was cut back to nothing while we read it. Everything
// in flight is settled first, so the position its copy is read from is exact; the copy's tail
// is produced before the new content (followTruncation).
func (f *file) truncated(ctx context.Context, reason string) {
	if !f.drain(ctx) {
		return
	}
	f.mu.Lock()
	tr := &truncation{fpLen: f.fpLen, fp: f.fp, offset: f.acked, state: f.ackedState, format: f.format, group: f.group,
		// The fingerprint's bytes were there too: a file truncated before it was read has
		// them as the only size seen.
		at: time.Now(), size: max(f.sizeSeen, f.asm.Pos(), int64(f.fpLen)), acked: f.ackedPastLocked()}
	f.mu.Unlock()
	// Publish the record before dropping the old fingerprint: a scan in between then holds the
	// copy for this reader (it matches one or the other, never neither).
	f.c.rememberTruncation(tr)
	f.mu.Lock()
	f.queue, f.failed, f.beyond = nil, nil, nil
	f.resend, f.resendEnd = nil, 0 // offsets of the old content
	f.unackedSince = time.Time{}   // what failed before the truncation is its copy's to send
	f.gen++
	f.acked, f.ackedState = 0, assemble.State{}
	f.countedTo, f.countFrom = 0, 0 // new content from offset 0
	f.waited, f.waitOpen = nil, false
	f.fpLen, f.fp, f.headOK = 0, 0, false // the new content gets its own fingerprint
	f.readUnprinted = false
	f.mu.Unlock()
	f.sizeSeen = 0
	f.c.metrics.rotations.WithLabelValues("truncate").Inc()
	f.log.Info("file truncated (copytruncate): its copy's tail is read first, then this file from its start", "reason", reason, "read_to", tr.offset)
	f.asm.Restore(0, assemble.State{})
	f.syncHeld()
	f.resetRunners(ckPos{})
	f.asm.SetFormat(logline.FormatUnknown)
	f.followTruncation(ctx, tr)
	f.extendFingerprint()
}

func (f *file) detectFormat(data []byte) {
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line = data[:i]
	}
	format := logline.Detect(line)
	if f.node != nil {
		format = logline.FormatRaw // a node file has no runtime framing
	} else if format == logline.FormatUnknown {
		format = logline.FormatCRI // shipped raw with a parse error per line, never dropped
	}
	f.asm.SetFormat(format)
	f.mu.Lock()
	f.format = format
	f.mu.Unlock()
}

// finish reads what is left of a file that is no longer live, including an unterminated last
// line and partial lines whose end will never come, waits for Kafka, and lets the file go.
func (f *file) finish(ctx context.Context) bool {
	if f.snap == nil {
		return false
	}
	buf := make([]byte, f.c.cfg.MaxLineBytes+1)
	n, err := f.fd.ReadAt(buf, f.asm.Pos())
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	if n > 0 || f.asm.Pending() || f.asm.InLine() {
		if f.asm.Format() == logline.FormatUnknown {
			f.detectFormat(buf[:n])
		}
		reserve := int64(n)*2 + 4096 + (recordOverhead+int64(len(f.snap.Fragment)))*int64(bytes.Count(buf[:n], []byte{'\n'})+2)
		if err := f.acquire(ctx, f.snap.Namespace, reserve); err != nil {
			return false
		}
		ch := f.newChunk(reserve, 0, 0)
		f.asm.Feed(buf[:n], true, ch.emit)
		f.asm.Flush(ch.emit)
		f.flushRunners(ch, nil) // rotated away: what is held will not be continued
		f.syncHeld()
		f.submit(ch)
	}
	if f.pipeHeld > 0 {
		ch := f.newChunk(0, 0, 0)
		f.flushRunners(ch, nil)
		f.submit(ch)
	}
	if !f.drain(ctx) || f.failure() != nil {
		return false
	}
	f.c.release(f)
	return true
}

// flushAtExit emits what the runners hold when the file's reader stops (shutdown): Run waits
// for Kafka to acknowledge it. If it does not, the checkpoint is still before the held lines.
func (f *file) flushAtExit() {
	if f.view == nil || f.failure() != nil {
		return
	}
	if _, held := f.holdFloor(); !held {
		return
	}
	ch := f.newChunk(0, 0, 0)
	f.flushRunners(ch, nil)
	f.submit(ch)
}

// extendFingerprint lengthens a fingerprint taken while the file was shorter than
// fileid.FingerprintSize, if its first bytes are still those (else the file was truncated and
// written again: the reader's content check must see that, not a fingerprint of the new
// content). The reader extends it after it reads; a file opened empty and not read since (Kafka down, the budget full) would be
// checkpointed with no fingerprint, and a restart would take a new file that reuses its inode
// for it, resuming the new file and never counting the old one's loss (system proof finding 4).
//
// The old prefix is checked and the new one taken from one read: checked and taken in two, a
// truncation in between gave the file the next content's fingerprint at the old content's
// position, and its reader skipped a whole round of a copytruncated node file as already read
// (docs/reliability.md, finding 6). A file without a fingerprint that its reader has read from
// gets the bytes it read (printRead), not its first bytes now.
func (f *file) extendFingerprint() {
	f.mu.Lock()
	n, sum, fd, unprinted := f.fpLen, f.fp, f.fd, f.readUnprinted
	f.mu.Unlock()
	if n >= fileid.FingerprintSize || fd == nil || n == 0 && unprinted {
		return
	}
	var buf [fileid.FingerprintSize]byte
	got, err := fd.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) || got <= n || n > 0 && xxhash.Sum64(buf[:n]) != sum {
		return // truncated: the reader's truncation handling fingerprints the new content
	}
	f.setPrint(n, sum, buf[:got])
}

// printRead makes the first bytes the reader read, data (read at offset 0), the fingerprint,
// if they are longer than it and start with it.
func (f *file) printRead(data []byte) {
	f.mu.Lock()
	n, sum := f.fpLen, f.fp
	f.mu.Unlock()
	data = data[:min(len(data), fileid.FingerprintSize)]
	if len(data) <= n || n > 0 && xxhash.Sum64(data[:n]) != sum {
		return
	}
	f.setPrint(n, sum, data)
}

// setPrint replaces the fingerprint (n, sum) by one of the content's first bytes b, unless it
// changed meanwhile.
func (f *file) setPrint(n int, sum uint64, b []byte) {
	n2, sum2 := len(b), xxhash.Sum64(b)
	head, headOK := uint64(0), n2 >= fileid.MinCopyFingerprint
	if headOK {
		head = xxhash.Sum64(b[:fileid.MinCopyFingerprint])
	}
	f.mu.Lock()
	if f.fpLen == n && f.fp == sum {
		f.fpLen, f.fp, f.head, f.headOK = n2, sum2, head, headOK
	}
	f.mu.Unlock()
}

// entry is the file's checkpoint.
func (f *file) entry() checkpoint.Entry {
	f.extendFingerprint()
	f.mu.Lock()
	defer f.mu.Unlock()
	return checkpoint.Entry{
		Dev: f.id.Dev, Inode: f.id.Inode, FingerprintLen: f.fpLen, Fingerprint: f.fp,
		Path: f.curPath(), Offset: f.acked, State: f.ackedState, Format: f.format.String(),
		Rotated: !f.live.Load(), Namespace: f.meta.Namespace, Updated: time.Now().UTC(),
	}
}
