package objectformat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/row"
	"github.com/logrouter/logrouter/internal/record"
)

var base = time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC)

func entries(n int) []Entry {
	var out []Entry
	for i := 0; i < n; i++ {
		src := record.Source{Namespace: "team-a", Pod: fmt.Sprintf("web-%d", i%3), Container: "app", Node: "node-1",
			Kubernetes: &record.Kubernetes{Labels: map[string]string{"app": "web", "i": fmt.Sprint(i % 2)}}}
		l := record.Line{TS: []byte(base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)), Stream: "stdout",
			Message: []byte(fmt.Sprintf("line %d é", i)), Offset: int64(i * 10)}
		if i == 3 {
			l.Message = []byte("bad \xff utf8")
		}
		if i == 4 {
			l.Split, l.SplitIndex, l.SplitLast = true, 1, true
		}
		v, _ := record.AppendJSON(nil, src.Fragment(), &l)
		out = append(out, Entry{Topic: "logs.team-a", Partition: 2, Offset: int64(100 + i), KafkaTime: base.Add(time.Second),
			Namespace: "team-a", Pod: src.Pod, Container: "app", Value: v})
	}
	out = append(out, Entry{Topic: "logs.team-a", Partition: 2, Offset: int64(100 + n), KafkaTime: base, Namespace: "team-a", Pod: "hdr-pod", Container: "c", Value: []byte("garbage\xfe")})
	return out
}

