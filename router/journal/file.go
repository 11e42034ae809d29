// Package journal reads the systemd journal's files directly, without libsystemd or journalctl
// (the collector's image is a static binary on an empty filesystem, docs/image.md): it walks a
// journal file's objects in the order journald appended them and decodes its entries. Only
// entries the writer has committed (counted in the header's n_entries) are returned, so a file
// journald is still writing is read safely. See docs/collector.md#the-systemd-journal for why this
// reader rather than journalctl or cgo, and the format's reference:
// https://systemd.io/JOURNAL_FILE_FORMAT/.
package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Errors callers branch on.
var (
	// ErrNotJournal is a file without the journal's signature.
	ErrNotJournal = errors.New("not a journal file")
	// ErrUnsupported is a file using a feature this reader does not know (an incompatible flag
	// added by a later systemd): it is refused whole rather than misread.
	ErrUnsupported = errors.New("unsupported journal file")
	// ErrCorrupt is an object that does not decode.
	ErrCorrupt = errors.New("corrupt journal object")
)

// Header flags and object types of the format.
const (
	incompatXZ        = 1 << 0
	incompatLZ4       = 1 << 1
	incompatKeyedHash = 1 << 2
	incompatZSTD      = 1 << 3
	incompatCompact   = 1 << 4
	incompatKnown     = incompatXZ | incompatLZ4 | incompatKeyedHash | incompatZSTD | incompatCompact

	objData  = 1
	objEntry = 3

	objCompressedXZ   = 1 << 0
	objCompressedLZ4  = 1 << 1
	objCompressedZSTD = 1 << 2

	objectHeaderSize = 16
	minHeaderSize    = 208 // up to tail_entry_monotonic: every systemd since 187
)

// State is the header's state byte.
type State uint8

// States of a journal file.
const (
	StateOffline  State = 0
	StateOnline   State = 1
	StateArchived State = 2
)

// Header is what the reader uses of a file's header.
type Header struct {
	FileID      [16]byte
	SeqnumID    [16]byte
	State       State
	Incompat    uint32
	HeaderSize  uint64
	TailObject  uint64 // offset of the last object
	NEntries    uint64 // committed entries
	HeadSeqnum  uint64
	TailSeqnum  uint64
	HeadRealtim uint64
}

// Compact reports whether items and data objects use the compact (systemd 252+) layout.
func (h *Header) Compact() bool { return h.Incompat&incompatCompact != 0 }

// ParseHeader decodes a journal file header.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < minHeaderSize || string(b[:8]) != "LPKSHHRH" {
		return h, ErrNotJournal
	}
	le := binary.LittleEndian
	h.Incompat = le.Uint32(b[12:])
	if u := h.Incompat &^ incompatKnown; u != 0 {
		return h, fmt.Errorf("%w: incompatible flags %#x (a newer systemd's format)", ErrUnsupported, u)
	}
	h.State = State(b[16])
	copy(h.FileID[:], b[24:40])
	copy(h.SeqnumID[:], b[72:88])
	h.HeaderSize = le.Uint64(b[88:])
	h.TailObject = le.Uint64(b[136:])
	h.NEntries = le.Uint64(b[152:])
	h.TailSeqnum = le.Uint64(b[160:])
	h.HeadSeqnum = le.Uint64(b[168:])
	h.HeadRealtim = le.Uint64(b[184:])
	if h.HeaderSize < minHeaderSize {
		return h, fmt.Errorf("%w: header size %d", ErrCorrupt, h.HeaderSize)
	}
	return h, nil
}

// ID128 renders a 128-bit ID the way journalctl does (32 lowercase hex digits).
func ID128(id [16]byte) string { return hex.EncodeToString(id[:]) }

// Entry is one decoded journal entry. Fields alias the reader's buffers until the next call.
type Entry struct {
	Seqnum    uint64
	Realtime  uint64 // microseconds since the epoch
	Monotonic uint64
	BootID    [16]byte
	// Fields are the entry's KEY=value payloads, in the entry's item order.
	Fields [][]byte
	// Offset is the entry object's offset in its file.
	Offset uint64
}

// Field returns the value of key (nil, false when absent).
func (e *Entry) Field(key string) ([]byte, bool) {
	for _, f := range e.Fields {
		if len(f) > len(key) && f[len(key)] == '=' && string(f[:len(key)]) == key {
			return f[len(key)+1:], true
		}
	}
	return nil, false
}

