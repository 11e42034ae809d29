// Package assemble turns the bytes of one container log file into records: it frames physical
// lines, parses the runtime's format (CRI or docker json-file), joins the runtime's partial lines
// (CRI "P" parts, docker 16 KiB pieces) per stream, and cuts lines longer than the maximum into
// ordered chunks.
//
// Its state at any checkpointable position is a small value (State) that the collector saves with
// the file offset, so that after a restart reading resumes exactly there: no acknowledged line is
// sent again, not even a chunk of a line that was cut in the middle.
package assemble

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/cri"
	"github.com/logrouter/logrouter/router/dockerjson"
	"github.com/logrouter/logrouter/router/logline"
)

// Output is one record to produce. Its byte slices alias the assembler's buffers and are valid
// only during the emit call.
type Output struct {
	// Start is the offset of the first byte of the first physical line the record came from.
	Start int64
	// End is the offset just past the last byte consumed for it.
	End int64

	TS     []byte
	Stream string
	Msg    []byte

	Split bool
	Index int
	Last  bool

	ParseError string

	// Checkpointable says the assembler holds nothing unemitted at End: a checkpoint may be placed
	// at End with the state returned by State() during this emit call.
	Checkpointable bool
}

// StreamState is the resumable state of one stream's logical line.
type StreamState struct {
	// InLine: a logical line whose earlier chunks were emitted continues after the checkpoint.
	InLine bool   `json:"in_line,omitempty"`
	Index  int    `json:"index,omitempty"` // index of its next chunk
	TS     string `json:"ts,omitempty"`    // its timestamp
}

// MidState describes a checkpoint inside an oversized physical line.
type MidState struct {
	Stream  int    `json:"stream"`            // 0 stdout, 1 stderr
	Partial bool   `json:"partial,omitempty"` // the physical line's tag was P
	Raw     bool   `json:"raw,omitempty"`     // the line is shipped raw (unparseable)
	Index   int    `json:"index,omitempty"`   // index of the next raw chunk
	TS      string `json:"ts,omitempty"`
	Err     string `json:"err,omitempty"`
}

// State is what must be saved with a checkpoint offset.
type State struct {
	Streams [2]StreamState `json:"streams"`
	Mid     *MidState      `json:"mid,omitempty"`
}

// IsZero reports whether s is the state at a clean line boundary.
func (s State) IsZero() bool {
	return s.Mid == nil && !s.Streams[0].InLine && !s.Streams[1].InLine
}

// Config of an assembler.
type Config struct {
	Format logline.Format
	// MaxLine is the largest message a record carries; longer lines are cut into chunks.
	MaxLine int
	// Now returns the collection time, RFC 3339 UTC, for lines whose own timestamp is unreadable.
	Now func() []byte
	// Scratch, if set, lends docker's unescape buffer (*[]byte) for the duration of one Feed, so
	// that an assembler between reads holds no buffer for it (nil: each assembler keeps its own).
	Scratch *sync.Pool
}

// keepCap is the largest join buffer kept once its line is done: a long line's buffer is let go
// with the line, so that what an assembler holds between reads is what Held reports.
const keepCap = 4 << 10

// Assembler is not safe for concurrent use; there is one per file.
type Assembler struct {
	cfg  Config
	emit func(*Output) // set for the duration of one Feed, Cut or Flush

	acc      [2][]byte // pending parts of each stream's logical line
	accStart [2]int64
	accEnd   [2]int64 // end of the last part in acc
	accTS    [2][]byte
	st       State
	pos      int64 // offset just past the last consumed byte
	scratch  []byte
	tsbuf    []byte
	out      Output
}

// New returns an assembler starting at offset off in state st. Feed, Cut and Flush emit to the
// function they are given: the caller's destination (a read's chunk) is an explicit input of each
// call, not state kept between them.
func New(cfg Config, off int64, st State) *Assembler {
	a := &Assembler{cfg: cfg, pos: off, tsbuf: make([]byte, 0, 64)}
	a.Restore(off, st)
	return a
}

// Restore resets the assembler to offset off in state st, dropping anything pending.
func (a *Assembler) Restore(off int64, st State) {
	a.pos = off
	a.st = st
	if st.Mid != nil {
		m := *st.Mid
		a.st.Mid = &m
	}
	for s := range a.acc {
		a.dropAcc(s)
		a.accTS[s] = append(a.accTS[s][:0], st.Streams[s].TS...)
	}
}

