package row

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/logrouter/logrouter/internal/record"
)

// ErrInvalid wraps every reason a value is not a schema v1 record.
var ErrInvalid = errors.New("invalid record value")

// Decoder converts record values into rows. It interns the strings that repeat from record to
// record (namespace, pod, container, ...) so a row costs few allocations. Not safe for
// concurrent use.
type Decoder struct {
	intern map[string]string
	buf    []byte
}

// NewDecoder returns a decoder.
func NewDecoder() *Decoder { return &Decoder{intern: make(map[string]string)} }

func (d *Decoder) internBytes(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) > 1<<16 { // bounded: a flood of distinct pods must not grow the heap
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// Decode fills r (reset first) from a record value. It accepts what encoding/json accepts for
// record.Record (null members, any member order, unknown members, case-insensitive names) and
// reports precisely why anything else is rejected. Kafka coordinates are left to the caller.
func (d *Decoder) Decode(r *Row, value []byte) error {
	*r = Row{}
	s := scanner{b: value}
	if err := d.decode(r, &s); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (d *Decoder) decode(r *Row, s *scanner) error {
	s.ws()
	if !s.consume('{') {
		return s.errorf("want object")
	}
	var version int64
	var sawTime bool
	var key []byte
	first := true
	for {
		s.ws()
		if s.consume('}') {
			break
		}
		if !first {
			if !s.consume(',') {
				return s.errorf("want , or }")
			}
			s.ws()
		}
		first = false
		var err error
		if key, err = s.str(key[:0]); err != nil {
			return err
		}
		s.ws()
		if !s.consume(':') {
			return s.errorf("want :")
		}
		s.ws()
		name := fieldName(key)
		if s.peekNull() && name != "" {
			// encoding/json leaves the field alone on null.
			s.i += 4
			continue
		}
		switch name {
		case "v":
			if version, err = s.int(); err != nil {
				return fmt.Errorf("v: %w", err)
			}
		case "ts":
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return fmt.Errorf("ts: %w", err)
			}
			t, err := time.Parse(time.RFC3339Nano, string(d.buf))
			if err != nil {
				return fmt.Errorf("ts: %w", err)
			}
			r.Time, sawTime = t.UnixMicro(), true
		case "message":
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return fmt.Errorf("message: %w", err)
			}
			r.Message = string(d.buf)
		case "message_base64":
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return fmt.Errorf("message_base64: %w", err)
			}
			raw := make([]byte, base64.StdEncoding.DecodedLen(len(d.buf)))
			n, err := base64.StdEncoding.Decode(raw, d.buf)
			if err != nil {
				return fmt.Errorf("message_base64: %w", err)
			}
			r.MessageBytes = raw[:n]
		case "stream", "namespace", "pod", "pod_uid", "container", "container_id", "node", "cluster", "file", "parse_error", "metadata":
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			v := d.internBytes(d.buf)
			switch name {
			case "stream":
				r.Stream = v
			case "namespace":
				r.Namespace = v
			case "pod":
				r.Pod = v
			case "pod_uid":
				r.PodUID = v
			case "container":
				r.Container = v
			case "container_id":
				r.ContainerID = v
			case "node":
				r.Node = v
			case "cluster":
				r.Cluster = v
			case "file":
				r.File = v
			case "parse_error":
				r.ParseError = v
			case "metadata":
				r.Metadata = v
			}
		case "offset":
			if r.FileOffset, err = s.int(); err != nil {
				return fmt.Errorf("offset: %w", err)
			}
		case "split":
			if err := d.split(r, s); err != nil {
				return fmt.Errorf("split: %w", err)
			}
		case "k8s":
			start := s.i
			if err := d.k8s(r, s); err != nil {
				return fmt.Errorf("k8s: %w", err)
			}
			r.Kubernetes = string(s.b[start:s.i])
		case "fields_error":
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return fmt.Errorf("fields_error: %w", err)
			}
			r.FieldsError = string(d.buf) // not interned: messages vary per line
		case "lines":
			n, err := s.int()
			if err != nil {
				return fmt.Errorf("lines: %w", err)
			}
			if n < math.MinInt32 || n > math.MaxInt32 {
				return fmt.Errorf("lines: %d out of range", n)
			}
			r.Lines = int32(n)
		case "fields":
			if s.i >= len(s.b) || s.b[s.i] != '{' {
				return s.errorf("fields: want object")
			}
			start := s.i
			if err := s.skip(0); err != nil {
				return fmt.Errorf("fields: %w", err)
			}
			r.Fields = string(s.b[start:s.i])
		default:
			if string(key) == "kafka" {
				// The archive's NDJSON lines carry their Kafka position here; anything else
				// by that name is skipped like every unknown member.
				save := s.i
				if d.kafka(r, s) == nil {
					continue
				}
				s.i = save
			}
			if err := s.skip(0); err != nil {
				return err
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return s.errorf("data after the record")
	}
	if version < math.MinInt32 || version > math.MaxInt32 || !record.SupportedVersion(int(version)) {
		return fmt.Errorf("%w: %d", record.ErrUnsupportedVersion, version)
	}
	if !sawTime {
		return errors.New("ts: missing")
	}
	return nil
}

