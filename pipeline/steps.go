package pipeline

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// step is one compiled step. apply changes rec and returns Emit to go on, or Drop or
// SampledOut to end the record. Steps record parse failures and CEL errors on r.
type step interface {
	apply(r *Runner, rec *Record) Verdict
}

// text returns the text a parse step reads: the message, as a view (see pieces), or the
// string field source.
func (r *Runner) text(rec *Record, path, source string) (pieces, bool) {
	if source == "" {
		s, view := r.act.text()
		return pieces{in: &r.intern, s: s, view: view}, true
	}
	v, ok := rec.Fields[source]
	if !ok {
		r.parseFailed(rec, path, fmt.Sprintf("field %q is missing", source))
		return pieces{}, false
	}
	s, ok := v.(string)
	if !ok {
		r.parseFailed(rec, path, fmt.Sprintf("field %q is %s, not a string", source, kindOf(v)))
		return pieces{}, false
	}
	return pieces{in: &r.intern, s: s}, true
}

// kindOf names a field value's JSON kind for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int64, uint64, float64, int:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// jsonStep parses a JSON object.
type jsonStep struct {
	path, source, into string
}

func (s *jsonStep) apply(r *Runner, rec *Record) Verdict {
	src, ok := r.text(rec, s.path, s.source)
	if !ok {
		return Emit
	}
	r.parseObject(rec, s.path, s.into, func(dst map[string]any) error { return parseJSONPieces(src, dst) })
	return Emit
}

// parseObject runs parse into a map and merges the result into fields (or under into) only
// when it succeeded, so a failed parse leaves fields as they were.
func (r *Runner) parseObject(rec *Record, path, into string, parse func(map[string]any) error) {
	if into != "" {
		m := map[string]any{}
		if err := parse(m); err != nil {
			r.parseFailed(rec, path, err.Error())
			return
		}
		r.fieldsOf(rec)[into] = m
		return
	}
	fields := r.fieldsOf(rec)
	if len(fields) == 0 {
		// Nothing to keep on failure: parse in place.
		if err := parse(fields); err != nil {
			clear(fields)
			rec.Fields = nil
			r.parseFailed(rec, path, err.Error())
		}
		return
	}
	if r.scratch == nil {
		r.scratch = map[string]any{}
	}
	clear(r.scratch)
	if err := parse(r.scratch); err != nil {
		r.parseFailed(rec, path, err.Error())
		return
	}
	for k, v := range r.scratch {
		fields[k] = v
	}
}

// logfmtStep parses key=value pairs.
type logfmtStep struct {
	path, source, into string
}

func (s *logfmtStep) apply(r *Runner, rec *Record) Verdict {
	src, ok := r.text(rec, s.path, s.source)
	if !ok {
		return Emit
	}
	text := src.s
	if src.view {
		text = r.act.message() // logfmt keeps substrings of its text: a copy
	}
	r.parseObject(rec, s.path, s.into, func(dst map[string]any) error { return parseLogfmtInto(text, dst) })
	return Emit
}

type regexGroup struct {
	index int
	name  string
}

// regexStep sets a field for each named group of a match.
type regexStep struct {
	path, source string
	re           *regexp.Regexp
	groups       []regexGroup
}

func (s *regexStep) apply(r *Runner, rec *Record) Verdict {
	src, ok := r.text(rec, s.path, s.source)
	if !ok {
		return Emit
	}
	loc := s.re.FindStringSubmatchIndex(src.s)
	if loc == nil {
		r.parseFailed(rec, s.path, "no match")
		return Emit
	}
	fields := r.fieldsOf(rec)
	for _, g := range s.groups {
		if a := loc[2*g.index]; a >= 0 {
			fields[g.name] = src.value(a, loc[2*g.index+1])
		}
	}
	return Emit
}