// SetFormat changes the format (detected from the first line of a file).
func (a *Assembler) SetFormat(f logline.Format) { a.cfg.Format = f }

// SetMaxLine changes the largest message a record carries (the file's topic limits it). Lines
// already being assembled keep what they hold.
func (a *Assembler) SetMaxLine(n int) { a.cfg.MaxLine = n }

// MaxLine returns the largest message a record carries.
func (a *Assembler) MaxLine() int { return a.cfg.MaxLine }

// Format returns the current format.
func (a *Assembler) Format() logline.Format { return a.cfg.Format }

// Pos is the offset just past the last consumed byte.
func (a *Assembler) Pos() int64 { return a.pos }

// State returns the resumable state (meaningful at a checkpointable position).
func (a *Assembler) State() State {
	st := a.st
	if st.Mid != nil {
		m := *st.Mid
		st.Mid = &m
	}
	return st
}

// Pending reports whether partial lines are held back waiting for their end.
func (a *Assembler) Pending() bool { return len(a.acc[0]) > 0 || len(a.acc[1]) > 0 }

// InLine reports whether a line has chunks emitted (Cut, or parts filling MaxLine) and its end
// not seen yet: Flush ends it.
func (a *Assembler) InLine() bool { return a.st.Streams[0].InLine || a.st.Streams[1].InLine }

// Held is the memory held for lines waiting for their end (the join buffers of the streams
// with pending parts): bytes the caller must account for until a later Feed, Cut, Flush or
// Restore lets them go. Between lines an assembler holds at most a few KiB besides.
func (a *Assembler) Held() int {
	n := 0
	for s := range a.acc {
		if len(a.acc[s]) > 0 {
			n += cap(a.acc[s])
		}
	}
	return n
}

// dropAcc empties stream s's join buffer, letting a large one go.
func (a *Assembler) dropAcc(s int) {
	if cap(a.acc[s]) > keepCap {
		a.acc[s] = nil
	} else {
		a.acc[s] = a.acc[s][:0]
	}
}

// clean reports whether nothing is held back.
func (a *Assembler) clean() bool { return !a.Pending() }

// Feed consumes complete physical lines of data, which begins at offset Pos(). It returns the
// number of bytes consumed; the caller feeds the rest again with more data appended. With
// final set (the file will not grow), a trailing line without newline is consumed too.
// A physical line longer than MaxLine is consumed in MaxLine pieces even without its newline,
// so a never-ending line does not stall the file.
func (a *Assembler) Feed(data []byte, final bool, emit func(*Output)) int {
	a.emit = emit
	defer func() { a.emit = nil }()
	if a.cfg.Scratch != nil && a.cfg.Format == logline.FormatDocker {
		if p, ok := a.cfg.Scratch.Get().(*[]byte); ok {
			a.scratch = *p
		}
		defer func() {
			if cap(a.scratch) > 0 {
				b := a.scratch[:0]
				a.cfg.Scratch.Put(&b)
			}
			a.scratch = nil
		}()
	}
	consumed := 0
	for consumed < len(data) {
		rest := data[consumed:]
		nl := bytes.IndexByte(rest, '\n')
		switch {
		case a.st.Mid != nil:
			// Inside an oversized physical line: the bytes up to the newline continue it.
			if nl < 0 && len(rest) < a.cfg.MaxLine && !final {
				return consumed
			}
			n, lineEnd := len(rest), false
			if nl >= 0 {
				n, lineEnd = nl, true
			}
			if n > a.cfg.MaxLine {
				n, lineEnd = a.cfg.MaxLine, false
			}
			adv := n
			if lineEnd {
				adv++
			}
			a.continuation(rest[:n], adv, lineEnd || final && n == len(rest))
			consumed += adv
		case nl < 0 && len(rest) <= a.cfg.MaxLine && !final:
			return consumed
		case nl < 0 || nl > a.cfg.MaxLine:
			n := min(len(rest), a.cfg.MaxLine)
			if nl < 0 && len(rest) <= a.cfg.MaxLine { // final: an unterminated last line
				a.physical(rest, len(rest))
				consumed += len(rest)
				continue
			}
			a.firstSegment(rest[:n])
			consumed += n
		default:
			a.physical(rest[:nl], nl+1)
			consumed += nl + 1
		}
	}
	return consumed
}

