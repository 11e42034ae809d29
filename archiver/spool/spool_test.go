package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSpoolRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	w, err := Create(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	in := []Frame{
		{Offset: 0, KafkaTime: time.UnixMilli(1700000000123).UTC(), Pod: []byte("p"), Container: []byte("c"), Value: []byte(`{"v":1}`)},
		{Offset: 1 << 40, KafkaTime: time.UnixMilli(-5).UTC(), Value: bytes.Repeat([]byte("x"), 1000)},
		{Offset: 7, KafkaTime: time.UnixMilli(0).UTC()},
	}
	for i := range in {
		if err := w.Append(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ { // a retry reads the spool again
		r, err := w.Reopen()
		if err != nil {
			t.Fatal(err)
		}
		var fr Frame
		for i := range in {
			if err := r.Next(&fr); err != nil {
				t.Fatal(err)
			}
			if fr.Offset != in[i].Offset || !fr.KafkaTime.Equal(in[i].KafkaTime) || string(fr.Pod) != string(in[i].Pod) ||
				string(fr.Container) != string(in[i].Container) || string(fr.Value) != string(in[i].Value) {
				t.Fatalf("frame %d = %+v", i, fr)
			}
		}
		if err := r.Next(&fr); err != io.EOF {
			t.Fatalf("after the last frame: %v", err)
		}
		r.Close()
	}
	if w.Frames() != 3 {
		t.Fatal(w.Frames())
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("spool file left behind")
	}
}

// FuzzSpoolReader feeds arbitrary bytes to the reader: it returns frames, io.EOF or
// ErrCorrupt, never panics, and never allocates a frame larger than its bound.
func FuzzSpoolReader(f *testing.F) {
	f.Add([]byte{0, 2, 1, 1, 1, 'p', 'c', 'v'})
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "s")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh := mustOpen(t, path)
		defer fh.Close()
		r := newReader(fh, int64(len(data)))
		var fr Frame
		for i := 0; i < 1000; i++ {
			err := r.Next(&fr)
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v is not ErrCorrupt", err)
				}
				return
			}
		}
	})
}