func (d *Decoder) split(r *Row, s *scanner) error {
	var idx int64
	var last bool
	err := s.object(func(key []byte) error {
		switch fold(key, "index", "last") {
		case "index":
			if s.peekNull() {
				s.i += 4
				return nil
			}
			var err error
			idx, err = s.int()
			if err == nil && (idx < -1<<31 || idx > 1<<31-1) {
				err = fmt.Errorf("index %d out of range", idx)
			}
			return err
		case "last":
			switch {
			case s.lit("true"):
				last = true
			case s.lit("false"), s.lit("null"):
				last = false
			default:
				return s.errorf("last: want bool")
			}
			return nil
		}
		return s.skip(0)
	})
	if err != nil {
		return err
	}
	i := int32(idx)
	r.SplitIndex, r.SplitLast = &i, &last
	return nil
}

func (d *Decoder) k8s(r *Row, s *scanner) error {
	return s.object(func(key []byte) error {
		if fold(key, "labels") == "" {
			return s.skip(0)
		}
		if s.peekNull() {
			s.i += 4
			return nil
		}
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
		var k []byte
		return s.object(func(key []byte) error {
			k = append(k[:0], key...)
			if s.peekNull() {
				s.i += 4
				r.Labels[string(k)] = ""
				return nil
			}
			var err error
			if d.buf, err = s.str(d.buf[:0]); err != nil {
				return err
			}
			r.Labels[d.internBytes(k)] = d.internBytes(d.buf)
			return nil
		})
	})
}

func (d *Decoder) kafka(r *Row, s *scanner) error {
	return s.object(func(key []byte) error {
		var err error
		var n int64
		switch string(key) {
		case "topic":
			if d.buf, err = s.str(d.buf[:0]); err == nil {
				r.KafkaTopic = d.internBytes(d.buf)
			}
		case "partition":
			if n, err = s.int(); err == nil {
				r.KafkaPartition = int32(n)
			}
		case "offset":
			r.KafkaOffset, err = s.int()
		case "timestamp":
			if d.buf, err = s.str(d.buf[:0]); err == nil {
				var t time.Time
				if t, err = time.Parse(time.RFC3339Nano, string(d.buf)); err == nil {
					r.KafkaTime = t.UnixMicro()
				}
			}
		default:
			err = s.skip(0)
		}
		return err
	})
}

var topFields = []string{"v", "ts", "stream", "message", "message_base64", "namespace", "pod", "pod_uid", "container", "container_id", "node", "cluster", "file", "offset", "split", "parse_error", "k8s", "metadata", "fields", "fields_error", "lines"}

// fieldName maps a member name to the record field it sets, as encoding/json does (exact match
// first, then case-insensitive), or "" for an unknown member.
func fieldName(key []byte) string { return fold(key, topFields...) }

func fold(key []byte, names ...string) string {
	for _, n := range names {
		if string(key) == n {
			return n
		}
	}
	for _, n := range names {
		if strings.EqualFold(string(key), n) {
			return n
		}
	}
	return ""
}

