// Package dockerjson parses the lines of docker's json-file log driver:
// {"log":"...\n","stream":"stdout","time":"2024-01-01T00:00:00.000000000Z"}.
package dockerjson

import (
	"bytes"
	"fmt"

	"github.com/logrouter/logrouter/router/logline"
)

// ErrMalformed is wrapped by every Parse error (it is logline.ErrMalformed); errors.As with a
// *logline.ParseError gives the reason.
var ErrMalformed = logline.ErrMalformed

// maxDepth is encoding/json's nesting limit, so both accept the same documents.
const maxDepth = 10000

// Parse parses one docker json-file line. Members other than log, stream and time (e.g. "attrs")
// are validated and ignored; members may come in any order, and the last of duplicates wins, as
// with encoding/json. Msg is the unescaped log value appended to scratch[:0] (Msg aliases scratch
// when it is large enough: pass the previous Msg[:0] back to avoid allocating), without its
// trailing "\n"; Partial is true when the log value did not end in "\n" (docker splits lines at
// 16 KiB). Bytes of the log value that are not valid UTF-8 are kept as they are.
func Parse(line []byte, scratch []byte) (logline.Line, error) {
	p := parser{s: line, buf: scratch[:0]}
	if !bytes.HasPrefix(line, []byte(fastPrefix)) {
		return p.object()
	}
	i, err := p.member("log", len(fastPrefix)-1)
	if err != nil {
		return logline.Line{}, err
	}
	if l, ok := p.fastTail(i); ok {
		return l, nil
	}
	// Another order or extra members: go on from the log value, which is decoded already.
	return p.end(p.members(i, true))
}

// fastPrefix is how docker (its own marshaller, not encoding/json) begins every line.
const fastPrefix = `{"log":"`

// parseGeneral parses without the fast path (the fuzz test compares the two).
func parseGeneral(s, buf []byte) (logline.Line, error) {
	p := parser{s: s, buf: buf[:0]}
	return p.object()
}

// member states.
const (
	missing = iota
	present
	notString
)

// parser is a complete JSON object parser that keeps only log, stream and time.
type parser struct {
	s   []byte
	buf []byte // decoded values: log, and time when it had escapes

	logState, streamState, timeState int

	logA, logB int    // log value in buf
	stream     string // "" when the value was not stdout/stderr
	streamRaw  []byte // the raw stream value, for the error
	tsRaw      []byte // the time value when it had no escapes
	tsInBuf    bool
	tsA, tsB   int // the time value in buf otherwise
}

// fastTail matches what docker writes after the log value: `,"stream":"stdout","time":"<ts>"}`
// and the end of the line. ok is false when the rest is anything else.
func (p *parser) fastTail(i int) (l logline.Line, ok bool) {
	const streamKey = `,"stream":"`
	const timeKey = `","time":"`
	rest := p.s[i:]
	if !bytes.HasPrefix(rest, []byte(streamKey)) || len(rest) < len(streamKey)+6+len(timeKey)+2 {
		return l, false
	}
	rest = rest[len(streamKey):]
	stream, known := logline.Stream(rest[:6])
	if !known || !bytes.HasPrefix(rest[6:], []byte(timeKey)) {
		return l, false
	}
	rest = rest[6+len(timeKey):]
	// The time value must end the object and the line: `..."}`.
	if rest[len(rest)-1] != '}' || rest[len(rest)-2] != '"' {
		return l, false
	}
	// A timestamp NormalizeTS accepts holds no quote, backslash or control character, so the
	// value really ended there; anything else is for the general path to judge and report.
	ts, err := logline.NormalizeTS(rest[:len(rest)-2], p.buf[len(p.buf):])
	if err != nil {
		return l, false
	}
	return newLine(p.buf, 0, len(p.buf), stream, ts), true
}

