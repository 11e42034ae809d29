package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting the json step accepts, so a hostile line cannot exhaust
// the stack.
const maxJSONDepth = 64

// jsonParser parses one JSON object into fields. It exists (instead of encoding/json) because
// it is the hot path: strings without escapes are interned (a value repeated from earlier
// lines of the file costs nothing) or substrings of one copy of the line. Numbers that
// are integers fitting int64 become int64, others float64; objects map[string]any; arrays
// []any. Duplicate keys: the last wins, as in encoding/json. Invalid UTF-8 is kept as is
// (AppendFieldsJSON replaces it when encoding).
//
// Strings go through t (pieces): with the json step's Runner they are interned, and when the
// text is a view of the collector's buffer, the others are substrings of one copy of it.
type jsonParser struct {
	s   string
	i   int
	err error
	t   pieces
}

var errNotObject = errors.New("not a JSON object")

// parseJSONInto parses s, which must hold one JSON object, and stores its members in dst.
func parseJSONInto(s string, dst map[string]any) error {
	return parseJSONPieces(pieces{s: s}, dst)
}

// parseJSONPieces is parseJSONInto of t.s, making strings with t.
func parseJSONPieces(t pieces, dst map[string]any) error {
	p := jsonParser{s: t.s, t: t}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return errNotObject
	}
	p.object(dst, 0)
	if p.err != nil {
		return p.err
	}
	p.ws()
	if p.i != len(p.s) {
		return fmt.Errorf("invalid JSON: unexpected %s after the object at offset %d", p.describe(), p.i)
	}
	return nil
}

func (p *jsonParser) describe() string {
	if p.i >= len(p.s) {
		return "end of input"
	}
	c := p.s[p.i]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *jsonParser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("invalid JSON: %s at offset %d, found %s", what, p.i, p.describe())
	}
	p.i = len(p.s)
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses an object at p.s[p.i] == '{' into m.
func (p *jsonParser) object(m map[string]any, depth int) {
	if depth >= maxJSONDepth {
		p.fail(fmt.Sprintf("nested deeper than %d", maxJSONDepth))
		return
	}
	p.i++ // {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return
	}
	member := -1 // top-level members are looked up by position first (pieces.memberKey)
	if depth == 0 {
		member = 0
	}
	for p.err == nil {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			p.fail("expected a string key")
			return
		}
		k := p.key(member)
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			p.fail("expected ':'")
			return
		}
		p.i++
		p.ws()
		var v any
		if member >= 0 && p.i < len(p.s) && p.s[p.i] == '"' {
			v = p.memberString(member, k)
			member++
		} else {
			v = p.value(depth + 1)
			if member >= 0 {
				member++
			}
		}
		if p.err != nil {
			return
		}
		m[k] = v
		p.ws()
		if p.i < len(p.s) {
			switch p.s[p.i] {
			case ',':
				p.i++
				continue
			case '}':
				p.i++
				return
			}
		}
		p.fail("expected ',' or '}'")
	}
}

func (p *jsonParser) value(depth int) any {
	if p.i >= len(p.s) {
		p.fail("expected a value")
		return nil
	}
	switch c := p.s[p.i]; {
	case c == '"':
		a, b, made, isMade := p.str()
		if p.err != nil {
			return nil
		}
		if isMade {
			return p.t.made(made)
		}
		return p.t.value(a, b)
	case c == '{':
		m := map[string]any{}
		p.object(m, depth)
		return m
	case c == '[':
		return p.array(depth)
	case c == 't':
		return p.lit("true", true)
	case c == 'f':
		return p.lit("false", false)
	case c == 'n':
		return p.lit("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	p.fail("expected a value")
	return nil
}

func (p *jsonParser) lit(word string, v any) any {
	if len(p.s)-p.i >= len(word) && p.s[p.i:p.i+len(word)] == word {
		p.i += len(word)
		return v
	}
	p.fail("invalid literal")
	return nil
}

func (p *jsonParser) array(depth int) any {
	if depth >= maxJSONDepth {
		p.fail(fmt.Sprintf("nested deeper than %d", maxJSONDepth))
		return nil
	}
	p.i++ // [
	out := []any{}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return out
	}
	for p.err == nil {
		p.ws()
		v := p.value(depth + 1)
		if p.err != nil {
			return nil
		}
		out = append(out, v)
		p.ws()
		if p.i < len(p.s) {
			switch p.s[p.i] {
			case ',':
				p.i++
				continue
			case ']':
				p.i++
				return out
			}
		}
		p.fail("expected ',' or ']'")
	}
	return nil
}

// number parses a JSON number (RFC 8259 grammar).
func (p *jsonParser) number() any {
	start := p.i
	isInt := true
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		p.fail("invalid number")
		return nil
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		isInt = false
		p.i++
		if digits() == 0 {
			p.fail("invalid number")
			return nil
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		isInt = false
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			p.fail("invalid number")
			return nil
		}
	}
	lit := p.s[start:p.i]
	if isInt {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return n
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Out of range: ParseFloat returns ±Inf, which JSON cannot carry; keep the text.
		return p.t.own(start, p.i)
	}
	return f
}

// strStop marks the bytes that end the plain run of a JSON string: '"', '\\' and control
// characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// key parses a member name; member is its position in the top-level object, or -1.
func (p *jsonParser) key(member int) string {
	a, b, made, isMade := p.str()
	if p.err != nil {
		return ""
	}
	if isMade {
		return made
	}
	if member >= 0 {
		return p.t.memberKey(member, a, b)
	}
	k, _ := p.t.key(a, b)
	return k
}

// memberString parses the string value of top-level member number member, named k.
func (p *jsonParser) memberString(member int, k string) any {
	a, b, made, isMade := p.str()
	if p.err != nil {
		return nil
	}
	if isMade {
		return p.t.made(made)
	}
	return p.t.memberValue(member, k, a, b)
}

// str parses a string at p.s[p.i] == '"': without escapes it is p.s[a:b], else the
// unescaped text is made (isMade).
func (p *jsonParser) str() (a, b int, made string, isMade bool) {
	p.i++ // "
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !strStop[c] {
			p.i++ // the common byte: one table load
			continue
		}
		switch {
		case c == '"':
			a, b = start, p.i
			p.i++
			return a, b, "", false
		case c == '\\':
			return 0, 0, p.unescape(start), true
		case c < 0x20:
			p.fail("control character in string")
			return 0, 0, "", false
		}
		p.i++
	}
	p.fail("unterminated string")
	return 0, 0, "", false
}

// unescape continues str from the first backslash, building a new string.
func (p *jsonParser) unescape(start int) string {
	b := make([]byte, 0, p.i-start+16)
	b = append(b, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b)
		case c < 0x20:
			p.fail("control character in string")
			return ""
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.s) {
			break
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				p.fail("invalid \\u escape")
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if len(p.s)-p.i >= 6 && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					lo, ok := p.hex4()
					if ok {
						if d := utf16.DecodeRune(r, lo); d != utf8.RuneError {
							r2 = d
						} else {
							p.i = save // not a pair: the next escape stands alone
						}
					} else {
						p.fail("invalid \\u escape")
						return ""
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			p.i--
			p.fail("invalid escape")
			return ""
		}
	}
	p.fail("unterminated string")
	return ""
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := p.s[p.i+k]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