// ParseEntryObject decodes an entry object's fixed part and its item offsets (an entry object
// as stored: object header included). compact selects the item layout.
func ParseEntryObject(b []byte, compact bool, items []uint64) (Entry, []uint64, error) {
	le := binary.LittleEndian
	var e Entry
	if len(b) < 64 || b[0] != objEntry {
		return e, items, fmt.Errorf("%w: entry object too short or of the wrong type", ErrCorrupt)
	}
	size := le.Uint64(b[8:])
	if size < 64 || size > uint64(len(b)) {
		return e, items, fmt.Errorf("%w: entry object size %d", ErrCorrupt, size)
	}
	e.Seqnum = le.Uint64(b[16:])
	e.Realtime = le.Uint64(b[24:])
	e.Monotonic = le.Uint64(b[32:])
	copy(e.BootID[:], b[40:56])
	p := b[64:size]
	step := 16
	if compact {
		step = 4
	}
	items = items[:0]
	for ; len(p) >= step; p = p[step:] {
		var off uint64
		if compact {
			off = uint64(le.Uint32(p))
		} else {
			off = le.Uint64(p)
		}
		if off == 0 {
			return e, items, fmt.Errorf("%w: entry item at offset 0", ErrCorrupt)
		}
		items = append(items, off)
	}
	return e, items, nil
}

// DecodeDataPayload returns a data object's KEY=value payload (an object as stored, header
// included), decompressing it into buf when it is compressed.
func DecodeDataPayload(b []byte, compact bool, buf []byte) ([]byte, error) {
	le := binary.LittleEndian
	start := 64
	if compact {
		start = 72
	}
	if len(b) < start || b[0] != objData {
		return nil, fmt.Errorf("%w: data object too short or of the wrong type", ErrCorrupt)
	}
	size := le.Uint64(b[8:])
	if size < uint64(start) || size > uint64(len(b)) {
		return nil, fmt.Errorf("%w: data object size %d", ErrCorrupt, size)
	}
	p := b[start:size]
	switch flags := b[1]; {
	case flags == 0:
		return p, nil
	case flags == objCompressedZSTD:
		out, err := zstdDecoder().DecodeAll(p, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return out, nil
	case flags == objCompressedLZ4:
		// systemd's LZ4 payload: the uncompressed size (le64), then one LZ4 block.
		if len(p) < 8 {
			return nil, fmt.Errorf("%w: lz4 payload too short", ErrCorrupt)
		}
		n := le.Uint64(p)
		if n > maxPayload {
			return nil, fmt.Errorf("%w: lz4 payload of %d bytes", ErrCorrupt, n)
		}
		if n == 0 {
			return []byte{}, nil // lz4's decoder faults on an empty destination
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		m, err := lz4.UncompressBlock(p[8:], buf[:n])
		if err != nil || uint64(m) != n {
			return nil, fmt.Errorf("%w: lz4: %v", ErrCorrupt, err)
		}
		return buf[:n], nil
	case flags == objCompressedXZ:
		return nil, fmt.Errorf("%w: xz-compressed data (journald's default before systemd 246 with xz only)", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: data object flags %#x", ErrCorrupt, flags)
	}
}

// The field cache's bounds: 4096 values of at most 256 bytes (1 MiB at most per open file).
const (
	maxCachedField  = 256
	maxCachedFields = 4096
)

// maxPayload bounds one field's decompressed size (journald refuses entries above 768 MiB;
// fields of logs are far smaller).
const maxPayload = 64 << 20

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
)

// zstdDecoder is one shared decoder: DecodeAll is safe for concurrent use.
func zstdDecoder() *zstd.Decoder {
	zstdOnce.Do(func() {
		zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxPayload))
	})
	return zstdDec
}

// File reads one journal file's entries in append order.
type File struct {
	f    *os.File
	Path string
	Hdr  Header

	next  uint64 // offset of the next object to look at
	seen  uint64 // entry objects passed so far
	buf   []byte
	items []uint64
	data  [][]byte // the entry's payloads, copied; reused
	zbuf  []byte   // decompression scratch

	// win is a window of the file read at once: entries and their new data objects lie close
	// together, so one pread serves many objects.
	win    []byte
	winOff int64
	// fields caches small data payloads by offset: the same data object (PRIORITY=6, _PID=...)
	// is shared by every entry that has that field value, and an object never changes once
	// written.
	fields map[uint64][]byte
	hbuf   [minHeaderSize]byte
}

