// Package wire renders stream events in the two streaming formats, Server-Sent Events and
// NDJSON. Events are appended to a caller's buffer so a batch of records costs one write.
//
// Record values are embedded verbatim (they are JSON, schema v1), after a check that they are
// one valid JSON value: a value that is not could otherwise break the framing or forge fields
// of the envelope.
package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/logrouter/logrouter/api/live"
)

// Media types.
const (
	SSE    = "text/event-stream"
	NDJSON = "application/x-ndjson"
)

// Encoder appends events to a buffer.
type Encoder interface {
	ContentType() string
	// Record appends a record event; cur is the cursor after the record.
	Record(b, cur []byte, partition int32, offset int64, value []byte) []byte
	Skipped(b, cur []byte, s live.Skip) []byte
	Heartbeat(b, cur []byte, now time.Time) []byte
	// End appends the final event when the server ends a stream; problem is JSON or nil.
	End(b []byte, reason string, problem []byte) []byte
}

// CleanValue returns v as one line of valid JSON, or ok=false.
func CleanValue(v []byte, scratch *bytes.Buffer) (out []byte, ok bool) {
	if !Valid(v) {
		return nil, false
	}
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return v, true
	}
	// Raw newlines in valid JSON are whitespace between tokens: compacting removes them.
	scratch.Reset()
	if err := json.Compact(scratch, v); err != nil {
		return nil, false
	}
	return scratch.Bytes(), true
}

// SSEEncoder writes `text/event-stream`. Records are unnamed events (EventSource "message")
// whose id is the cursor; skipped and end are named events; heartbeats are an id-only block
// (it advances the browser's Last-Event-ID past filtered records without firing an event) and a
// comment.
type SSEEncoder struct{}

// ContentType implements Encoder.
func (SSEEncoder) ContentType() string { return SSE }

// Record implements Encoder.
func (SSEEncoder) Record(b, cur []byte, _ int32, _ int64, value []byte) []byte {
	b = append(b, "id: "...)
	b = append(b, cur...)
	b = append(b, "\ndata: "...)
	b = append(b, value...)
	return append(b, '\n', '\n')
}

// Skipped implements Encoder.
func (SSEEncoder) Skipped(b, cur []byte, s live.Skip) []byte {
	b = append(b, "event: skipped\nid: "...)
	b = append(b, cur...)
	b = append(b, "\ndata: "...)
	b = appendSkip(b, s)
	return append(b, '\n', '\n')
}

// Heartbeat implements Encoder.
func (SSEEncoder) Heartbeat(b, cur []byte, now time.Time) []byte {
	b = append(b, ": heartbeat "...)
	b = now.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, "\nid: "...)
	b = append(b, cur...)
	return append(b, '\n', '\n')
}

// End implements Encoder.
func (SSEEncoder) End(b []byte, reason string, problem []byte) []byte {
	b = append(b, "event: end\ndata: {\"reason\":"...)
	b = strconv.AppendQuote(b, reason)
	if problem != nil {
		b = append(b, `,"problem":`...)
		b = append(b, problem...)
	}
	return append(b, "}\n\n"...)
}

func appendSkip(b []byte, s live.Skip) []byte {
	b = append(b, `{"partition":`...)
	b = strconv.AppendInt(b, int64(s.Partition), 10)
	b = append(b, `,"from":`...)
	b = strconv.AppendInt(b, s.From, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendInt(b, s.To, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, s.Count, 10)
	return append(b, '}')
}

// NDJSONEncoder writes one JSON object per line with a "type" of record, skipped, heartbeat or
// end; every line but end carries the cursor to resume after it.
type NDJSONEncoder struct{}

// ContentType implements Encoder.
func (NDJSONEncoder) ContentType() string { return NDJSON }

// Record implements Encoder.
func (NDJSONEncoder) Record(b, cur []byte, partition int32, offset int64, value []byte) []byte {
	b = append(b, `{"type":"record","cursor":"`...)
	b = append(b, cur...)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, `,"record":`...)
	b = append(b, value...)
	return append(b, '}', '\n')
}

// Skipped implements Encoder.
func (NDJSONEncoder) Skipped(b, cur []byte, s live.Skip) []byte {
	b = append(b, `{"type":"skipped","cursor":"`...)
	b = append(b, cur...)
	b = append(b, `","skipped":`...)
	b = appendSkip(b, s)
	return append(b, '}', '\n')
}

// Heartbeat implements Encoder.
func (NDJSONEncoder) Heartbeat(b, cur []byte, now time.Time) []byte {
	b = append(b, `{"type":"heartbeat","cursor":"`...)
	b = append(b, cur...)
	b = append(b, `","time":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"', '}', '\n')
}

// End implements Encoder.
func (NDJSONEncoder) End(b []byte, reason string, problem []byte) []byte {
	b = append(b, `{"type":"end","reason":`...)
	b = strconv.AppendQuote(b, reason)
	if problem != nil {
		b = append(b, `,"problem":`...)
		b = append(b, problem...)
	}
	return append(b, '}', '\n')
}
