// Package logline holds what the collector's format parsers (router/cri, router/dockerjson) have
// in common: the parsed Line, format detection, the parse error type and timestamp normalization.
package logline

import (
	"errors"
	"strconv"

	"github.com/logrouter/logrouter/internal/record"
)

// Line is one physical line of a container log file, parsed.
type Line struct {
	TS      []byte // RFC 3339 timestamp with nanoseconds, in UTC, ending in 'Z' (see NormalizeTS)
	Stream  string // record.StreamStdout or record.StreamStderr
	Partial bool   // the runtime split the line: more parts follow (CRI tag P; docker log not ending in "\n")
	Msg     []byte // the message without the trailing newline; may alias the input or the scratch buffer
}

// Format is the framing of a container log file.
type Format int

// Formats.
const (
	FormatUnknown Format = iota
	FormatCRI            // containerd, CRI-O: "<ts> <stream> <tag> <msg>"
	FormatDocker         // docker json-file: {"log":...,"stream":...,"time":...}
	// FormatRaw is a node file's (router/nodefiles): each line is the message, without runtime
	// framing. Never detected: the node source's configuration says so.
	FormatRaw
)

// String returns "unknown", "cri", "docker" or "raw"; it is stable (used in metric labels and
// checkpoints).
func (f Format) String() string {
	switch f {
	case FormatRaw:
		return "raw"
	case FormatCRI:
		return "cri"
	case FormatDocker:
		return "docker"
	case FormatUnknown:
		return "unknown"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Detect guesses the format of a file from its first line: docker json-file lines start with '{',
// CRI lines with the digits of their timestamp. Anything else (or an empty line) is unknown.
func Detect(firstLine []byte) Format {
	if len(firstLine) == 0 {
		return FormatUnknown
	}
	switch c := firstLine[0]; {
	case c == '{':
		return FormatDocker
	case c >= '0' && c <= '9':
		return FormatCRI
	}
	return FormatUnknown
}

// Stream maps a stream name to its record constant, so a parsed line never holds a string
// that aliases (or copies) the input. ok is false for anything else.
func Stream(b []byte) (s string, ok bool) {
	// string(b) in a comparison does not allocate.
	switch string(b) {
	case record.StreamStdout:
		return record.StreamStdout, true
	case record.StreamStderr:
		return record.StreamStderr, true
	}
	return "", false
}

// ErrMalformed is what every parse error of a log line wraps, so callers branch with errors.Is.
var ErrMalformed = errors.New("malformed log line")

// Reasons for ParseError. They are stable and few, so callers can use them as metric labels.
const (
	ReasonMissingStream = "missing stream"
	ReasonUnknownStream = "unknown stream"
	ReasonBadTag        = "bad tag"
	ReasonBadTimestamp  = "bad timestamp"
	ReasonBadJSON       = "bad json"
	ReasonMissingLog    = "missing log"
	ReasonMissingTime   = "missing time"
	ReasonBadMember     = "bad member" // a known member with a value of the wrong type
)

// ParseError says why a line could not be parsed. It wraps ErrMalformed and, for timestamps,
// ErrTimestamp.
type ParseError struct {
	Format Format
	Reason string // one of the Reason constants
	Detail string // what exactly was wrong, with a bounded quote of the offending bytes
	Err    error  // the underlying cause, or nil
}

func (e *ParseError) Error() string {
	s := e.Format.String() + " log line: " + e.Reason
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrMalformed and the cause.
func (e *ParseError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}

// maxQuote bounds how much of the input an error message repeats: a malformed line can be
// 16 KiB of garbage and errors end up in logs and metrics.
const maxQuote = 64

// Quote returns b quoted for an error message, truncated to a few dozen bytes.
func Quote(b []byte) string {
	if len(b) > maxQuote {
		return strconv.Quote(string(b[:maxQuote])) + "..."
	}
	return strconv.Quote(string(b))
}
