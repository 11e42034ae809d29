package objectformat

import (
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/logrouter/logrouter/archiver/row"
)

func isValidUTF8(b []byte) bool { return utf8.Valid(b) }

// batchRows rows are handed to parquet-go at a time (its per-call overhead is significant).
const batchRows = 256

type parquetEncoder struct {
	w        *parquet.GenericWriter[row.Row]
	dec      *row.Decoder
	opts     Options
	batch    []row.Row
	buffered int64
	stats    Stats
}

// zstdCodec is shared by every Parquet writer: it pools zstd encoders, whose history buffers
// cost more to allocate than a small object costs to compress.
var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest}

func newParquetEncoder(w io.Writer, o Options) *parquetEncoder {
	wopts := []parquet.WriterOption{
		parquet.Compression(zstdCodec),
		parquet.CreatedBy("logrouter", "v1", ""),
		parquet.KeyValueMetadata("logrouter.schema", "archive.v1"),
	}
	if o.TempDir != "" {
		wopts = append(wopts, parquet.ColumnPageBuffers(parquet.NewFileBufferPool(o.TempDir, "pages.*")))
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 64 << 20
	}
	return &parquetEncoder{
		w: parquet.NewGenericWriter[row.Row](w, wopts...), dec: row.NewDecoder(), opts: o,
		batch: make([]row.Row, 0, batchRows),
	}
}

func (p *parquetEncoder) Add(e *Entry) error {
	p.batch = p.batch[:len(p.batch)+1]
	r := &p.batch[len(p.batch)-1]
	if err := p.dec.Decode(r, e.Value); err != nil {
		invalidRow(r, e, err)
		if p.opts.OnInvalid != nil {
			p.opts.OnInvalid(e, err)
		}
	}
	// The partition directory is the header's namespace: keep the column consistent with it.
	r.Namespace = e.Namespace
	if r.Pod == "" {
		r.Pod = e.Pod
	}
	if r.Container == "" {
		r.Container = e.Container
	}
	r.KafkaTopic, r.KafkaPartition, r.KafkaOffset, r.KafkaTime = e.Topic, e.Partition, e.Offset, e.KafkaTime.UnixMicro()
	p.stats.add(r.TimeOf(), r.Pod, len(e.Value))
	p.buffered += int64(len(e.Value))
	if len(p.batch) == cap(p.batch) || p.buffered >= p.opts.RowGroupBytes {
		return p.flushBatch()
	}
	return nil
}

func (p *parquetEncoder) flushBatch() error {
	// parquet-go (v0.32.0, writeRowsFuncOfOptional) marks the rest of a 64-row word present
	// when a run of present values starts inside the word and is as long as its offset there:
	// a null optional column (message_bytes, parse_error, fields, lines, ...) then reads back
	// as an empty value. It goes wrong only within one Write, across rows whose presence
	// differs: each Write gets rows with the same optional columns present.
	for i := 0; i < len(p.batch); {
		j, sig := i+1, presence(&p.batch[i])
		for j < len(p.batch) && presence(&p.batch[j]) == sig {
			j++
		}
		if _, err := p.w.Write(p.batch[i:j]); err != nil {
			return fmt.Errorf("parquet write: %w", err)
		}
		i = j
	}
	clear(p.batch)
	p.batch = p.batch[:0]
	if p.buffered >= p.opts.RowGroupBytes {
		p.buffered = 0
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("parquet flush row group: %w", err)
		}
	}
	return nil
}

// presence has a bit for each optional column of r that is not null (as parquet-go decides it:
// nil slices and pointers, zero strings and numbers are null).
func presence(r *row.Row) uint16 {
	var sig uint16
	for i, present := range [...]bool{
		r.MessageBytes != nil, r.SplitIndex != nil, r.SplitLast != nil, r.ParseError != "", r.Metadata != "",
		r.Kubernetes != "", r.Fields != "", r.FieldsError != "", r.Lines != 0, r.Cluster != "",
	} {
		if present {
			sig |= 1 << i
		}
	}
	return sig
}

func (p *parquetEncoder) Close() error {
	if err := p.flushBatch(); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("parquet close: %w", err)
	}
	return nil
}

func (p *parquetEncoder) Stats() *Stats { return &p.stats }

// ParquetRows reads the rows of a Parquet object in batches, calling fn with each batch (the
// slice is reused after fn returns).
func ParquetRows(r io.ReaderAt, size int64, fn func([]row.Row) error) error {
	return ParquetRowsInRange(r, size, math.MinInt64, math.MaxInt64, fn)
}

// ParquetRowsInRange is ParquetRows that skips row groups whose ts statistics lie outside
// [lo, hi) (microseconds): a short query inside a large object reads only its row groups.
// Rows of the groups it reads are all passed to fn; the caller still filters by time.
func ParquetRowsInRange(r io.ReaderAt, size int64, lo, hi int64, fn func([]row.Row) error) error {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return fmt.Errorf("open parquet: %w", err)
	}
	ts, hasTS := f.Schema().Lookup("ts")
	buf := make([]row.Row, batchRows)
	for _, rg := range f.RowGroups() {
		if hasTS {
			if cc, ok := rg.ColumnChunks()[ts.ColumnIndex].(*parquet.FileColumnChunk); ok {
				if mn, mx, ok := cc.Bounds(); ok && (mx.Int64() < lo || mn.Int64() >= hi) {
					continue
				}
			}
		}
		if err := readRowGroup(rg, buf, fn); err != nil {
			return err
		}
	}
	return nil
}

func readRowGroup(rg parquet.RowGroup, buf []row.Row, fn func([]row.Row) error) error {
	rd := parquet.NewGenericRowGroupReader[row.Row](rg)
	defer rd.Close()
	for {
		clear(buf)
		n, err := rd.Read(buf)
		if n > 0 {
			if ferr := fn(buf[:n]); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read parquet rows: %w", err)
		}
	}
}