// Named layouts of the timestamp step (TimestampStep.Layout).
const (
	layoutUnix      = "Unix"
	layoutUnixMilli = "UnixMilli"
	layoutUnixMicro = "UnixMicro"
	layoutUnixNano  = "UnixNano"
	// LayoutCommon is the time of the Common Log Format (nginx, apache: %d/%b/%Y:%H:%M:%S %z).
	LayoutCommon = "02/Jan/2006:15:04:05 -0700"
)

// timestampStep sets the record's time from a field.
type timestampStep struct {
	path, field string
	layout      string // a Go layout, or one of the Unix names
	unitNanos   int64  // for the Unix layouts: nanoseconds per unit
}

func (s *timestampStep) setLayout(l string) error {
	switch l {
	case "", "RFC3339Nano", "RFC3339":
		// time.Parse accepts fractional seconds with RFC3339 as well.
		s.layout = time.RFC3339Nano
	case "Common":
		s.layout = LayoutCommon
	case layoutUnix:
		s.layout, s.unitNanos = l, int64(time.Second)
	case layoutUnixMilli:
		s.layout, s.unitNanos = l, int64(time.Millisecond)
	case layoutUnixMicro:
		s.layout, s.unitNanos = l, int64(time.Microsecond)
	case layoutUnixNano:
		s.layout, s.unitNanos = l, 1
	default:
		// A Go layout: it must contain layout elements and read back what it writes.
		ref := time.Date(2026, time.March, 7, 13, 14, 15, 123456789, time.UTC)
		text := ref.Format(l)
		if text == l {
			return fmt.Errorf("%q is not a time layout: write the reference time Mon Jan 2 15:04:05 MST 2006 in the wanted format, or use RFC3339, RFC3339Nano, Unix, UnixMilli, UnixMicro, UnixNano or Common", l)
		}
		if _, err := time.Parse(l, text); err != nil {
			return fmt.Errorf("%q cannot read the times it writes: %v", l, err)
		}
		s.layout = l
	}
	return nil
}

func (s *timestampStep) apply(r *Runner, rec *Record) Verdict {
	v, ok := rec.Fields[s.field]
	if !ok {
		r.parseFailed(rec, s.path, fmt.Sprintf("field %q is missing", s.field))
		return Emit
	}
	t, err := s.parse(v)
	if err != nil {
		r.parseFailed(rec, s.path, fmt.Sprintf("field %q: %v", s.field, err))
		return Emit
	}
	rec.Time = t.UTC()
	return Emit
}

func (s *timestampStep) parse(v any) (time.Time, error) {
	if s.unitNanos != 0 {
		var f float64
		switch x := v.(type) {
		case int64:
			return unixTime(x, s.unitNanos)
		case float64:
			f = x
		case string:
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return unixTime(n, s.unitNanos)
			}
			var err error
			if f, err = strconv.ParseFloat(x, 64); err != nil {
				return time.Time{}, fmt.Errorf("%q is not a number (layout %s)", x, s.layout)
			}
		default:
			return time.Time{}, fmt.Errorf("is %s, not a number (layout %s)", kindOf(v), s.layout)
		}
		ns := f * float64(s.unitNanos)
		if !(ns > -9.2e18 && ns < 9.2e18) { // also false for NaN
			return time.Time{}, fmt.Errorf("%v is out of range (layout %s)", f, s.layout)
		}
		return time.Unix(0, int64(ns)).UTC(), nil
	}
	str, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("is %s, not a string (layout %q)", kindOf(v), s.layout)
	}
	t, err := time.Parse(s.layout, str)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q does not match layout %q", str, s.layout)
	}
	return t, nil
}

func unixTime(n, unit int64) (time.Time, error) {
	if unit != 1 {
		lim := int64(1<<63-1) / unit
		if n > lim || n < -lim {
			return time.Time{}, fmt.Errorf("%d is out of range", n)
		}
	}
	return time.Unix(0, n*unit).UTC(), nil
}

// setStep sets a field to a CEL value.
type setStep struct {
	field string
	value *celExpr
}

