package router

import (
	"bytes"
	"math"
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
// through now, and counts the lines that must wait.
func (f *file) limit(ch *chunk, data []byte) allowance {
	a := allowance{allowed: len(data)}
	if !ch.pol.limited() || ch.view.skipped(ch.pol) {
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
		return a
	}
	if ch.pol.Limits.Drop {
		return a // the rest is fed with limitDrop set
	}
	// Throttled: count the waiting lines once (a line waits over several polls).
	pos := f.asm.Pos()
	if from := max(int64(end), f.throttledTo-pos); from < int64(len(data)) {
		f.countThrottled(ch, data, int(from))
		f.throttledTo = pos + int64(len(data))
	}
	a.throttled = end == 0
	return a
}

// countThrottled counts the complete lines of data that end after from as throttled, for the
// namespace and for the pipeline each line goes to. The pipeline of a line depends on its stream
// only when the namespace's pipelines select by stream: then each waiting line's framing is parsed
// for it (once per line, and only for lines that wait).
func (f *file) countThrottled(ch *chunk, data []byte, from int) {
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
	// The first line that ends after from starts after the last newline before it.
	i := bytes.LastIndexByte(data[:from], '\n') + 1
	for {
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
