package pipeline

import (
	"fmt"
	"reflect"
	"regexp"
	"time"
)

// Counts are what a Runner did to records since the last TakeCounts. Every record that
// entered the steps is counted once in Emitted, Dropped or SampledOut (a joined record once,
// however many lines it holds).
type Counts struct {
	Emitted, Dropped, SampledOut int64
	// ParseFailed: records a parse step marked (they are in Emitted, Dropped or SampledOut).
	ParseFailed int64
	// EvalErrors: CEL evaluations that failed; each such step did nothing.
	EvalErrors int64
	// Panicked: records emitted raw after a step panicked.
	Panicked int64
	// Joined: input lines that went into a record with lines before them (multiline).
	Joined int64
	// HeldFlushed: joined records emitted by Flush (timeout, rotation, shutdown, change).
	HeldFlushed int64
}

// TakeCounts returns the counts since the last call and resets them.
func (r *Runner) TakeCounts() Counts {
	c := r.counts
	r.counts = Counts{}
	return c
}

// run runs the steps on rec and emits it unless a step removed it.
func (r *Runner) run(rec *Record, emit func(*Record)) Verdict {
	v := r.runSteps(rec)
	switch v {
	case Emit:
		r.counts.Emitted++
		emit(rec)
	case Drop:
		r.counts.Dropped++
	case SampledOut:
		r.counts.SampledOut++
	}
	return v
}

// runSteps applies the steps. A panic in a step is recovered: the record goes on raw (its
// message and time as they came in, no fields) with FieldsError naming the step.
func (r *Runner) runSteps(rec *Record) (v Verdict) {
	raw, rawTime := rec.Message, rec.Time
	at := -1
	defer func() {
		if x := recover(); x != nil {
			where := "steps"
			if at >= 0 {
				where = r.p.stepPath(at)
			}
			rec.Message, rec.Time, rec.Fields = raw, rawTime, nil
			rec.FieldsError = truncate(fmt.Sprintf("%s: internal error (recovered panic: %v); the line ships raw", where, x), 512)
			r.out.Panicked = true
			r.counts.Panicked++
			v = Emit
		}
	}()
	if rec.Fields != nil && len(rec.Fields) > 0 && sameMap(rec.Fields, r.fields) {
		// The caller passed the record of the previous line again.
		rec.Fields = nil
	}
	r.act.reset(rec)
	for i, s := range r.p.steps {
		at = i
		if v := s.apply(r, rec); v != Emit {
			return v
		}
	}
	return Emit
}

func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// stepPath names step i of steps for messages ("steps[2].regex").
func (p *Pipeline) stepPath(i int) string {
	off := 0
	if p.multiline != nil {
		off = 1
	}
	return fmt.Sprintf("steps[%d].%s", i+off, stepName(p.steps[i]))
}

func stepName(s step) string {
	switch s := s.(type) {
	case *jsonStep:
		return "json"
	case *logfmtStep:
		return "logfmt"
	case *regexStep:
		return "regex"
	case *timestampStep:
		return "timestamp"
	case *setStep:
		return "set"
	case *renameStep:
		return "rename"
	case *removeStep:
		return "remove"
	case *conditionStep:
		if s.keep {
			return "keep"
		}
		return "drop"
	case *redactStep:
		return "redact"
	case *sampleStep:
		return "sample"
	}
	return "step"
}

// fieldsOf returns rec's fields, giving it the Runner's (cleared) map when it has none.
func (r *Runner) fieldsOf(rec *Record) map[string]any {
	if rec.Fields == nil {
		clear(r.fields)
		rec.Fields = r.fields
	}
	return rec.Fields
}

// parseFailed marks rec: the first failure's message stays in FieldsError.
func (r *Runner) parseFailed(rec *Record, path, msg string) {
	if rec.FieldsError == "" {
		rec.FieldsError = path + ": " + msg
		r.counts.ParseFailed++
	}
	r.out.ParseFailed = true
}

func (r *Runner) evalFailed() {
	r.counts.EvalErrors++
	r.out.EvalErrors++
}

// messageBuf returns an empty buffer for a new message, not the one rec.Message may be in.
func (r *Runner) messageBuf() []byte {
	r.msgCur ^= 1
	return r.msgBufs[r.msgCur][:0]
}

func (r *Runner) setMessage(rec *Record, b []byte) {
	r.msgBufs[r.msgCur] = b
	rec.Message = b
	r.act.invalidate()
}

// multilineStep joins lines (see v1alpha1.MultilineStep).
type multilineStep struct {
	re         *regexp.Regexp
	isStart    bool // re is the start pattern; else the continue pattern
	maxLines   int
	maxBytes   int
	flushAfter time.Duration
}

func (*multilineStep) apply(*Runner, *Record) Verdict { return Emit } // never in Pipeline.steps

// heldRecord is the Runner's multiline state: at most one record of at most maxLines lines
// and maxBytes bytes, in buf (held lines are copied: the caller's buffer moves on).
type heldRecord struct {
	held bool
	rec  Record
	buf  []byte
	last time.Time // when the last line joined
}

// join is Process with a multiline step.
func (r *Runner) join(rec *Record, now time.Time, emit func(*Record)) {
	ml, h := r.p.multiline, &r.ml
	matched := r.match(ml.re, rec.Message)
	if h.held && rec.Stream == h.rec.Stream && matched != ml.isStart &&
		h.rec.Lines < ml.maxLines && len(h.buf)+1+len(rec.Message) <= ml.maxBytes {
		h.buf = append(h.buf, '\n')
		h.buf = append(h.buf, rec.Message...)
		h.rec.End = rec.End
		h.rec.Lines += max(rec.Lines, 1)
		h.last = now
		r.counts.Joined++
		r.out.Verdict = Hold
		if h.rec.Lines >= ml.maxLines || len(h.buf) >= ml.maxBytes {
			r.out.Verdict = r.emitHeld(emit)
		}
		return
	}
	if h.held {
		r.emitHeld(emit)
	}
	if len(rec.Message) >= ml.maxBytes {
		// As large as a whole record: nothing can join it.
		r.out.Verdict = r.run(rec, emit)
		return
	}
	h.held = true
	h.rec = *rec
	h.rec.Fields, h.rec.FieldsError = nil, ""
	h.rec.Lines = max(rec.Lines, 1)
	h.buf = append(h.buf[:0], rec.Message...)
	h.rec.Message = nil
	h.last = now
	r.out.Verdict = Hold
}

// match runs the pattern; a panic in it counts as no match (it is recovered by the caller of
// runSteps otherwise, but here no record would be emitted).
func (r *Runner) match(re *regexp.Regexp, b []byte) (ok bool) {
	return re.Match(b)
}

// emitHeld runs the steps on the held record and emits it.
func (r *Runner) emitHeld(emit func(*Record)) Verdict {
	h := &r.ml
	h.held = false
	h.rec.Message = h.buf
	v := r.run(&h.rec, emit)
	h.rec = Record{}
	h.buf = h.buf[:0]
	if cap(h.buf) > 4*r.p.multiline.maxBytes {
		h.buf = nil // a record grew past the bound once (one huge line): do not keep it
	}
	return v
}