func encode(t *testing.T, f layout.Format, es []Entry) ([]byte, *Stats, []error) {
	t.Helper()
	var buf bytes.Buffer
	var invalid []error
	enc, err := New(f, &buf, Options{RowGroupBytes: 1 << 10, OnInvalid: func(e *Entry, err error) { invalid = append(invalid, err) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range es {
		if err := enc.Add(&es[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), enc.Stats(), invalid
}

func readRows(t *testing.T, f layout.Format, data []byte) []row.Row {
	t.Helper()
	var rows []row.Row
	var err error
	if f == layout.Parquet {
		err = ParquetRows(bytes.NewReader(data), int64(len(data)), func(rs []row.Row) error {
			rows = append(rows, rs...)
			return nil
		})
	} else {
		err = NDJSONRows(bytes.NewReader(data), func(r *row.Row) error {
			rows = append(rows, *r)
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []layout.Format{layout.Parquet, layout.NDJSON} {
		t.Run(string(f), func(t *testing.T) {
			es := entries(50)
			data, st, invalid := encode(t, f, es)
			if len(invalid) != 1 || !errors.Is(invalid[0], row.ErrInvalid) {
				t.Fatalf("invalid = %v", invalid)
			}
			if st.Records != int64(len(es)) || st.PodsOverflow || !st.MinTime.Equal(base) || !st.MaxTime.Equal(base.Add(49*time.Millisecond)) {
				t.Fatalf("stats %+v", st)
			}
			meta := ParseMetadata(st.Metadata())
			if !meta.Known || !meta.Pods["web-0"] || !meta.Pods["hdr-pod"] || meta.Pods["web-9"] || meta.Records != int64(len(es)) {
				t.Fatalf("metadata %+v", meta)
			}
			rows := readRows(t, f, data)
			if len(rows) != len(es) {
				t.Fatalf("%d rows, want %d", len(rows), len(es))
			}
			for i, r := range rows[:len(es)-1] {
				want, _ := record.Decode(es[i].Value)
				got := r.Record()
				if got.Message != want.Message || !got.Time.Equal(want.Time) || got.Pod != want.Pod || got.Node != "node-1" ||
					string(got.MessageBase64) != string(want.MessageBase64) || r.KafkaOffset != es[i].Offset || r.KafkaPartition != 2 ||
					r.KafkaTopic != "logs.team-a" || r.KafkaTime != es[i].KafkaTime.UnixMicro() || r.Labels["app"] != "web" || got.Offset != want.Offset {
					t.Fatalf("row %d = %+v\nwant %+v", i, r, want)
				}
				if (got.Split == nil) != (want.Split == nil) {
					t.Fatalf("row %d split %v", i, got.Split)
				}
			}
			bad := rows[len(rows)-1]
			if !strings.HasPrefix(bad.ParseError, "archiver: invalid record value") || string(bad.MessageBytes) != "garbage\xfe" ||
				bad.Pod != "hdr-pod" || bad.Time != base.UnixMicro() || bad.KafkaOffset != 150 {
				t.Fatalf("invalid row = %+v", bad)
			}
		})
	}
}

// TestParquetReadByArrow reads the archive's Parquet with a second, independent
// implementation (Apache Arrow's) and checks the documented schema and the values.
func TestParquetReadByArrow(t *testing.T) {
	es := entries(20)
	data, _, _ := encode(t, layout.Parquet, es)
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.NumRowGroups() < 2 {
		t.Errorf("want several row groups with a 1 KiB row group budget, got %d", pf.NumRowGroups())
	}
	// The timestamp columns are TIMESTAMP(MICROS, isAdjustedToUTC) as Spark requires.
	for _, name := range []string{"ts", "kafka_timestamp"} {
		col := pf.MetaData().Schema.ColumnIndexByName(name)
		if col < 0 {
			t.Fatalf("no column %s", name)
		}
		lt, ok := pf.MetaData().Schema.Column(col).LogicalType().(schema.TimestampLogicalType)
		if !ok || lt.TimeUnit() != schema.TimeUnitMicros || !lt.IsAdjustedToUTC() {
			t.Fatalf("%s logical type %v", name, pf.MetaData().Schema.Column(col).LogicalType())
		}
	}
	if cc, err := pf.MetaData().RowGroup(0).ColumnChunk(0); err != nil {
		t.Fatal(err)
	} else if cc.Compression().String() != "ZSTD" {
		t.Errorf("compression %v, want ZSTD", cc.Compression())
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != int64(len(es)) {
		t.Fatalf("%d rows", tbl.NumRows())
	}
	want := []struct {
		name string
		typ  arrow.Type
	}{
		{"ts", arrow.TIMESTAMP}, {"namespace", arrow.STRING}, {"pod", arrow.STRING}, {"container", arrow.STRING},
		{"node", arrow.STRING}, {"stream", arrow.STRING}, {"message", arrow.STRING}, {"labels", arrow.MAP},
		{"kafka_topic", arrow.STRING}, {"kafka_partition", arrow.INT32}, {"kafka_offset", arrow.INT64}, {"kafka_timestamp", arrow.TIMESTAMP},
	}
	sc := tbl.Schema()
	cols := map[string]arrow.Array{}
	for _, w := range want {
		idx := sc.FieldIndices(w.name)
		if len(idx) != 1 {
			t.Fatalf("arrow schema has no %s: %v", w.name, sc)
		}
		f := sc.Field(idx[0])
		if f.Type.ID() != w.typ {
			t.Fatalf("%s is %v, want %v", w.name, f.Type, w.typ)
		}
		if w.typ == arrow.TIMESTAMP {
			tt := f.Type.(*arrow.TimestampType)
			if tt.Unit != arrow.Microsecond || tt.TimeZone != "UTC" {
				t.Fatalf("%s is %v", w.name, tt)
			}
		}
		chunks := tbl.Column(idx[0]).Data().Chunks()
		if len(chunks) == 0 {
			t.Fatalf("%s: no data", w.name)
		}
		arr, err := array.Concatenate(chunks, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(arr.Release)
		cols[w.name] = arr
	}
	ts := cols["ts"].(*array.Timestamp)
	msg := cols["message"].(*array.String)
	off := cols["kafka_offset"].(*array.Int64)
	pod := cols["pod"].(*array.String)
	labels := cols["labels"].(*array.Map)
	for i := 0; i < len(es)-1; i++ {
		rec, _ := record.Decode(es[i].Value)
		if int64(ts.Value(i)) != rec.Time.UnixMicro() || msg.Value(i) != rec.Message || off.Value(i) != es[i].Offset || pod.Value(i) != rec.Pod {
			t.Fatalf("arrow row %d: ts %d msg %q off %d pod %q; want %+v", i, ts.Value(i), msg.Value(i), off.Value(i), pod.Value(i), rec)
		}
		start, end := labels.ValueOffsets(i)
		keys := labels.Keys().(*array.String)
		items := labels.Items().(*array.String)
		got := map[string]string{}
		for j := start; j < end; j++ {
			got[keys.Value(int(j))] = items.Value(int(j))
		}
		if got["app"] != "web" || len(got) != 2 {
			t.Fatalf("arrow row %d labels %v", i, got)
		}
	}
}

// TestParquetRowGroupSkipping checks that row groups outside a time range are not read.
func TestParquetRowGroupSkipping(t *testing.T) {
	es := entries(200) // 1 ms apart, 1 KiB row groups: many groups
	data, _, _ := encode(t, layout.Parquet, es)
	lo, hi := base.Add(100*time.Millisecond).UnixMicro(), base.Add(110*time.Millisecond).UnixMicro()
	var read, inRange int
	err := ParquetRowsInRange(bytes.NewReader(data), int64(len(data)), lo, hi, func(rows []row.Row) error {
		for _, r := range rows {
			read++
			if r.Time >= lo && r.Time < hi {
				inRange++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inRange != 10 || read >= len(es)/2 {
		t.Fatalf("read %d rows for %d in range (of %d)", read, inRange, len(es))
	}
}

func TestStatsPodOverflow(t *testing.T) {
	var s Stats
	for i := 0; i < maxStatPods+1; i++ {
		s.add(base, fmt.Sprintf("pod-%d", i), 1)
	}
	if !s.PodsOverflow {
		t.Fatal("want overflow")
	}
	if m := ParseMetadata(s.Metadata()); !m.Known || m.Pods != nil {
		t.Fatalf("overflowed metadata %+v", m)
	}
	if m := ParseMetadata(map[string]string{MetaMinTime: "5", MetaMaxTime: "4", MetaRecords: "1"}); m.Known {
		t.Fatal("min > max accepted")
	}
	if m := ParseMetadata(nil); m.Known {
		t.Fatal("empty metadata known")
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add("1", "2", "3", "a,b")
	f.Add("x", "", "-1", "")
	f.Fuzz(func(t *testing.T, lo, hi, n, pods string) {
		m := ParseMetadata(map[string]string{MetaMinTime: lo, MetaMaxTime: hi, MetaRecords: n, MetaPods: pods})
		if m.Known && m.MinTime.After(m.MaxTime) {
			t.Fatal("min after max")
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	for _, f := range []layout.Format{layout.Parquet, layout.NDJSON} {
		b.Run(string(f), func(b *testing.B) {
			es := entries(4096)
			var size int64
			for _, e := range es {
				size += int64(len(e.Value))
			}
			b.SetBytes(size)
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				enc, _ := New(f, &buf, Options{})
				for i := range es {
					enc.Add(&es[i])
				}
				enc.Close()
			}
			b.ReportMetric(float64(buf.Len())/float64(size), "compression_ratio")
		})
	}
}
