// Package logview renders log records for a terminal: text with aligned, coloured columns (pods
// coloured like stern), the records as JSON, or the bare messages. Log content is untrusted:
// whatever it holds, what this package writes cannot control the terminal (escape sequences,
// C1 controls, carriage returns and bidirectional overrides are shown as visible escapes).
package logview

import (
	"strconv"
	"unicode/utf8"
)

// unsafeRune reports whether r can change the terminal's state or what it shows elsewhere:
// C0 controls (tab aside), DEL, C1 controls (U+0080-U+009F: 8-bit CSI, OSC, ...; some
// terminals act on them in UTF-8 too) and the Unicode controls that reorder or hide text
// (bidirectional embeddings, overrides and isolates: "Trojan Source").
func unsafeRune(r rune) bool {
	switch {
	case r == '\t':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Neutralise appends s to dst with every byte or rune that could control a terminal written
// as a visible Go-style escape (\x1b, \r, \u009b, \u202e) and every invalid UTF-8 byte as \xNN,
// so the result is valid UTF-8 holding no control character but tab. Newlines are escaped
// too; Text splits multi-line messages before calling it.
func Neutralise(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\t' { // fast path: printable ASCII
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = appendHex(dst, c)
		case !unsafeRune(r):
			dst = append(dst, s[i:i+n]...)
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r < 0x80:
			dst = appendHex(dst, byte(r))
		default:
			dst = append(dst, `\u`...)
			dst = appendHex4(dst, r)
		}
		i += n
	}
	return dst
}

func appendHex(dst []byte, b byte) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'x', hex[b>>4], hex[b&15])
}

func appendHex4(dst []byte, r rune) []byte {
	s := strconv.FormatInt(int64(r), 16)
	for range 4 - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// SafeJSON appends the JSON value v to dst with the runes Neutralise escapes, and invalid
// UTF-8, written as JSON \u escapes (U+FFFD for invalid bytes). Valid JSON stays valid and
// decodes to the same value (but for invalid UTF-8, which decoders replace by U+FFFD anyway):
// outside strings JSON is ASCII, and raw C0 controls cannot appear in valid JSON at all.
func SafeJSON(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		if c < 0x80 {
			switch {
			case c == '\n' || c == '\r':
				// Only whitespace between tokens in valid JSON: a space is the same JSON and
				// keeps the value on one line.
				dst = append(dst, ' ')
			case c < 0x20 && c != '\t' || c == 0x7f: // not in valid JSON; never pass one through
				dst = append(dst, `\u00`...)
				dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(v[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, `\ufffd`...)
		case unsafeRune(r):
			dst = append(dst, `\u`...)
			dst = appendHex4(dst, r)
		default:
			dst = append(dst, v[i:i+n]...)
		}
		i += n
	}
	return dst
}
