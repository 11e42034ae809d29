// Package cursor encodes a reader's position in a namespace's topic as an opaque string: the
// next offset to read in every partition, and an unkeyed hash of the topic. SSE event ids,
// NDJSON "cursor" fields and page next_cursor values are all cursors; a client resumes by
// sending one back and gets no gap and no duplicate.
//
// The hash catches mistakes (a cursor pasted into another namespace's URL, or kept across a
// --topic-template change, would otherwise resume at meaningless offsets). It is not a security
// control: anyone can compute it, so a cursor can be forged for any topic. Access is decided on
// the request path alone (the namespace in the URL against the credentials), before a cursor
// is decoded, and the topic is derived from that namespace, never from the cursor.
//
// Layout (before unpadded base64url): version byte 1, 4-byte big-endian FNV-1a hash of the
// topic, uvarint partition count n, then n uvarints, each the partition's next offset plus one
// (0 = position unknown, resolved by the server like from=earliest).
package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

const version = 1

// MaxPartitions bounds a decoded cursor (and so the work a client can request).
const MaxPartitions = 4096

// Errors callers branch on.
var (
	ErrMalformed   = errors.New("malformed cursor")
	ErrOtherTopic  = errors.New("cursor belongs to another namespace or topic")
	ErrUnsupported = errors.New("unsupported cursor version")
)

// Cursor is a position: Offsets[p] is the next offset to read in partition p, or -1 if unknown.
type Cursor struct {
	TopicHash uint32
	Offsets   []int64
}

// TopicHash returns the hash that ties a cursor to topic (FNV-1a: a checksum, not a MAC).
func TopicHash(topic string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	return h.Sum32()
}

// New returns a cursor for topic with n partitions at unknown positions.
func New(topic string, n int) Cursor {
	c := Cursor{TopicHash: TopicHash(topic), Offsets: make([]int64, n)}
	for i := range c.Offsets {
		c.Offsets[i] = -1
	}
	return c
}

// Clone returns a deep copy.
func (c Cursor) Clone() Cursor {
	return Cursor{TopicHash: c.TopicHash, Offsets: append([]int64(nil), c.Offsets...)}
}

// AppendEncode appends the encoded cursor to dst using scratch space buf (which it returns for
// reuse), so the per-record cost on a stream is allocation-free.
func (c Cursor) AppendEncode(dst, buf []byte) (out, scratch []byte) {
	buf = append(buf[:0], version)
	buf = binary.BigEndian.AppendUint32(buf, c.TopicHash)
	buf = binary.AppendUvarint(buf, uint64(len(c.Offsets)))
	for _, o := range c.Offsets {
		buf = binary.AppendUvarint(buf, uint64(o+1))
	}
	return base64.RawURLEncoding.AppendEncode(dst, buf), buf
}

// String encodes the cursor.
func (c Cursor) String() string {
	b, _ := c.AppendEncode(nil, nil)
	return string(b)
}

// Decode parses s; it does not check the topic (see DecodeFor).
func Decode(s string) (Cursor, error) {
	if len(s) > base64.RawURLEncoding.EncodedLen(5+binary.MaxVarintLen64*(MaxPartitions+1)) {
		return Cursor{}, fmt.Errorf("%w: too long", ErrMalformed)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: not base64url", ErrMalformed)
	}
	if len(b) < 6 {
		return Cursor{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	if b[0] != version {
		return Cursor{}, fmt.Errorf("%w: %d", ErrUnsupported, b[0])
	}
	c := Cursor{TopicHash: binary.BigEndian.Uint32(b[1:5])}
	b = b[5:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return Cursor{}, fmt.Errorf("%w: bad partition count", ErrMalformed)
	}
	if n == 0 || n > MaxPartitions {
		return Cursor{}, fmt.Errorf("%w: %d partitions, want 1 to %d", ErrMalformed, n, MaxPartitions)
	}
	b = b[k:]
	if uint64(len(b)) < n { // each offset takes at least one byte
		return Cursor{}, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	c.Offsets = make([]int64, n)
	for i := range c.Offsets {
		v, k := binary.Uvarint(b)
		if k <= 0 || v > 1<<62 {
			return Cursor{}, fmt.Errorf("%w: bad offset for partition %d", ErrMalformed, i)
		}
		c.Offsets[i] = int64(v) - 1
		b = b[k:]
	}
	if len(b) != 0 {
		return Cursor{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	return c, nil
}

// DecodeFor parses s and checks that it belongs to topic.
func DecodeFor(s, topic string) (Cursor, error) {
	c, err := Decode(s)
	if err != nil {
		return Cursor{}, err
	}
	if c.TopicHash != TopicHash(topic) {
		return Cursor{}, ErrOtherTopic
	}
	return c, nil
}
