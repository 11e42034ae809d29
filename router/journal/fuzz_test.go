package journal

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// object builds an object of type typ with flags and payload (header and size filled in).
func object(typ, flags byte, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload))
	b[0], b[1] = typ, flags
	b = append(b, payload...)
	binary.LittleEndian.PutUint64(b[8:], uint64(len(b)))
	return b
}

func dataObject(compact bool, flags byte, payload []byte) []byte {
	fixed := 48
	if compact {
		fixed = 56
	}
	return object(objData, flags, append(make([]byte, fixed), payload...))
}

func entryObject(compact bool, seq uint64, items ...uint64) []byte {
	p := make([]byte, 48)
	binary.LittleEndian.PutUint64(p[0:], seq)
	binary.LittleEndian.PutUint64(p[8:], 1_700_000_000_000_000)
	for _, it := range items {
		if compact {
			p = binary.LittleEndian.AppendUint32(p, uint32(it))
		} else {
			p = binary.LittleEndian.AppendUint64(p, it)
			p = binary.LittleEndian.AppendUint64(p, 0)
		}
	}
	return object(objEntry, 0, p)
}

func TestDecodeDataPayload(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	msg := bytes.Repeat([]byte("MESSAGE=long "), 100)
	for _, tc := range []struct {
		name    string
		compact bool
		obj     []byte
		want    []byte
		wantErr error
	}{
		{"plain", false, dataObject(false, 0, []byte("MESSAGE=hi")), []byte("MESSAGE=hi"), nil},
		{"plain compact", true, dataObject(true, 0, []byte("MESSAGE=hi")), []byte("MESSAGE=hi"), nil},
		{"zstd", true, dataObject(true, objCompressedZSTD, enc.EncodeAll(msg, nil)), msg, nil},
		{"zstd corrupt", true, dataObject(true, objCompressedZSTD, []byte("nope")), nil, ErrCorrupt},
		{"xz refused", true, dataObject(true, objCompressedXZ, []byte("x")), nil, ErrUnsupported},
		{"two flags", true, dataObject(true, 3, []byte("x")), nil, ErrCorrupt},
		{"wrong type", false, object(objEntry, 0, make([]byte, 60)), nil, ErrCorrupt},
		{"short", false, []byte{1, 0, 0}, nil, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeDataPayload(tc.obj, tc.compact, nil)
			if tc.wantErr != nil {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr.Error())) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func FuzzParseEntryObject(f *testing.F) {
	f.Add(entryObject(true, 7, 8, 16, 24), true)
	f.Add(entryObject(false, 7, 8, 16), false)
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}, true)
	f.Fuzz(func(t *testing.T, b []byte, compact bool) {
		e, items, err := ParseEntryObject(b, compact, nil)
		if err != nil {
			return
		}
		size := binary.LittleEndian.Uint64(b[8:])
		step := uint64(16)
		if compact {
			step = 4
		}
		if uint64(len(items)) != (size-64)/step {
			t.Fatalf("%d items from an object of %d bytes", len(items), size)
		}
		if e.Seqnum != binary.LittleEndian.Uint64(b[16:]) {
			t.Fatal("seqnum")
		}
	})
}

func FuzzDecodeDataPayload(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	f.Add(dataObject(true, 0, []byte("MESSAGE=hi")), true)
	f.Add(dataObject(false, 0, []byte("PRIORITY=6")), false)
	f.Add(dataObject(true, objCompressedZSTD, enc.EncodeAll([]byte("MESSAGE=zz"), nil)), true)
	f.Add(dataObject(true, objCompressedLZ4, []byte{10, 0, 0, 0, 0, 0, 0, 0, 0xa0, 'M', 'E', 'S', 'S', 'A', 'G', 'E', '=', 'h', 'i'}), true)
	f.Fuzz(func(t *testing.T, b []byte, compact bool) {
		p, err := DecodeDataPayload(b, compact, nil)
		if err == nil && b[1] == 0 {
			start := 64
			if compact {
				start = 72
			}
			if !bytes.Equal(p, b[start:binary.LittleEndian.Uint64(b[8:])]) {
				t.Fatal("plain payload changed")
			}
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	h := make([]byte, 272)
	copy(h, "LPKSHHRH")
	binary.LittleEndian.PutUint64(h[88:], 272)
	f.Add(h)
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := ParseHeader(b)
		if err == nil && (hd.HeaderSize < minHeaderSize || hd.Incompat&^incompatKnown != 0) {
			t.Fatalf("accepted %+v", hd)
		}
	})
}
