package record

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// Source is what the collector knows of one log file. It is rendered once into a JSON fragment
// (Fragment) and copied into every line's value, so metadata costs a memmove per line.
type Source struct {
	Namespace   string
	Pod         string
	PodUID      string
	Container   string
	ContainerID string
	Node        string
	Cluster     string
	File        string
	Src         string // "<device>:<inode>" of File
	Kubernetes  *Kubernetes
	// MetadataPartial marks lines shipped without API metadata (see Record.Metadata).
	MetadataPartial bool
}

// Fragment renders the source as comma-separated JSON members without braces, beginning with a
// comma, e.g. `,"namespace":"a","pod":"b",...`.
func (s *Source) Fragment() []byte {
	b := make([]byte, 0, 256)
	b = appendMember(b, "namespace", s.Namespace)
	b = appendMember(b, "pod", s.Pod)
	if s.PodUID != "" {
		b = appendMember(b, "pod_uid", s.PodUID)
	}
	b = appendMember(b, "container", s.Container)
	if s.ContainerID != "" {
		b = appendMember(b, "container_id", s.ContainerID)
	}
	if s.Node != "" {
		b = appendMember(b, "node", s.Node)
	}
	if s.Cluster != "" {
		b = appendMember(b, "cluster", s.Cluster)
	}
	if s.File != "" {
		b = appendMember(b, "file", s.File)
	}
	if s.Src != "" {
		b = appendMember(b, "src", s.Src)
	}
	if k := s.Kubernetes; k != nil {
		b = append(b, `,"k8s":{`...)
		n := len(b)
		if k.Image != "" {
			b = appendMember(b, "image", k.Image)
		}
		b = appendMap(b, "labels", k.Labels)
		b = appendMap(b, "annotations", k.Annotations)
		if k.OwnerKind != "" {
			b = appendMember(b, "owner_kind", k.OwnerKind)
			b = appendMember(b, "owner_name", k.OwnerName)
		}
		b = appendMap(b, "namespace_labels", k.NamespaceLabels)
		if len(b) > n { // drop the leading comma of the first member
			copy(b[n:], b[n+1:])
			b = b[:len(b)-1]
		}
		b = append(b, '}')
	}
	if s.MetadataPartial {
		b = appendMember(b, "metadata", MetadataPartial)
	}
	return b
}

func appendMember(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	b, _ = AppendString(b, value)
	return b
}

func appendMap(b []byte, name string, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	keys := sortedKeys(m)
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":{`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = AppendString(b, k)
		b = append(b, ':')
		b, _ = AppendString(b, m[k])
	}
	return append(b, '}')
}

// Line is what one log line (or chunk) contributes to its record.
type Line struct {
	// TS is the timestamp, already formatted as RFC 3339 with nanoseconds in UTC.
	TS      []byte
	Stream  string
	Message []byte
	// Offset is where the line starts in its file.
	Offset int64
	// Split marks a chunk of an oversized line.
	Split      bool
	SplitIndex int
	SplitLast  bool
	// ParseError is set when the framing could not be parsed; Message is then the raw line.
	ParseError string
	// Fields is a pre-encoded JSON object from a pipeline (pipeline.AppendFieldsJSON, which
	// escapes with AppendString), or nil. An empty object is written as it is.
	Fields []byte
	// FieldsError is why a pipeline's parse step failed; Message is then unchanged.
	FieldsError string
	// Lines is how many lines a multiline step joined into Message; 0 or 1 writes nothing.
	Lines int
}

// ExtraLen bounds what l's pipeline output (Fields, FieldsError, Lines) adds to the value
// beyond MaxValueLen(len(l.Message), fragLen): pass fragLen+l.ExtraLen() to size a value that
// carries them.
func (l *Line) ExtraLen() int {
	n := 0
	if len(l.Fields) > 0 {
		n += len(`,"fields":`) + len(l.Fields)
	}
	if l.FieldsError != "" {
		n += len(`,"fields_error":""`) + 6*len(l.FieldsError)
	}
	if l.Lines > 1 {
		n += len(`,"lines":`) + 20
	}
	return n
}