// object parses the whole line.
func (p *parser) object() (logline.Line, error) {
	s := p.s
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return logline.Line{}, syntax(s, i, "expected '{'")
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return p.end(i+1, nil)
	}
	return p.end(p.members(i, false))
}

// members parses members from s[i] (a member name, or just after a member value when
// afterValue) to the closing brace, and returns the index after it.
func (p *parser) members(i int, afterValue bool) (int, error) {
	s := p.s
	var err error
	for {
		if !afterValue {
			if i >= len(s) || s[i] != '"' {
				return i, syntax(s, i, "expected a member name")
			}
			start := i + 1
			if i, err = skipString(s, start); err != nil {
				return i, perr(logline.ReasonBadJSON, "", err)
			}
			key := s[start : i-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				// Escaped names never come from docker; decoding one may allocate.
				var kb [16]byte
				key, _, _ = unquote(kb[:0], s, start)
			}
			i = skipWS(s, i)
			if i >= len(s) || s[i] != ':' {
				return i, syntax(s, i, "expected ':' after member name")
			}
			if i, err = p.member(string(key), skipWS(s, i+1)); err != nil {
				return i, err
			}
		}
		afterValue = false
		i = skipWS(s, i)
		if i < len(s) && s[i] == ',' {
			i = skipWS(s, i+1)
			continue
		}
		if i < len(s) && s[i] == '}' {
			return i + 1, nil
		}
		return i, syntax(s, i, "expected ',' or '}' after member value")
	}
}

// member parses the value at s[i] of the member named key and returns the index after it.
func (p *parser) member(key string, i int) (int, error) {
	s := p.s
	isString := i < len(s) && s[i] == '"'
	var err error
	switch {
	case key == "log" && isString:
		p.logA = len(p.buf)
		p.buf, i, err = unquote(p.buf, s, i+1)
		p.logB, p.logState = len(p.buf), present
	case key == "stream" && isString:
		var sb [8]byte
		start := i
		var v []byte
		v, i, err = unquote(sb[:0], s, i+1)
		p.stream, _ = logline.Stream(v)
		p.streamRaw, p.streamState = s[start:i], present
	case key == "time" && isString:
		start := i + 1
		if j := bytes.IndexByte(s[start:], '"'); j >= 0 && bytes.IndexByte(s[start:start+j], '\\') < 0 {
			// No escapes (always, in practice): keep the raw bytes, still validated by skipString.
			i, err = skipString(s[:start+j+1], start)
			p.tsRaw, p.tsInBuf = s[start:start+j], false
		} else {
			p.tsA = len(p.buf)
			p.buf, i, err = unquote(p.buf, s, start)
			p.tsB, p.tsInBuf = len(p.buf), true
		}
		p.timeState = present
	default:
		switch key {
		case "log":
			p.logState = notString
		case "stream":
			p.streamState = notString
		case "time":
			p.timeState = notString
		}
		i, err = skipValue(s, i, 2)
	}
	if err != nil {
		return i, perr(logline.ReasonBadJSON, "", err)
	}
	return i, nil
}

// end checks that nothing follows the object at s[i] and builds the line.
func (p *parser) end(i int, err error) (logline.Line, error) {
	if err != nil {
		return logline.Line{}, err
	}
	if i = skipWS(p.s, i); i < len(p.s) {
		return logline.Line{}, syntax(p.s, i, "data after the object")
	}
	switch {
	case p.logState == missing:
		return logline.Line{}, perr(logline.ReasonMissingLog, "no \"log\" member", nil)
	case p.logState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"log\" is not a string", nil)
	case p.streamState == missing:
		return logline.Line{}, perr(logline.ReasonMissingStream, "no \"stream\" member", nil)
	case p.streamState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"stream\" is not a string", nil)
	case p.stream == "":
		return logline.Line{}, perr(logline.ReasonUnknownStream, logline.Quote(p.streamRaw), nil)
	case p.timeState == missing:
		return logline.Line{}, perr(logline.ReasonMissingTime, "no \"time\" member", nil)
	case p.timeState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"time\" is not a string", nil)
	}
	ts := p.tsRaw
	if p.tsInBuf {
		ts = p.buf[p.tsA:p.tsB]
	}
	return finish(p.buf, p.logA, p.logB, p.stream, ts)
}