func streamIndex(s string) int {
	if s == record.StreamStderr {
		return 1
	}
	return 0
}

func streamName(i int) string {
	if i == 1 {
		return record.StreamStderr
	}
	return record.StreamStdout
}

func (a *Assembler) parse(line []byte) (logline.Line, error) {
	switch a.cfg.Format {
	case logline.FormatDocker:
		if cap(a.scratch) < 20<<10 {
			a.scratch = make([]byte, 0, 20<<10) // docker's 16 KiB pieces unescape in place, no allocation
		}
		return dockerjson.Parse(line, a.scratch[:0])
	case logline.FormatCRI:
		return cri.Parse(line, a.tsbuf[:0])
	case logline.FormatRaw:
		// No framing: the line is the message, stamped with the time it was read.
		return logline.Line{TS: a.cfg.Now(), Stream: record.StreamStdout, Msg: line}, nil
	default:
		return logline.Line{}, errors.New("unknown log format")
	}
}

// StreamOf returns the stream of one complete physical line (without its newline) as its output
// would carry it: "" when its framing cannot be parsed. For a caller that must know where a line
// goes before it is fed (the collector counts the lines its limit holds back per pipeline).
func (a *Assembler) StreamOf(line []byte) string {
	l, err := a.parse(line)
	if err != nil {
		return ""
	}
	return l.Stream
}

// physical handles one complete physical line of adv bytes (line is without the newline).
func (a *Assembler) physical(line []byte, adv int) {
	start := a.pos
	a.pos += int64(adv)
	l, err := a.parse(line)
	if err != nil {
		a.raw(line, start, err.Error(), false, 0, true)
		return
	}
	a.part(streamIndex(l.Stream), l.TS, l.Msg, l.Partial, start, a.pos)
}

// part adds one message part of a stream's logical line.
func (a *Assembler) part(s int, ts, msg []byte, partial bool, start, end int64) {
	ss := &a.st.Streams[s]
	if len(a.acc[s]) > 0 && len(a.acc[s])+len(msg) > a.cfg.MaxLine {
		a.flushChunk(s, false)
	}
	if len(a.acc[s]) == 0 {
		a.accStart[s] = start
		if !ss.InLine {
			a.accTS[s] = append(a.accTS[s][:0], ts...)
		}
		if !partial || len(msg) >= a.cfg.MaxLine {
			// Nothing to join it with: emitted from where it lies, without a copy to hold.
			a.accEnd[s] = end
			a.emitChunk(s, msg, !partial)
			return
		}
	}
	a.acc[s] = append(a.acc[s], msg...)
	a.accEnd[s] = end
	if !partial {
		a.flushChunk(s, true)
	} else if len(a.acc[s]) >= a.cfg.MaxLine {
		a.flushChunk(s, false)
	}
}

// flushChunk emits stream s's pending parts; last says the logical line ends with them.
func (a *Assembler) flushChunk(s int, last bool) {
	msg := a.acc[s]
	a.acc[s] = a.acc[s][:0]
	a.emitChunk(s, msg, last)
	a.dropAcc(s) // after emit: msg is valid during it
}

// emitChunk emits msg as stream s's next chunk (its parts began at accStart, end at accEnd);
// last says the logical line ends with it. Stream s holds nothing pending.
func (a *Assembler) emitChunk(s int, msg []byte, last bool) {
	ss := &a.st.Streams[s]
	o := &a.out
	*o = Output{Start: a.accStart[s], End: a.accEnd[s], TS: a.accTS[s], Stream: streamName(s), Msg: msg}
	if ss.InLine || !last {
		o.Split, o.Index, o.Last = true, ss.Index, last
	}
	if last {
		*ss = StreamState{}
	} else {
		ss.InLine = true
		ss.Index++
		ss.TS = string(a.accTS[s])
	}
	// A checkpoint at End is exact only if nothing was consumed after this chunk's last part
	// (else the other stream's state at End is not the current one) and nothing is held back.
	o.Checkpointable = a.clean() && a.accEnd[s] == a.pos
	a.emitOut()
}

