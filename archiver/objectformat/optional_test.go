package objectformat

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/logrouter/logrouter/archiver/row"
)

// TestOptionalColumnsNullWhereUnset: each optional column of the archive's schema is null in
// every row that does not set it, whatever the rows around it set. parquet-go marks the rest of
// a 64-row word present when a run of present values starts at row y of it and is y long (rows
// [y, 2y) below, null around): the hostile corpus's `CORPUS finding`, an empty message's
// message_bytes read back empty instead of null. Every optional field of row.Row is tried
// (found by its tag, so a new one is covered).
func TestOptionalColumnsNullWhereUnset(t *testing.T) {
	rt := reflect.TypeOf(row.Row{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("parquet")
		if !strings.Contains(tag, ",optional") {
			continue
		}
		name := strings.SplitN(tag, ",", 2)[0]
		t.Run(name, func(t *testing.T) {
			for y := 1; y <= 4; y++ {
				// Set in rows [y, 2y) of 2y+1, null around: the pattern parquet-go got wrong.
				n, set := 2*y+1, map[int64]bool{}
				for k := y; k < 2*y; k++ {
					set[int64(k)] = true
				}
				var buf bytes.Buffer
				enc := newParquetEncoder(&buf, Options{})
				for k := range n {
					enc.batch = append(enc.batch, row.Row{KafkaOffset: int64(k)})
					if set[int64(k)] {
						setSample(t, reflect.ValueOf(&enc.batch[k]).Elem().Field(i))
					}
				}
				if err := enc.Close(); err != nil {
					t.Fatal(err)
				}
				for off, present := range readPresence(t, buf.Bytes(), name) {
					if present != set[off] {
						t.Fatalf("set in rows %d-%d of %d: row %d present %v, want %v", y, 2*y-1, n, off, present, set[off])
					}
				}
			}
		})
	}
}

func setSample(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Slice:
		v.SetBytes([]byte("x"))
	case reflect.Int32:
		v.SetInt(2)
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		switch e.Elem().Kind() {
		case reflect.Int32:
			e.Elem().SetInt(1)
		case reflect.Bool:
			e.Elem().SetBool(true)
		}
		v.Set(e)
	default:
		t.Fatalf("no sample for an optional %v", v.Type())
	}
}

// readPresence reads, with parquet-go's row reader, whether column name is present (not null) in
// each row, by Kafka offset.
func readPresence(t *testing.T, data []byte, name string) map[int64]bool {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	col, ok := f.Schema().Lookup(name)
	off, ok2 := f.Schema().Lookup("kafka_offset")
	if !ok || !ok2 {
		t.Fatalf("no column %s", name)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	out := map[int64]bool{}
	buf := make([]parquet.Row, 16)
	for {
		k, err := r.ReadRows(buf)
		for _, rw := range buf[:k] {
			var o int64
			present := false
			for _, v := range rw {
				switch v.Column() {
				case off.ColumnIndex:
					o = v.Int64()
				case col.ColumnIndex:
					present = !v.IsNull()
				}
			}
			out[o] = present
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