// finish builds the line from the decoded log value buf[a:b], the stream and the raw time value.
func finish(buf []byte, a, b int, stream string, ts []byte) (logline.Line, error) {
	nts, err := logline.NormalizeTS(ts, buf[len(buf):])
	if err != nil {
		return logline.Line{}, perr(logline.ReasonBadTimestamp, "", err)
	}
	return newLine(buf, a, b, stream, nts), nil
}

// newLine builds the line from the decoded log value buf[a:b], the stream and the normalized time.
func newLine(buf []byte, a, b int, stream string, ts []byte) logline.Line {
	// Capped, so appending to Msg cannot overwrite a timestamp normalized into buf after it.
	l := logline.Line{TS: ts, Stream: stream, Msg: buf[a:b:b]}
	if n := len(l.Msg); n > 0 && l.Msg[n-1] == '\n' {
		l.Msg = l.Msg[:n-1]
	} else {
		l.Partial = true
	}
	return l
}

// skipValue validates the JSON value at s[i] and returns the index after it. depth is the
// nesting depth the value would have if it is an object or array.
func skipValue(s []byte, i, depth int) (int, error) {
	if i >= len(s) {
		return i, fmt.Errorf("unexpected end of line at byte %d: expected a value", i)
	}
	switch c := s[i]; {
	case c == '"':
		return skipString(s, i+1)
	case c == '{' || c == '[':
		if depth > maxDepth {
			return i, fmt.Errorf("nesting deeper than %d at byte %d", maxDepth, i)
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipWS(s, i+1)
		if i < len(s) && s[i] == end {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(s) || s[i] != '"' {
					return i, syntaxErr(s, i, "expected a member name")
				}
				if i, err = skipString(s, i+1); err != nil {
					return i, err
				}
				i = skipWS(s, i)
				if i >= len(s) || s[i] != ':' {
					return i, syntaxErr(s, i, "expected ':' after member name")
				}
				i = skipWS(s, i+1)
			}
			if i, err = skipValue(s, i, depth+1); err != nil {
				return i, err
			}
			i = skipWS(s, i)
			if i < len(s) && s[i] == ',' {
				i = skipWS(s, i+1)
				continue
			}
			if i < len(s) && s[i] == end {
				return i + 1, nil
			}
			return i, syntaxErr(s, i, "expected ',' or '"+string(end)+"'")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(s, i)
	case c == 't':
		return literal(s, i, "true")
	case c == 'f':
		return literal(s, i, "false")
	case c == 'n':
		return literal(s, i, "null")
	}
	return i, syntaxErr(s, i, "expected a value")
}

func literal(s []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(s[i:], []byte(lit)) {
		return i, syntaxErr(s, i, "expected "+lit)
	}
	return i + len(lit), nil
}

// skipNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(s []byte, i int) (int, error) {
	start := i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return i, syntaxErr(s, start, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return i, syntaxErr(s, start, "invalid number")
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return i, syntaxErr(s, start, "invalid number")
		}
		i = j
	}
	return i, nil
}

func skipDigits(s []byte, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func syntaxErr(s []byte, i int, what string) error {
	if i >= len(s) {
		return fmt.Errorf("unexpected end of line at byte %d: %s", i, what)
	}
	return fmt.Errorf("unexpected %q at byte %d: %s", s[i], i, what)
}

func syntax(s []byte, i int, what string) error {
	return perr(logline.ReasonBadJSON, "", syntaxErr(s, i, what))
}

func perr(reason, detail string, err error) error {
	return &logline.ParseError{Format: logline.FormatDocker, Reason: reason, Detail: detail, Err: err}
}
