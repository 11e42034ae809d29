package dockerjson

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask sets the high bit of each of the 8 bytes of x (little endian) that is '"', '\\' or a
// control character: the bytes a JSON string decoder must stop at. A borrow can flag a byte
// above a real hit spuriously, never one below it, so the lowest flag is exact.
func specialMask(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x-lsb*0x20)&^x) & msb
}

// nextSpecial returns the index of the first byte at or after j that specialMask flags, or len(s).
func nextSpecial(s []byte, j int) int {
	for ; j+8 <= len(s); j += 8 {
		if m := specialMask(binary.LittleEndian.Uint64(s[j:])); m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
	}
	for ; j < len(s); j++ {
		if c := s[j]; c == '"' || c == '\\' || c < 0x20 {
			return j
		}
	}
	return j
}

// unquote decodes the JSON string whose body starts at s[i] (just after the opening quote),
// appends it to dst and returns the index just after the closing quote. Escapes decode as
// encoding/json does (a lone surrogate becomes U+FFFD); bytes that are not valid UTF-8 are kept
// as they are, so no byte of a log line is lost (the record encoder deals with them).
func unquote(dst, s []byte, i int) ([]byte, int, error) {
	return scan(dst, s, i, true)
}

// skipString validates the JSON string whose body starts at s[i] and returns the index just after
// its closing quote, decoding nothing (and so allocating nothing).
func skipString(s []byte, i int) (int, error) {
	_, j, err := scan(nil, s, i, false)
	return j, err
}

// scan is unquote when keep is true, skipString when it is false.
func scan(dst, s []byte, i int, keep bool) ([]byte, int, error) {
	start := i - 1
	j := i
	for {
		j = nextSpecial(s, j)
		if j >= len(s) {
			return dst, j, fmt.Errorf("unterminated string starting at byte %d", start)
		}
		if keep {
			dst = append(dst, s[i:j]...)
		}
		switch c := s[j]; {
		case c == '"':
			return dst, j + 1, nil
		case c < 0x20:
			return dst, j, fmt.Errorf("control character %#02x in string at byte %d", c, j)
		}
		// A backslash.
		if j+1 >= len(s) {
			return dst, j, fmt.Errorf("unterminated escape at byte %d", j)
		}
		var d byte // the decoded byte of a one-letter escape
		switch e := s[j+1]; e {
		case '"', '\\', '/':
			d = e
		case 'b':
			d = '\b'
		case 'f':
			d = '\f'
		case 'n':
			d = '\n'
		case 'r':
			d = '\r'
		case 't':
			d = '\t'
		case 'u':
			r := hex4(s, j+2)
			if r < 0 {
				return dst, j, fmt.Errorf("invalid \\u escape at byte %d", j)
			}
			j += 6
			if utf16.IsSurrogate(r) {
				// A pair combines; anything else leaves U+FFFD and the next escape is decoded on its own.
				r2 := rune(-1)
				if j+1 < len(s) && s[j] == '\\' && s[j+1] == 'u' {
					r2 = hex4(s, j+2)
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			if keep {
				dst = utf8.AppendRune(dst, r)
			}
			i = j
			continue
		default:
			return dst, j, fmt.Errorf("invalid escape %q at byte %d", s[j:j+2], j)
		}
		if keep {
			dst = append(dst, d)
		}
		j += 2
		i = j
	}
}

// hex4 decodes the 4 hex digits at s[i:], or returns -1.
func hex4(s []byte, i int) rune {
	if i+4 > len(s) {
		return -1
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