// scanner walks JSON text. Every method reports errors with the byte position.
type scanner struct {
	b     []byte
	i     int
	depth int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

func (s *scanner) peekNull() bool {
	return len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null"
}

// object scans an object, calling member with each member's unescaped name and the scanner
// positioned at its value; member must consume the value.
func (s *scanner) object(member func(key []byte) error) error {
	if !s.consume('{') {
		return s.errorf("want object")
	}
	var key []byte
	for first := true; ; first = false {
		s.ws()
		if s.consume('}') {
			return nil
		}
		if !first {
			if !s.consume(',') {
				return s.errorf("want , or }")
			}
			s.ws()
		}
		var err error
		if key, err = s.str(key[:0]); err != nil {
			return err
		}
		s.ws()
		if !s.consume(':') {
			return s.errorf("want :")
		}
		s.ws()
		if err := member(key); err != nil {
			return err
		}
	}
}

// str appends the unescaped string at the scanner to dst. Invalid UTF-8 and lone surrogates
// become U+FFFD, as encoding/json makes them. Runs between escapes are found with
// bytes.IndexByte, which is vectorised.
func (s *scanner) str(dst []byte) ([]byte, error) {
	if !s.consume('"') {
		return dst, s.errorf("want string")
	}
	// The next quote is searched again only once the scanner is past it (it was escaped): a
	// search per escape would make a string of many escapes (a line of NULs, 6 bytes each)
	// quadratic in its length.
	qAt := -1
	for {
		rest := s.b[s.i:]
		if qAt < s.i {
			q := bytes.IndexByte(rest, '"')
			if q < 0 {
				if i := ctlIndex(rest); i >= 0 {
					s.i += i
					return dst, s.errorf("control character in string")
				}
				s.i = len(s.b)
				return dst, s.errorf("unterminated string")
			}
			qAt = s.i + q
		}
		seg := rest[:qAt-s.i]
		bs := bytes.IndexByte(seg, '\\')
		if bs >= 0 {
			seg = seg[:bs]
		}
		if plainASCII(seg) {
			dst = append(dst, seg...)
		} else {
			if i := ctlIndex(seg); i >= 0 {
				s.i += i
				return dst, s.errorf("control character in string")
			}
			dst = appendValid(dst, seg)
		}
		s.i += len(seg)
		if bs < 0 {
			s.i++ // the closing quote
			return dst, nil
		}
		var err error
		if dst, err = s.escape(dst); err != nil {
			return dst, err
		}
	}
}

func ctlIndex(b []byte) int {
	for i, c := range b {
		if c < 0x20 {
			return i
		}
	}
	return -1
}

// plainASCII reports whether b has only bytes 0x20-0x7f, eight at a time.
func plainASCII(b []byte) bool {
	const lo, hi = 0x2020202020202020, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if (x-lo)&^x&hi != 0 || x&hi != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

func appendValid(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

func (s *scanner) escape(dst []byte) ([]byte, error) {
	s.i++ // backslash
	if s.i >= len(s.b) {
		return dst, s.errorf("unterminated escape")
	}
	c := s.b[s.i]
	s.i++
	switch c {
	case '"', '\\', '/':
		return append(dst, c), nil
	case 'b':
		return append(dst, '\b'), nil
	case 'f':
		return append(dst, '\f'), nil
	case 'n':
		return append(dst, '\n'), nil
	case 'r':
		return append(dst, '\r'), nil
	case 't':
		return append(dst, '\t'), nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return dst, err
		}
		if utf16.IsSurrogate(r) {
			// A high surrogate pairs with an immediately following \uDC00-\uDFFF.
			if len(s.b)-s.i >= 6 && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
				save := s.i
				s.i += 2
				r2, err := s.hex4()
				if err != nil {
					return dst, err
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return utf8.AppendRune(dst, dec), nil
				}
				s.i = save
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), nil
	}
	s.i--
	return dst, s.errorf("invalid escape \\%c", c)
}

func (s *scanner) hex4() (rune, error) {
	if len(s.b)-s.i < 4 {
		return 0, s.errorf("short \\u escape")
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.errorf("bad \\u escape")
		}
	}
	s.i += 4
	return r, nil
}

// number scans a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, s.errorf("want number")
	}
	if s.consume('.') {
		if s.digits() == 0 {
			return nil, s.errorf("want digits after .")
		}
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return nil, s.errorf("want exponent digits")
		}
	}
	return s.b[start:s.i], nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// int scans an integer number (as encoding/json decodes into int64: no fraction, no exponent).
func (s *scanner) int() (int64, error) {
	at := s.i
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte %d: not an int64: %s", at, num)
	}
	return v, nil
}

const maxDepth = 10000

// skip scans any value, checking its syntax.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errorf("nesting too deep")
	}
	if s.i >= len(s.b) {
		return s.errorf("want value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str(nil)
		return err
	case c == '{':
		return s.object(func([]byte) error { return s.skip(depth + 1) })
	case c == '[':
		s.i++
		for first := true; ; first = false {
			s.ws()
			if s.consume(']') {
				return nil
			}
			if !first {
				if !s.consume(',') {
					return s.errorf("want , or ]")
				}
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == 't':
		if s.lit("true") {
			return nil
		}
	case c == 'f':
		if s.lit("false") {
			return nil
		}
	case c == 'n':
		if s.lit("null") {
			return nil
		}
	default:
		_, err := s.number()
		return err
	}
	return s.errorf("invalid literal")
}
