package router

import (
	"bytes"
	"math"
	"slices"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/internal/record"
)

// Per-namespace limits on this node (LogRouterPolicy limits: lines and bytes per second with a
// burst). One decision per read, not per line: before a read's lines are fed, the namespace's
// token buckets say how many of its physical lines (and bytes) may go now. With action
// throttle only those are fed; the rest stay in the file, which the file's reader reads again
// after a poll interval (the file is the buffer; other files and namespaces never wait for it).
// With action drop the rest are fed too, and the line step counts and skips them. The tokens
// taken are those of what was consumed. Lines are physical lines of the file (a CRI partial
// line counts as one), bytes those read from the file.
//
// Several files of one namespace share its buckets: each takes what it consumed, so the
// namespace can exceed its limit by at most one read's allowance per concurrently reading file.

// allowance is what a read may feed.
type allowance struct {
	limited   bool
	allowed   int // bytes of data that may be fed (all of it when not limited, or drop)
	throttled bool
}

// limit decides how much of data (read at the assembler's position) the namespace's limits let
// through now, remembers the lines that must wait, and counts the lines fed now that waited.
func (f *file) limit(ch *chunk, data []byte) allowance {
	a := allowance{allowed: len(data)}
	if ch.view.skipped(ch.pol) {
		return a
	}
	pos := f.asm.Pos()
	if !ch.pol.limited() {
		f.feedAll(ch, data, pos) // (the limit may have been lifted while lines waited)
		return a
	}
	a.limited = true
	now := f.c.now()
	nss := ch.view.nss
	maxLines, maxBytes := math.MaxInt, math.MaxInt
	fullLines, fullBytes := true, true
	if b := nss.lines.Load(); b != nil {
		t := b.TokensAt(now)
		maxLines, fullLines = int(max(t, 0)), t >= float64(b.Burst())
	}
	if b := nss.bytes.Load(); b != nil {
		t := b.TokensAt(now)
		maxBytes, fullBytes = int(max(t, 0)), t >= float64(b.Burst())
	}
	// The longest prefix of whole lines within both allowances. A line longer than the bytes
	// burst goes alone when the buckets are full, so it cannot wait forever.
	end, lines := 0, 0
	for end < len(data) && lines < maxLines {
		nl := bytes.IndexByte(data[end:], '\n')
		next := len(data)
		if nl >= 0 {
			next = end + nl + 1
		}
		if next > maxBytes && !(lines == 0 && fullLines && fullBytes) {
			break
		}
		end, lines = next, lines+1
	}
	a.allowed = end
	if end == len(data) {
		f.feedAll(ch, data, pos)
		return a
	}
	// Every complete line of data[:end] is fed now (Feed consumes complete physical lines).
	f.countWaited(ch, data[:end], pos)
	if ch.pol.Limits.Drop {
		return a // the rest is fed with limitDrop set
	}
	// Throttled: what was read and held back waits in the file, and so does everything after it
	// until a read is no longer held back (waitOpen); they count when they are fed.
	f.markWaited(pos+int64(end), pos+int64(len(data)))
	f.waitOpen = true
	a.throttled = end == 0
	return a
}

// feedAll counts the lines of a read the limit lets through whole: if the read before it was
// held back, its complete lines waited behind that backlog (read later than without the limit).
func (f *file) feedAll(ch *chunk, data []byte, pos int64) {
	if f.waitOpen {
		f.waitOpen = false
		if nl := bytes.LastIndexByte(data, '\n'); nl >= 0 {
			f.markWaited(pos, pos+int64(nl)+1)
		}
	}
	f.countWaited(ch, data, pos)
}

