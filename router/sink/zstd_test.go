package sink

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchLike returns n bytes of collector-like record values (repetitive JSON with a counter).
func batchLike(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"v":2,"ts":"2026-12-01T10:00:00.%09dZ","stream":"stdout","message":"{\"level\":\"info\",\"seq\":%d,\"msg\":\"request served\"}","namespace":"bench-3","pod":"pod-%d","container":"app","offset":%d}`, i, i, i%100, i*160)
	}
	return b[:n]
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// The compressor must put on the wire exactly what franz-go's default zstd compressor does
// (same options), and what it writes must decode to the input.
func TestZstdCompressorMatchesFranzGo(t *testing.T) {
	def, err := kgo.DefaultCompressor(kgo.ZstdCompression())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	ours := newZstdCompressor()
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"empty", nil},
		{"one byte", []byte("x")},
		{"one record", batchLike(300)},
		{"64 KiB batch", batchLike(64 << 10)},
		{"1 MiB batch", batchLike(1 << 20)},
		{"3 MiB batch (larger than the window)", batchLike(3 << 20)},
		{"incompressible", randomBytes(200 << 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantCodec := def.Compress(new(bytes.Buffer), tc.src)
			// A used, smaller buffer, as franz-go's pool hands out.
			dst := bytes.NewBuffer(make([]byte, 0, 16))
			dst.WriteString("stale")
			dst.Reset()
			got, codec := ours.Compress(dst, tc.src)
			if codec != wantCodec || codec != kgo.CodecZstd {
				t.Fatalf("codec %v, franz-go's %v", codec, wantCodec)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("compressed %d bytes differ from franz-go's %d", len(got), len(want))
			}
			plain, err := dec.DecodeAll(got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain, tc.src) {
				t.Fatalf("round trip: %d bytes, want %d", len(plain), len(tc.src))
			}
		})
	}
}

func TestZstdCompressorDisabledZstd(t *testing.T) {
	src := batchLike(4096)
	got, codec := newZstdCompressor().Compress(new(bytes.Buffer), src, kgo.CompressDisableZstd)
	if codec != kgo.CodecNone || !bytes.Equal(got, src) {
		t.Fatalf("codec %v, %d bytes: want the batch uncompressed", codec, len(got))
	}
}

// Encoders outlive garbage collections (a sync.Pool may drop them at any collection) and are
// created only for batches compressed at the same time.
func TestZstdEncodersSurviveGC(t *testing.T) {
	c := newZstdCompressor()
	src := batchLike(256 << 10)
	for range 5 {
		c.Compress(new(bytes.Buffer), src)
		runtime.GC()
		runtime.GC()
	}
	if made, idle := c.encoders(); made != 1 || idle != 1 {
		t.Fatalf("sequential batches with collections between them: %d encoders made, %d idle; want 1 and 1", made, idle)
	}

	const workers = 4
	var start, done sync.WaitGroup
	start.Add(1)
	for range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			for range 20 {
				c.Compress(new(bytes.Buffer), src)
			}
		}()
	}
	start.Done()
	done.Wait()
	made, idle := c.encoders()
	if made < 1 || made > workers || idle != made {
		t.Fatalf("%d concurrent compressors: %d encoders made, %d idle; want 1-%d, all idle", workers, made, idle, workers)
	}
}

// With --compression zstd the sink's batches reach Kafka zstd-compressed through this
// compressor and read back unchanged.
func TestProduceZstdThroughCompressor(t *testing.T) {
	for _, tc := range []struct {
		compression string
		wantCodec   uint8 // kgo.RecordAttrs.CompressionType
		ours        bool
	}{
		{"zstd", 4, true},
		{"ZSTD", 4, true},
		{"lz4", 3, false},
		{"none", 0, false},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			c, s := newTestSink(t, func(cfg *Config) { cfg.Compression = tc.compression })
			if got := s.zstd != nil; got != tc.ours {
				t.Fatalf("own zstd compressor in use: %v, want %v", got, tc.ours)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Ensure(ctx, "logs.z", 0); err != nil {
				t.Fatal(err)
			}
			const n = 500
			vals := make([][]byte, n)
			var wg sync.WaitGroup
			for i := range vals {
				vals[i] = batchLike(200 + i)
				wg.Add(1)
				s.Produce(ctx, &kgo.Record{Topic: "logs.z", Key: []byte("k"), Value: vals[i]}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("logs.z"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := 0
			for got < n {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if !bytes.Equal(r.Value, vals[got]) {
						t.Fatalf("record %d: value differs", got)
					}
					if ct := r.Attrs.CompressionType(); ct != tc.wantCodec {
						t.Fatalf("record %d: compression type %d, want %d", got, ct, tc.wantCodec)
					}
					got++
				})
			}
			if tc.ours {
				if made, _ := s.zstd.encoders(); made < 1 {
					t.Fatalf("%d encoders made: the batches did not go through the compressor", made)
				}
			}
		})
	}
}

// BenchmarkZstdCompress compresses 1 MiB batches of record values with a garbage collection
// every two batches (a busy collector's rate under its soft memory limit): franz-go's pooled
// compressor against the sink's.
func BenchmarkZstdCompress(b *testing.B) {
	src := batchLike(1 << 20)
	def, err := kgo.DefaultCompressor(kgo.ZstdCompression())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		c    kgo.Compressor
	}{
		{"franz-go", def},
		{"sink", newZstdCompressor()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dst := new(bytes.Buffer)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				dst.Reset()
				bc.c.Compress(dst, src)
				if i%2 == 1 {
					b.StopTimer()
					runtime.GC()
					b.StartTimer()
				}
			}
		})
	}
}
