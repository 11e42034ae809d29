// Package spool keeps the records of an open archive range on local disk, so that memory does
// not grow with the number of partitions or the rotation size: each open range costs one
// small write buffer, whatever its size. A spool lives only as long as its process; after a
// crash the records are read again from Kafka.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Frame is one spooled record.
type Frame struct {
	Offset    int64
	KafkaTime time.Time
	Pod       []byte
	Container []byte
	Value     []byte
}

// Writer appends frames to a spool file.
type Writer struct {
	f       *os.File
	w       retryWriter
	hdr     []byte
	frames  int64
	written int64
	// broken is the first error of Append: the file may end inside a frame, so the spool is
	// unusable and every later call fails with it.
	broken error
}

// retryWriter buffers writes to f like bufio.Writer, but a failed write does not stick: what f
// did not take stays buffered and the next flush tries it again. bufio.Writer keeps its first
// error for ever, so a spool disk that was full for a moment failed every later upload retry
// of the range (TestReopenAfterDiskFull).
type retryWriter struct {
	f    *os.File
	buf  []byte
	size int
}

func (r *retryWriter) Write(b []byte) (int, error) {
	if len(r.buf)+len(b) > r.size {
		if err := r.Flush(); err != nil {
			return 0, err
		}
	}
	if len(b) >= r.size {
		// Large writes bypass the buffer (it stays small); a failure here breaks the spool.
		return r.f.Write(b)
	}
	r.buf = append(r.buf, b...)
	return len(b), nil
}

func (r *retryWriter) Flush() error {
	for len(r.buf) > 0 {
		n, err := r.f.Write(r.buf)
		r.buf = r.buf[:copy(r.buf, r.buf[n:])]
		if err != nil {
			return err
		}
	}
	return nil
}

// Create creates the spool file at path; bufSize is its write buffer.
func Create(path string, bufSize int) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create spool: %w", err)
	}
	return &Writer{f: f, w: retryWriter{f: f, buf: make([]byte, 0, bufSize), size: bufSize}}, nil
}

// Append writes one frame.
func (w *Writer) Append(fr *Frame) error {
	if w.broken != nil {
		return w.broken
	}
	h := w.hdr[:0]
	h = binary.AppendVarint(h, fr.Offset)
	h = binary.AppendVarint(h, fr.KafkaTime.UnixMilli())
	h = binary.AppendUvarint(h, uint64(len(fr.Pod)))
	h = binary.AppendUvarint(h, uint64(len(fr.Container)))
	h = binary.AppendUvarint(h, uint64(len(fr.Value)))
	w.hdr = h
	for _, b := range [][]byte{h, fr.Pod, fr.Container, fr.Value} {
		if _, err := w.w.Write(b); err != nil {
			w.broken = fmt.Errorf("write spool %s: %w", w.f.Name(), err)
			return w.broken
		}
	}
	w.frames++
	w.written += int64(len(h) + len(fr.Pod) + len(fr.Container) + len(fr.Value))
	return nil
}

// Frames is how many frames were appended.
func (w *Writer) Frames() int64 { return w.frames }

// Path is the spool file's path.
func (w *Writer) Path() string { return w.f.Name() }

// Reopen flushes the spool and returns a new reader positioned at its first frame; it may be
// called again (to retry an upload), and appending may continue afterwards.
func (w *Writer) Reopen() (*Reader, error) {
	if w.broken != nil {
		return nil, w.broken
	}
	if err := w.w.Flush(); err != nil {
		return nil, fmt.Errorf("flush spool %s: %w", w.f.Name(), err)
	}
	f, err := os.Open(w.f.Name())
	if err != nil {
		return nil, fmt.Errorf("reopen spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reopen spool: %w", err)
	}
	return newReader(f, st.Size()), nil
}

func newReader(f *os.File, size int64) *Reader {
	return &Reader{f: f, r: &countingReader{r: bufio.NewReaderSize(f, 1<<16)}, size: size}
}

// countingReader counts what the frames consumed, so a corrupt length is caught before it is
// allocated.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Discard closes and removes the spool file.
func (w *Writer) Discard() error {
	w.f.Close()
	return os.Remove(w.f.Name())
}

// Reader reads frames back in order.
type Reader struct {
	f    *os.File
	r    *countingReader
	size int64
	buf  []byte
}

// ErrCorrupt means the spool does not hold what was written (a disk problem).
var ErrCorrupt = errors.New("corrupt spool")

// Next reads the next frame into fr (its slices are valid until the next call); it returns
// io.EOF after the last frame.
func (r *Reader) Next(fr *Frame) error {
	off, err := binary.ReadVarint(r.r)
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, r.f.Name(), err)
	}
	ms, err1 := binary.ReadVarint(r.r)
	lp, err2 := binary.ReadUvarint(r.r)
	lc, err3 := binary.ReadUvarint(r.r)
	lv, err4 := binary.ReadUvarint(r.r)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, r.f.Name(), err)
	}
	n := lp + lc + lv
	if lp > n || lc > n || lv > n || n > uint64(r.size-r.r.n) {
		return fmt.Errorf("%w: %s: frame of %d bytes with %d left", ErrCorrupt, r.f.Name(), n, r.size-r.r.n)
	}
	if uint64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, r.f.Name(), err)
	}
	fr.Offset, fr.KafkaTime = off, time.UnixMilli(ms).UTC()
	fr.Pod, fr.Container, fr.Value = b[:lp], b[lp:lp+lc], b[lp+lc:]
	return nil
}

// Close closes the reader.
func (r *Reader) Close() error { return r.f.Close() }