// emitOut emits a.out and drops its references: they alias the caller's read buffer (or a
// join buffer), which an idle assembler must not keep alive.
func (a *Assembler) emitOut() {
	a.emit(&a.out)
	a.out = Output{}
}

// raw emits a line shipped as it is, because its framing could not be parsed.
func (a *Assembler) raw(line []byte, start int64, perr string, split bool, index int, last bool) {
	o := &a.out
	*o = Output{Start: start, End: a.pos, TS: a.cfg.Now(), Msg: line, ParseError: perr}
	if split {
		o.Split, o.Index, o.Last = true, index, last
	}
	o.Checkpointable = a.clean()
	a.emitOut()
}

// firstSegment handles the first MaxLine bytes of an oversized physical line.
func (a *Assembler) firstSegment(seg []byte) {
	start := a.pos
	a.pos += int64(len(seg))
	// Parse the head (for CRI the prefix is in it; a docker JSON object cannot be parsed in
	// pieces, so it is shipped raw).
	if a.cfg.Format == logline.FormatCRI {
		if l, err := cri.Parse(seg, a.tsbuf[:0]); err == nil {
			s := streamIndex(l.Stream)
			a.st.Mid = &MidState{Stream: s, Partial: l.Partial, TS: string(l.TS)}
			a.part(s, l.TS, l.Msg, true, start, a.pos)
			return
		}
	}
	if a.cfg.Format == logline.FormatRaw {
		// Nothing to parse: the line is cut into ordered split chunks, like a CRI message.
		ts := a.cfg.Now()
		a.st.Mid = &MidState{Stream: 0, TS: string(ts)}
		a.part(0, ts, seg, true, start, a.pos)
		return
	}
	perr := fmt.Sprintf("%s: line longer than %d bytes: shipped raw in chunks", a.cfg.Format, a.cfg.MaxLine)
	a.st.Mid = &MidState{Raw: true, Index: 1, Err: perr}
	a.raw(seg, start, perr, true, 0, false)
}

// continuation handles the next piece of an oversized physical line; lineEnd says it ends the
// physical line. adv includes the newline.
func (a *Assembler) continuation(piece []byte, adv int, lineEnd bool) {
	start := a.pos
	a.pos += int64(adv)
	m := a.st.Mid
	if lineEnd {
		a.st.Mid = nil
	}
	if m.Raw {
		idx := m.Index
		m.Index++
		a.raw(piece, start, m.Err, true, idx, lineEnd)
		return
	}
	partial := !lineEnd || m.Partial
	a.part(m.Stream, []byte(m.TS), piece, partial, start, a.pos)
}

// Cut emits what is held back as chunks of lines that continue (split, not last), so that the
// memory Held reports can be let go before the lines' ends arrive: the collector does this when
// its byte budget is full and only held bytes could make room. Nothing is lost; the lines' later
// parts follow as further chunks.
func (a *Assembler) Cut(emit func(*Output)) {
	a.emit = emit
	defer func() { a.emit = nil }()
	first, second := 0, 1
	if a.accEnd[1] < a.accEnd[0] {
		first, second = 1, 0
	}
	for _, s := range [2]int{first, second} {
		if len(a.acc[s]) == 0 {
			continue
		}
		if len(a.acc[1-s]) == 0 {
			// The last pending stream: everything up to Pos is emitted with it, so a checkpoint
			// may go there.
			a.accEnd[s] = a.pos
		}
		a.flushChunk(s, false)
	}
}

// Flush emits what is held back (a file that was rotated away and will not grow: a runtime that
// died mid-line leaves P parts without their F). After Flush the assembler is clean.
func (a *Assembler) Flush(emit func(*Output)) {
	a.emit = emit
	defer func() { a.emit = nil }()
	a.st.Mid = nil
	for s := range a.acc {
		switch {
		case len(a.acc[s]) > 0:
			a.accEnd[s] = a.pos
			a.flushChunk(s, true)
		case a.st.Streams[s].InLine:
			// Its chunks so far were emitted (Cut, or exactly MaxLine of parts) and none is
			// held: an empty last chunk ends the line, so that readers joining the chunks are
			// not left waiting for a last one that would never come.
			a.accStart[s], a.accEnd[s] = a.pos, a.pos
			a.emitChunk(s, nil, true)
		}
	}
	a.st = State{}
}
