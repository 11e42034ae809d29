package objectformat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/logrouter/logrouter/archiver/row"
	"github.com/logrouter/logrouter/internal/record"
)

// ndjsonEncoder writes each record's value as one line, unchanged except for a "kafka" member
// (topic, partition, offset, timestamp) added before its closing brace.
type ndjsonEncoder struct {
	z     *zstd.Encoder
	dec   *row.Decoder
	r     row.Row
	line  []byte
	opts  Options
	stats Stats
}

// zstdWriters reuses stream encoders across objects (each holds megabytes of tables).
var zstdWriters sync.Pool

func newNDJSONEncoder(w io.Writer, o Options) (*ndjsonEncoder, error) {
	z, _ := zstdWriters.Get().(*zstd.Encoder)
	if z == nil {
		var err error
		if z, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("zstd writer: %w", err)
		}
	} else {
		z.Reset(w)
	}
	return &ndjsonEncoder{z: z, dec: row.NewDecoder(), opts: o}, nil
}

func (n *ndjsonEncoder) Add(e *Entry) error {
	b := n.line[:0]
	if err := n.dec.Decode(&n.r, e.Value); err != nil {
		if n.opts.OnInvalid != nil {
			n.opts.OnInvalid(e, err)
		}
		invalidRow(&n.r, e, err)
		b = appendInvalid(b, &n.r)
	} else {
		v := bytes.TrimRight(e.Value, " \t\r\n")
		b = append(b, v[:len(v)-1]...) // Decode checked it is one object: drop its '}'
		if bytes.Equal(bytes.TrimSpace(v[1:len(v)-1]), nil) {
			b = append(b, `"kafka":`...)
		} else {
			b = append(b, `,"kafka":`...)
		}
	}
	b = appendKafka(b, e)
	b = append(b, '}', '\n')
	n.line = b
	pod := n.r.Pod
	if pod == "" {
		pod = e.Pod
	}
	n.stats.add(n.r.TimeOf(), pod, len(e.Value))
	if _, err := n.z.Write(b); err != nil {
		return fmt.Errorf("zstd write: %w", err)
	}
	return nil
}

func appendKafka(b []byte, e *Entry) []byte {
	b = append(b, `{"topic":`...)
	b, _ = record.AppendString(b, e.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, `,"timestamp":"`...)
	b = e.KafkaTime.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendInvalid renders the stand-in record for an invalid value (see invalidRow), leaving the
// object open for the kafka member.
func appendInvalid(b []byte, r *row.Row) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, record.SchemaVersion, 10)
	b = append(b, `,"ts":"`...)
	b = r.TimeOf().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","message":`...)
	b, _ = record.AppendString(b, r.Message)
	if r.MessageBytes != nil {
		b = append(b, `,"message_base64":"`...)
		b = appendBase64(b, r.MessageBytes)
		b = append(b, '"')
	}
	for _, kv := range [...][2]string{{"namespace", r.Namespace}, {"pod", r.Pod}, {"container", r.Container}, {"parse_error", r.ParseError}} {
		b = append(b, ',', '"')
		b = append(b, kv[0]...)
		b = append(b, '"', ':')
		b, _ = record.AppendString(b, kv[1])
	}
	return append(b, `,"offset":0,"kafka":`...)
}

func (n *ndjsonEncoder) Close() error {
	err := n.z.Close()
	zstdWriters.Put(n.z)
	n.z = nil
	if err != nil {
		return fmt.Errorf("zstd close: %w", err)
	}
	return nil
}

func (n *ndjsonEncoder) Stats() *Stats { return &n.stats }

// NDJSONRows reads an NDJSON+zstd object, calling fn with each line's row.
func NDJSONRows(r io.Reader, fn func(*row.Row) error) error {
	z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("zstd reader: %w", err)
	}
	defer z.Close()
	br := bufio.NewReaderSize(z, 1<<16)
	dec := row.NewDecoder()
	var rw row.Row
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if derr := dec.Decode(&rw, line); derr != nil {
				return fmt.Errorf("line %d: %w", lineNo, derr)
			}
			if ferr := fn(&rw); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ndjson: %w", err)
		}
	}
}
