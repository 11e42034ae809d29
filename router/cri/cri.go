// Package cri parses the log line format of the Container Runtime Interface (containerd, CRI-O):
// "<timestamp> <stdout|stderr> <tag> <message>".
package cri

import (
	"bytes"

	"github.com/logrouter/logrouter/router/logline"
)

// ErrMalformed is wrapped by every Parse error (it is logline.ErrMalformed); errors.As with a
// *logline.ParseError gives the reason.
var ErrMalformed = logline.ErrMalformed

// Parse parses one physical CRI log line without its trailing newline. The tag is "P" (partial)
// or "F" (full), possibly followed by ":"-separated extra tags, which are ignored. The message may
// be empty ("<ts> stdout F", with or without the trailing space) and is everything after the
// single space that follows the tag, a trailing "\r" included. scratch is used only when the
// timestamp has an offset and must be rewritten in UTC.
func Parse(line []byte, scratch []byte) (logline.Line, error) {
	var l logline.Line
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return l, perr(logline.ReasonMissingStream, "no space after the timestamp in "+logline.Quote(line), nil)
	}
	ts, rest := line[:sp], line[sp+1:]

	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 {
		// "<ts> stdout" with no tag is not a CRI line either; say which part is missing.
		if _, ok := logline.Stream(rest); ok {
			return l, perr(logline.ReasonBadTag, "missing tag", nil)
		}
		if len(rest) == 0 {
			return l, perr(logline.ReasonMissingStream, "nothing after the timestamp", nil)
		}
		return l, perr(logline.ReasonUnknownStream, logline.Quote(rest), nil)
	}
	stream, ok := logline.Stream(rest[:sp])
	if !ok {
		if sp == 0 {
			return l, perr(logline.ReasonMissingStream, "empty stream", nil)
		}
		return l, perr(logline.ReasonUnknownStream, logline.Quote(rest[:sp]), nil)
	}
	rest = rest[sp+1:]

	var tag []byte
	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 {
		tag, rest = rest, rest[len(rest):]
	} else {
		tag, rest = rest[:sp], rest[sp+1:]
	}
	// Only the first ":"-separated tag is defined (P or F); later ones are for the runtime.
	if len(tag) == 0 || (len(tag) > 1 && tag[1] != ':') || (tag[0] != 'P' && tag[0] != 'F') {
		if len(tag) == 0 {
			return l, perr(logline.ReasonBadTag, "missing tag", nil)
		}
		return l, perr(logline.ReasonBadTag, logline.Quote(tag)+" is neither P nor F", nil)
	}

	nts, err := logline.NormalizeTS(ts, scratch)
	if err != nil {
		return l, perr(logline.ReasonBadTimestamp, "", err)
	}
	l.TS = nts
	l.Stream = stream
	l.Partial = tag[0] == 'P'
	l.Msg = rest
	return l, nil
}

func perr(reason, detail string, err error) error {
	return &logline.ParseError{Format: logline.FormatCRI, Reason: reason, Detail: detail, Err: err}
}
