package pipeline

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

// maxEncodeDepth bounds the nesting AppendFieldsJSON follows; deeper values are encoded as
// null (steps never build them: the json step and set refuse deeper values).
const maxEncodeDepth = 100

// AppendFieldsJSON appends fields as one JSON object: keys sorted at every level, strings
// escaped by internal/record's AppendString (invalid UTF-8 becomes U+FFFD), so the result is
// always valid JSON. Values are what steps produce (string, bool, nil, int64, uint64,
// float64, []any, map[string]any); NaN and ±Inf become null, []byte base64 text, time.Time
// RFC 3339 text, anything else its fmt %v text. A nil map appends {}.
func AppendFieldsJSON(dst []byte, fields map[string]any) []byte {
	return appendObject(dst, fields, 0)
}

// member is one key and value of an object being encoded.
type member struct {
	k string
	v any
}

func appendObject(b []byte, m map[string]any, depth int) []byte {
	b = append(b, '{')
	// The members are sorted with their values, so none is looked up again (for the objects
	// steps produce, 16 members fit on the stack).
	var stack [16]member
	ms := stack[:0]
	for k, v := range m {
		ms = append(ms, member{k, v})
	}
	sortMembers(ms)
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, ms[i].k)
		b = append(b, ':')
		b = appendValue(b, ms[i].v, depth+1)
	}
	return append(b, '}')
}

// sortMembers sorts ms by key: insertion sort for the few members of a typical record (no
// comparison function is called through a pointer), slices.SortFunc beyond.
func sortMembers(ms []member) {
	if len(ms) > 24 {
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].k < ms[j-1].k; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

func appendValue(b []byte, v any, depth int) []byte {
	if depth > maxEncodeDepth {
		return append(b, "null"...)
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		return appendFloat(b, x)
	case float32:
		return appendFloat(b, float64(x))
	case map[string]any:
		return appendObject(b, x, depth)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e, depth+1)
		}
		return append(b, ']')
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendObject(b, m, depth)
	case []string:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = record.AppendString(b, e)
		}
		return append(b, ']')
	case []byte:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, '"')
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	b, _ = record.AppendString(b, fmt.Sprint(v))
	return b
}

// appendFloat writes f as encoding/json does (shortest representation, exponent only for
// very large or small magnitudes).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendString is record.AppendString for field keys and values: most need no escaping, and
// those are found 8 bytes at a time and copied whole (FuzzAppendString checks it against
// record.AppendString).
func appendString(b []byte, s string) []byte {
	if plain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b, _ = record.AppendString(b, s)
	return b
}

// plain reports whether s is ASCII without '"', '\\' and control characters.
func plain(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&hi != 0 {
			return false // a byte >= 0x80
		}
		// With no high bit set, a byte below x makes (byte - x) borrow into its high bit.
		q, bs := w^(0x22*lo), w^(0x5c*lo)
		if ((w-0x20*lo)|(q-lo)|(bs-lo))&hi != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