// AppendJSON appends the record value for l from source fragment frag (see Source.Fragment).
// invalidUTF8 reports whether the message was not valid UTF-8; the value then carries the exact
// bytes in message_base64 as well.
func AppendJSON(dst []byte, frag []byte, l *Line) (b []byte, invalidUTF8 bool) {
	b = append(dst, versionPrefix...)
	b = append(b, l.TS...)
	b = append(b, '"')
	if l.Stream != "" {
		b = append(b, `,"stream":"`...)
		b = append(b, l.Stream...)
		b = append(b, '"')
	}
	b = append(b, `,"message":`...)
	b, valid := AppendString(b, l.Message)
	if !valid {
		b = append(b, `,"message_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, l.Message)
		b = append(b, '"')
	}
	b = append(b, frag...)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, l.Offset, 10)
	if l.Split {
		b = append(b, `,"split":{"index":`...)
		b = strconv.AppendInt(b, int64(l.SplitIndex), 10)
		if l.SplitLast {
			b = append(b, `,"last":true}`...)
		} else {
			b = append(b, `,"last":false}`...)
		}
	}
	if l.ParseError != "" {
		b = appendMember(b, "parse_error", l.ParseError)
	}
	if len(l.Fields) > 0 {
		b = append(b, `,"fields":`...)
		b = append(b, l.Fields...)
	}
	if l.FieldsError != "" {
		b = appendMember(b, "fields_error", l.FieldsError)
	}
	if l.Lines > 1 {
		b = append(b, `,"lines":`...)
		b = strconv.AppendInt(b, int64(l.Lines), 10)
	}
	return append(b, '}'), !valid
}

// versionPrefix opens every value AppendJSON writes.
var versionPrefix = []byte(`{"v":` + strconv.Itoa(SchemaVersion) + `,"ts":"`)

// safe[c] is true for ASCII bytes that need no escaping inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a quoted JSON string. Invalid UTF-8 bytes become U+FFFD; valid
// reports whether there were none.
//
// It is logrouter's one JSON string escaping: the record value, the source fragment, the
// pipeline's fields object (pipeline.AppendFieldsJSON) and the archiver's NDJSON all use it,
// so a string is escaped the same way wherever it appears, without allocating.
func AppendString[S ~string | ~[]byte](b []byte, s S) (_ []byte, valid bool) {
	valid = true
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		size := runeLen(s, i)
		if size == 0 {
			valid = false
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"'), valid
}

// runeLen returns the length of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// (the rules of utf8.DecodeRune, written over S so string and []byte share it without copying).
func runeLen[S ~string | ~[]byte](s S, i int) int {
	n := len(s) - i
	c0 := s[i]
	switch {
	case c0 < 0xC2 || c0 > 0xF4:
		return 0
	case c0 < 0xE0:
		if n < 2 || s[i+1]&0xC0 != 0x80 {
			return 0
		}
		return 2
	case c0 < 0xF0:
		if n < 3 || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 {
			return 0
		}
		if c0 == 0xE0 && s[i+1] < 0xA0 || c0 == 0xED && s[i+1] > 0x9F { // overlong, surrogates
			return 0
		}
		return 3
	default:
		if n < 4 || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 || s[i+3]&0xC0 != 0x80 {
			return 0
		}
		if c0 == 0xF0 && s[i+1] < 0x90 || c0 == 0xF4 && s[i+1] > 0x8F { // overlong, > U+10FFFF
			return 0
		}
		return 4
	}
}

// maxValueOverhead bounds what AppendJSON adds besides the message and the source fragment:
// timestamp, stream, offset, split marker, a parse error and the JSON punctuation.
const maxValueOverhead = 2048

// base64Member is what a message with invalid UTF-8 adds around its base64 copy.
const base64Member = len(`,"message_base64":""`)

// MaxValueLen is the largest value AppendJSON makes from a message of msgLen bytes and a
// fragment of fragLen bytes: a control character escapes to 6 bytes, and a message with invalid
// UTF-8 is carried a second time in base64.
func MaxValueLen(msgLen, fragLen int) int {
	return maxValueOverhead + fragLen + 6*msgLen + base64.StdEncoding.EncodedLen(msgLen) + base64Member
}

// MaxMessageLen is the longest message whose value (MaxValueLen) stays within valueLen bytes;
// 0 when not even an empty message fits.
func MaxMessageLen(valueLen, fragLen int) int {
	// 6n + 4*ceil(n/3) <= 6n + 4n/3 + 4 <= room  <=>  n <= 3(room-4)/22
	room := valueLen - maxValueOverhead - fragLen - base64Member - 4
	if room <= 0 {
		return 0
	}
	return room * 3 / 22
}