func (s *setStep) apply(r *Runner, rec *Record) Verdict {
	v, err := s.value.eval(&r.act)
	if err != nil {
		r.evalFailed()
		return Emit
	}
	r.fieldsOf(rec)[s.field] = v
	return Emit
}

type renameStep struct{ from, to string }

func (s *renameStep) apply(r *Runner, rec *Record) Verdict {
	if v, ok := rec.Fields[s.from]; ok {
		delete(rec.Fields, s.from)
		rec.Fields[s.to] = v
	}
	return Emit
}

type removeStep struct{ fields []string }

func (s *removeStep) apply(r *Runner, rec *Record) Verdict {
	for _, f := range s.fields {
		delete(rec.Fields, f)
	}
	return Emit
}

// conditionStep is keep (keep: true) or drop. A condition that fails to evaluate (a missing
// field, the cost limit) leaves the record alone: no line is lost by an error.
type conditionStep struct {
	keep bool
	cond *celExpr
}

func (s *conditionStep) apply(r *Runner, rec *Record) Verdict {
	ok, err := s.cond.evalBool(&r.act)
	if err != nil {
		r.evalFailed()
		return Emit
	}
	if ok != s.keep {
		return Drop
	}
	return Emit
}

// defaultReplacement replaces what redact removes.
const defaultReplacement = "[REDACTED]"

// redactKey is the HMAC key of a namespace's redact hashes. It is derived from the namespace,
// so equal values correlate within a namespace (across its pipelines and collectors) and not
// across namespaces. It is not a secret: a guessable value (an email of a known user) can be
// confirmed by hashing the guess. The hash pseudonymises; it does not encrypt.
func redactKey(ns string) []byte { return []byte("logrouter.redact.v1/" + ns) }

// redactStep replaces matches of re in the message and in string fields, and the values of
// the named fields.
type redactStep struct {
	re          *regexp.Regexp
	match       *matcher
	fields      []string
	replacement string
	hash        bool
	key         []byte
}

func (s *redactStep) apply(r *Runner, rec *Record) Verdict {
	if s.re != nil {
		msg := rec.Message
		if locs := s.match.find(msg, r.locs); len(locs) > 0 {
			r.locs = locs
			b := r.messageBuf()
			prev := 0
			for _, l := range locs {
				b = append(b, msg[prev:l[0]]...)
				b = s.appendReplacement(r, b, msg[l[0]:l[1]])
				prev = l[1]
			}
			b = append(b, msg[prev:]...)
			r.setMessage(rec, b)
		}
		for k, v := range rec.Fields {
			if nv, changed := s.redactValue(r, v, 0); changed {
				rec.Fields[k] = nv
			}
		}
	}
	for _, f := range s.fields {
		v, ok := rec.Fields[f]
		if !ok {
			continue
		}
		str, isStr := v.(string)
		if isStr && r.lastRedact.step == s && r.lastRedact.in == str {
			// The same value as on the last line (a pod's constant field, a user's id).
			rec.Fields[f] = r.lastRedact.out
			continue
		}
		var raw []byte
		if isStr {
			raw = append(r.scratchBytes[:0], str...)
		} else {
			raw = appendValue(r.scratchBytes[:0], v, 0)
		}
		r.scratchBytes = raw
		// The replacement is built after raw in the same buffer: one string copy per field.
		rep := s.appendReplacement(r, raw[len(raw):], raw)
		out := any(string(rep))
		rec.Fields[f] = out
		if isStr && len(str) <= maxSumCached {
			r.lastRedact.step, r.lastRedact.in, r.lastRedact.out = s, str, out
		}
		if cap(rep) > cap(raw)-len(raw) {
			r.scratchBytes = rep[:0] // grown: keep the larger buffer
		}
	}
	return Emit
}

