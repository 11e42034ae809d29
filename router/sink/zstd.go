package sink

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zstdCompressor compresses produce batches with zstd exactly as franz-go's default compressor
// does (same encoder options, so the same bytes on the wire), but keeps its encoders in a free
// list instead of a sync.Pool. A sync.Pool lets garbage collections take what it holds, and
// the collector runs them often (its soft memory limit): BenchmarkZstdCompress measures a new
// encoder per collection with franz-go's, about 1.4 MB of tables and history allocated and
// cleared again (with the produce request buffers, the largest allocator of a busy collector).
// The encoders kept are bounded by how many batches were ever compressed at once (one per
// broker connection).
type zstdCompressor struct {
	opts []zstd.EOption

	mu   sync.Mutex
	free []*zstd.Encoder
	// made counts the encoders created (tests, benchmarks).
	made int
}

// zstdOptions are franz-go's for produce batches (kgo.DefaultCompressor): Kafka batches are
// small, so a 64 KiB window; one goroutine per encoder; an empty batch is a valid frame.
func zstdOptions() []zstd.EOption {
	return []zstd.EOption{
		zstd.WithWindowSize(64 << 10),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
	}
}

func newZstdCompressor() *zstdCompressor { return &zstdCompressor{opts: zstdOptions()} }

func (c *zstdCompressor) get() (*zstd.Encoder, error) {
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		e := c.free[n-1]
		c.free = c.free[:n-1]
		c.mu.Unlock()
		return e, nil
	}
	c.made++
	c.mu.Unlock()
	return zstd.NewWriter(nil, c.opts...)
}

func (c *zstdCompressor) put(e *zstd.Encoder) {
	c.mu.Lock()
	c.free = append(c.free, e)
	c.mu.Unlock()
}

// Compress implements kgo.Compressor. dst is franz-go's pooled buffer; the result is copied
// out of it before it is reused.
func (c *zstdCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	for _, f := range flags {
		if f == kgo.CompressDisableZstd {
			// A broker whose produce version predates zstd (Kafka < 2.1): uncompressed, as
			// franz-go's compressor does with zstd as its only codec.
			return src, kgo.CodecNone
		}
	}
	e, err := c.get()
	if err != nil {
		return nil, kgo.CodecError // franz-go then sends the batch uncompressed
	}
	defer c.put(e)
	if l := e.MaxEncodedSize(len(src)); l > dst.Cap() {
		dst.Grow(l)
	}
	return e.EncodeAll(src, dst.Bytes()[:0]), kgo.CodecZstd
}

// encoders reports how many encoders were created and how many are idle.
func (c *zstdCompressor) encoders() (made, idle int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made, len(c.free)
}