// Open opens path and reads its header.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	f := &File{f: fd, Path: path}
	if err := f.Refresh(); err != nil {
		fd.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	f.next = f.Hdr.HeaderSize
	return f, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

const winSize = 256 << 10

// readAt fills b from off, through the window. Bytes beyond the committed tail may still be
// written by journald: the window is dropped at each Refresh.
func (f *File) readAt(b []byte, off int64) error {
	if len(b) > winSize/4 {
		_, err := f.f.ReadAt(b, off)
		return err
	}
	if off < f.winOff || off+int64(len(b)) > f.winOff+int64(len(f.win)) {
		if cap(f.win) < winSize {
			f.win = make([]byte, winSize)
		}
		n, err := f.f.ReadAt(f.win[:winSize], off)
		f.win, f.winOff = f.win[:n], off
		if n < len(b) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	copy(b, f.win[off-f.winOff:])
	return nil
}

// Refresh reads the header again (journald appends and commits entries meanwhile).
func (f *File) Refresh() error {
	if _, err := f.f.ReadAt(f.hbuf[:], 0); err != nil { // never through the window
		return err
	}
	h, err := ParseHeader(f.hbuf[:])
	if err != nil {
		return err
	}
	if f.Hdr.HeaderSize != 0 && h.FileID != f.Hdr.FileID {
		return fmt.Errorf("%w: file ID changed", ErrCorrupt)
	}
	f.Hdr = h
	f.win = f.win[:0] // the tail may have been written since
	return nil
}

// readObject reads the object at off into f.buf.
func (f *File) readObject(off uint64) ([]byte, error) {
	if off%8 != 0 {
		return nil, fmt.Errorf("%w: object offset %d not aligned", ErrCorrupt, off)
	}
	var h [objectHeaderSize]byte
	if err := f.readAt(h[:], int64(off)); err != nil {
		return nil, fmt.Errorf("%w: object at %d: %v", ErrCorrupt, off, err)
	}
	size := binary.LittleEndian.Uint64(h[8:])
	if size < objectHeaderSize || size > maxPayload+1024 {
		return nil, fmt.Errorf("%w: object at %d: size %d", ErrCorrupt, off, size)
	}
	if uint64(cap(f.buf)) < size {
		f.buf = make([]byte, size)
	}
	b := f.buf[:size]
	if err := f.readAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("%w: object at %d: %v", ErrCorrupt, off, err)
	}
	return b, nil
}

// Next returns the next committed entry, or ok false when every committed entry has been
// returned (call Refresh and Next again later for a file still written). skipBelow skips, without
// decoding their fields, entries whose seqnum is below it (resuming from a checkpoint).
func (f *File) Next(skipBelow uint64) (e Entry, ok bool, err error) {
	for f.seen < f.Hdr.NEntries && f.next != 0 && f.next <= f.Hdr.TailObject {
		off := f.next
		var h [objectHeaderSize]byte
		if err := f.readAt(h[:], int64(off)); err != nil {
			return e, false, fmt.Errorf("journal %s: object at %d: %w", f.Path, off, err)
		}
		size := binary.LittleEndian.Uint64(h[8:])
		if size < objectHeaderSize {
			return e, false, fmt.Errorf("journal %s: %w: object at %d has size %d", f.Path, ErrCorrupt, off, size)
		}
		f.next = off + (size+7)&^7
		if h[0] != objEntry {
			continue
		}
		f.seen++
		if skipBelow > 0 {
			var sq [8]byte
			if err := f.readAt(sq[:], int64(off)+16); err != nil {
				return e, false, fmt.Errorf("journal %s: entry at %d: %w", f.Path, off, err)
			}
			if binary.LittleEndian.Uint64(sq[:]) < skipBelow {
				continue
			}
		}
		e, err = f.entryAt(off)
		return e, err == nil, err
	}
	return e, false, nil
}

// entryAt decodes the entry object at off with its fields.
func (f *File) entryAt(off uint64) (Entry, error) {
	b, err := f.readObject(off)
	if err != nil {
		return Entry{}, fmt.Errorf("journal %s: %w", f.Path, err)
	}
	e, items, err := ParseEntryObject(b, f.Hdr.Compact(), f.items)
	f.items = items
	if err != nil {
		return e, fmt.Errorf("journal %s: entry at %d: %w", f.Path, off, err)
	}
	e.Offset = off
	for len(f.data) < len(items) {
		f.data = append(f.data, nil)
	}
	e.Fields = e.Fields[:0]
	for i, it := range items {
		if p, ok := f.fields[it]; ok {
			f.data[i] = append(f.data[i][:0], p...)
			e.Fields = append(e.Fields, f.data[i])
			continue
		}
		d, err := f.readObject(it)
		if err != nil {
			return e, fmt.Errorf("journal %s: entry %d: %w", f.Path, e.Seqnum, err)
		}
		p, err := DecodeDataPayload(d, f.Hdr.Compact(), f.zbuf)
		if err != nil {
			return e, fmt.Errorf("journal %s: entry %d: %w", f.Path, e.Seqnum, err)
		}
		if d[1] != 0 && cap(p) > cap(f.zbuf) { // compressed: p is decompression output
			f.zbuf = p[:0]
		}
		// Keep the payload: f.buf and f.zbuf are reused by the next object.
		f.data[i] = append(f.data[i][:0], p...)
		if len(p) <= maxCachedField && !bytes.HasPrefix(p, []byte("MESSAGE=")) {
			if f.fields == nil || len(f.fields) >= maxCachedFields {
				f.fields = make(map[uint64][]byte, 256)
			}
			f.fields[it] = bytes.Clone(p)
		}
		e.Fields = append(e.Fields, f.data[i])
	}
	return e, nil
}