// redactValue applies the pattern to string values, also inside objects and lists.
func (s *redactStep) redactValue(r *Runner, v any, depth int) (any, bool) {
	if depth > maxEncodeDepth {
		return v, false
	}
	switch x := v.(type) {
	case string:
		if s.match.lit != nil && !strings.Contains(x, s.match.litStr) {
			return v, false // the common case, without converting x
		}
		locs := s.match.find([]byte(x), r.locs)
		if len(locs) == 0 {
			return v, false
		}
		r.locs = locs
		var b []byte
		prev := 0
		for _, l := range locs {
			b = append(b, x[prev:l[0]]...)
			b = s.appendReplacement(r, b, []byte(x[l[0]:l[1]]))
			prev = l[1]
		}
		return string(append(b, x[prev:]...)), true
	case map[string]any:
		for k, e := range x {
			if ne, ok := s.redactValue(r, e, depth+1); ok {
				x[k] = ne
			}
		}
	case []any:
		for i, e := range x {
			if ne, ok := s.redactValue(r, e, depth+1); ok {
				x[i] = ne
			}
		}
	}
	return v, false
}

// appendReplacement appends the replacement of removed. With hash it carries the first 12 hex
// digits of HMAC-SHA256(namespace key, removed): "[REDACTED]" becomes
// "[REDACTED:sha256:0123456789ab]"; a replacement not ending in "]" gets ":sha256:<hex>"
// appended.
// maxSumCached bounds the removed value a Runner keeps to recognise it on the next line.
const maxSumCached = 256

func (s *redactStep) appendReplacement(r *Runner, b, removed []byte) []byte {
	if !s.hash {
		return append(b, s.replacement...)
	}
	if r.mac == nil {
		r.mac = hmac.New(sha256.New, s.key)
	}
	sum := r.sum
	if !r.sumOK || !bytes.Equal(removed, r.sumOf) {
		// The same value often repeats on consecutive lines (a user, a client address): the
		// last one's digest is kept (the key is the namespace's, the same for every step).
		r.mac.Reset()
		r.mac.Write(removed)
		sum = r.mac.Sum(r.sum[:0])
		r.sum, r.sumOK = sum, len(removed) <= maxSumCached
		if r.sumOK {
			r.sumOf = append(r.sumOf[:0], removed...)
		}
	}
	rep := s.replacement
	closing := strings.HasSuffix(rep, "]")
	if closing {
		rep = rep[:len(rep)-1]
	}
	b = append(b, rep...)
	b = append(b, ":sha256:"...)
	b = hex.AppendEncode(b, sum[:6])
	if closing {
		b = append(b, ']')
	}
	return b
}

// sampleStep keeps one record in oneIn, by a hash of its message and start offset: a replay
// of the same file decides the same way, and identical lines at different places are sampled
// independently (a hash of the text alone would keep all or none of a repeated line).
type sampleStep struct {
	oneIn uint64
	cond  *celExpr
}

func (s *sampleStep) apply(r *Runner, rec *Record) Verdict {
	if s.cond != nil {
		ok, err := s.cond.evalBool(&r.act)
		if err != nil {
			r.evalFailed()
			return Emit
		}
		if !ok {
			return Emit
		}
	}
	if sampleHash(rec.Message, rec.Start)%s.oneIn != 0 {
		return SampledOut
	}
	return Emit
}

// sampleHash mixes xxhash of the message with the offset (splitmix64's finalizer).
func sampleHash(msg []byte, start int64) uint64 {
	h := xxhash.Sum64(msg) ^ uint64(start)*0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// requiredLiteral returns a literal that every match of pattern contains, or "" when it
// finds none (the longest case-sensitive literal of the top-level concatenation).
func requiredLiteral(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	return literalIn(re.Simplify(), 0)
}

func literalIn(re *syntax.Regexp, depth int) string {
	if depth > 100 {
		return ""
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return literalIn(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalIn(re.Sub[0], depth+1)
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := literalIn(sub, depth+1); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}