// Throttled lines count as every other pipeline outcome does: when Kafka acknowledged the
// chunk that carries them, in read order, once (counted.go). A line is throttled when the
// limit delayed it in this process: it starts at or after the first byte a read held back and
// before the end of the first read after that which the limit let through whole (the file was
// behind because of the limit from there to there, whatever the read sizes and clock steps). A
// line waits over several polls, and a line read again after a produce failure may wait again
// or not: it counts once. f.waited holds the ranges of such lines ([from, to), sorted,
// disjoint) until the checkpoint passes them; a line counts when it is fed, if it starts in one
// and at or past countFrom (not counted before). A line the limit delayed in a process that
// stopped before Kafka had it counts only if the limit delays it again in the process that
// ships it: never twice, so throttled <= selected.

// waitSpan is a range of the file whose lines (those starting in it) waited for the namespace's
// limit.
type waitSpan struct{ from, to int64 }

// markWaited records that the lines of [from, to) wait.
func (f *file) markWaited(from, to int64) {
	i := sort.Search(len(f.waited), func(i int) bool { return f.waited[i].to >= from })
	j := i
	for j < len(f.waited) && f.waited[j].from <= to {
		from, to = min(from, f.waited[j].from), max(to, f.waited[j].to)
		j++
	}
	f.waited = slices.Replace(f.waited, i, j, waitSpan{from, to})
}

// countWaited counts the complete lines of data (read at pos, all fed now) that waited.
func (f *file) countWaited(ch *chunk, data []byte, pos int64) {
	if len(f.waited) == 0 {
		return
	}
	// Behind the checkpoint: never read again (a rewind goes back to it, a truncation clears).
	acked := f.ackedOffset()
	i := 0
	for i < len(f.waited) && f.waited[i].to <= acked {
		i++
	}
	f.waited = f.waited[i:]
	end := pos + int64(len(data))
	for _, s := range f.waited {
		if s.from >= end {
			break
		}
		if from, to := max(s.from, pos, f.countFrom), min(s.to, end); from < to {
			f.countThrottled(ch, data, int(from-pos), int(to-pos))
		}
	}
}

// countThrottled counts the complete lines of data that start in [from, to) (from is where a
// line starts) as throttled, for the namespace and for the pipeline each line goes to. The pipeline of a line depends on its stream
// only when the namespace's pipelines select by stream: then each line's framing is parsed for it
// (once per line, and only for lines that waited).
func (f *file) countThrottled(ch *chunk, data []byte, from, to int) {
	// The lines that start before to end at the first newline at or after to-1.
	stop := len(data)
	if k := bytes.IndexByte(data[to-1:], '\n'); k >= 0 {
		stop = to + k
	}
	data = data[:stop]
	n := bytes.Count(data[from:], []byte{'\n'})
	if n == 0 {
		return
	}
	ch.counts.limitThrottled += int64(n)
	if ch.set == nil {
		return
	}
	out, errs, other := f.slotFor(ch, record.StreamStdout), f.slotFor(ch, record.StreamStderr), f.slotFor(ch, "")
	if out == errs && errs == other {
		if out != nil {
			out.counts[outLimitThrottled] += int64(n)
		}
		return
	}
	for i := from; ; {
		nl := bytes.IndexByte(data[i:], '\n')
		if nl < 0 {
			return
		}
		if s := f.slotFor(ch, f.asm.StreamOf(data[i:i+nl])); s != nil {
			s.counts[outLimitThrottled]++
		}
		i += nl + 1
	}
}

// charge takes the tokens of what a read consumed from the namespace's buckets.
func (f *file) charge(ch *chunk, a allowance, consumed []byte) {
	if !a.limited || len(consumed) == 0 {
		return
	}
	now := f.c.now()
	nss := ch.view.nss
	if b := nss.lines.Load(); b != nil {
		n := bytes.Count(consumed, []byte{'\n'})
		if consumed[len(consumed)-1] != '\n' {
			n++
		}
		takeN(b, now, n)
	}
	if b := nss.bytes.Load(); b != nil {
		takeN(b, now, len(consumed))
	}
}

// takeN takes n tokens from b at now, into debt if need be (the next reads wait for it).
func takeN(b *rate.Limiter, now time.Time, n int) {
	for burst := max(b.Burst(), 1); n > 0; n -= burst {
		b.ReserveN(now, min(n, burst))
	}
}
