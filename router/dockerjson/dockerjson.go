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
	if l, ok, err := parseFast(line, scratch); ok {
		return l, err
	}
	return parseGeneral(line, scratch)
}

// fastPrefix is how docker (its own marshaller, not encoding/json) begins every line.
const fastPrefix = `{"log":"`

// parseFast handles the member order docker writes, without whitespace or extra members.
// ok is false when the line is anything else; parseGeneral then decides.
func parseFast(s, buf []byte) (l logline.Line, ok bool, err error) {
	if !bytes.HasPrefix(s, []byte(fastPrefix)) {
		return l, false, nil
	}
	buf, i, err := unquote(buf[:0], s, len(fastPrefix))
	if err != nil {
		return l, false, nil
	}
	const streamKey = `,"stream":"`
	const timeKey = `","time":"`
	rest := s[i:]
	if !bytes.HasPrefix(rest, []byte(streamKey)) || len(rest) < len(streamKey)+6+len(timeKey) {
		return l, false, nil
	}
	rest = rest[len(streamKey):]
	stream, known := logline.Stream(rest[:6])
	if !known || !bytes.HasPrefix(rest[6:], []byte(timeKey)) {
		return l, false, nil
	}
	rest = rest[6+len(timeKey):]
	// The time value must end the object: `..."}`, with no escapes in it.
	if len(rest) < 2 || rest[len(rest)-1] != '}' || rest[len(rest)-2] != '"' {
		return l, false, nil
	}
	ts := rest[:len(rest)-2]
	if bytes.IndexByte(ts, '"') >= 0 || bytes.IndexByte(ts, '\\') >= 0 {
		return l, false, nil
	}
	for _, c := range ts {
		if c < 0x20 {
			return l, false, nil
		}
	}
	l, err = finish(buf, 0, len(buf), stream, ts)
	return l, true, err
}

// finish builds the line from the decoded log value buf[a:b], the stream and the raw time value.
func finish(buf []byte, a, b int, stream string, ts []byte) (logline.Line, error) {
	var l logline.Line
	nts, err := logline.NormalizeTS(ts, buf[len(buf):])
	if err != nil {
		return l, perr(logline.ReasonBadTimestamp, "", err)
	}
	msg := buf[a:b:b]
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	} else {
		l.Partial = true
	}
	l.TS, l.Stream, l.Msg = nts, stream, msg
	return l, nil
}

// member states.
const (
	missing = iota
	present
	notString
)

// parseGeneral is a complete JSON object parser that keeps only log, stream and time.
func parseGeneral(s, buf []byte) (logline.Line, error) {
	buf = buf[:0]
	var (
		logState, streamState, timeState int
		logA, logB                       int    // log value in buf
		stream                           string // "" when the value was not stdout/stderr
		streamRaw                        []byte // the raw value, for the error
		tsRaw                            []byte // slice of s, or of buf when it had escapes
		tsInBuf                          bool
		tsA, tsB                         int
		err                              error
	)
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return logline.Line{}, syntax(s, i, "expected '{'")
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			if i >= len(s) || s[i] != '"' {
				return logline.Line{}, syntax(s, i, "expected a member name")
			}
			start := i + 1
			if i, err = skipString(s, start); err != nil {
				return logline.Line{}, perr(logline.ReasonBadJSON, "", err)
			}
			key := s[start : i-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				// Escaped names never come from docker; decoding one may allocate.
				var kb [16]byte
				key, _, _ = unquote(kb[:0], s, start)
			}
			i = skipWS(s, i)
			if i >= len(s) || s[i] != ':' {
				return logline.Line{}, syntax(s, i, "expected ':' after member name")
			}
			i = skipWS(s, i+1)
			isString := i < len(s) && s[i] == '"'
			switch {
			case string(key) == "log" && isString:
				logA = len(buf)
				buf, i, err = unquote(buf, s, i+1)
				logB, logState = len(buf), present
			case string(key) == "stream" && isString:
				var sb [8]byte
				start := i
				var v []byte
				v, i, err = unquote(sb[:0], s, i+1)
				stream, _ = logline.Stream(v)
				streamRaw, streamState = s[start:i], present
			case string(key) == "time" && isString:
				start := i + 1
				if j := bytes.IndexByte(s[start:], '"'); j >= 0 && bytes.IndexByte(s[start:start+j], '\\') < 0 {
					// No escapes (always, in practice): keep the raw bytes, still validated by unquote.
					i, err = skipString(s[:start+j+1], start)
					tsRaw, tsInBuf = s[start:start+j], false
				} else {
					tsA = len(buf)
					buf, i, err = unquote(buf, s, start)
					tsB, tsInBuf = len(buf), true
				}
				timeState = present
			default:
				switch string(key) {
				case "log":
					logState = notString
				case "stream":
					streamState = notString
				case "time":
					timeState = notString
				}
				i, err = skipValue(s, i, 2)
			}
			if err != nil {
				return logline.Line{}, perr(logline.ReasonBadJSON, "", err)
			}
			i = skipWS(s, i)
			if i < len(s) && s[i] == ',' {
				i = skipWS(s, i+1)
				continue
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			return logline.Line{}, syntax(s, i, "expected ',' or '}' after member value")
		}
	}
	if i = skipWS(s, i); i < len(s) {
		return logline.Line{}, syntax(s, i, "data after the object")
	}

	switch {
	case logState == missing:
		return logline.Line{}, perr(logline.ReasonMissingLog, "no \"log\" member", nil)
	case logState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"log\" is not a string", nil)
	case streamState == missing:
		return logline.Line{}, perr(logline.ReasonMissingStream, "no \"stream\" member", nil)
	case streamState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"stream\" is not a string", nil)
	case stream == "":
		return logline.Line{}, perr(logline.ReasonUnknownStream, logline.Quote(streamRaw), nil)
	case timeState == missing:
		return logline.Line{}, perr(logline.ReasonMissingTime, "no \"time\" member", nil)
	case timeState == notString:
		return logline.Line{}, perr(logline.ReasonBadMember, "\"time\" is not a string", nil)
	}
	if tsInBuf {
		tsRaw = buf[tsA:tsB]
	}
	return finish(buf, logA, logB, stream, tsRaw)
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
