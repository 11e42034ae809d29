package pipeline

import (
	"fmt"
	"regexp/syntax"
	"strings"
)

// regexMessage is the validation message of an RE2 compile error. For an unclosed class or
// group RE2 names only the innermost construct ("missing closing ]" for `(?P<x>[a-z`, though
// the group is open too): the message lists every construct left open, innermost first (the
// order in which they would have to be closed), each with the text that opened it and its byte
// offset, then quotes the whole pattern. Other errors keep RE2's message with the part it names.
func regexMessage(pattern string, se *syntax.Error) string {
	if se.Code == syntax.ErrMissingBracket || se.Code == syntax.ErrMissingParen {
		if open := unclosed(pattern); len(open) > 0 {
			parts := make([]string, len(open))
			for i, o := range open {
				parts[i] = fmt.Sprintf("%c for %q at offset %d", o.closer, o.text, o.offset)
			}
			return fmt.Sprintf("missing closing %s: %q", strings.Join(parts, " and "), pattern)
		}
	}
	return fmt.Sprintf("%s: %q", se.Code, se.Expr)
}

// opener is a class or group that was not closed.
type opener struct {
	offset int
	text   string // what opened it: "[", "[^", "(", "(?:", "(?P<name>", "(?i:"
	closer byte
}

// unclosed scans an RE2 (Perl syntax) pattern for classes and groups left open, innermost
// first. It follows the lexical rules that decide what closes what: escapes (including
// \Q...\E), a ']' first in a class (literal), and [:name:] inside a class.
func unclosed(p string) []opener {
	var groups []opener
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 < len(p) && p[i+1] == 'Q' {
				end := strings.Index(p[i+2:], `\E`)
				if end < 0 {
					i = len(p)
				} else {
					i += 2 + end + 1
				}
				continue
			}
			i++ // the escaped character (\p{..} and \x{..} braces mean nothing here)
		case '(':
			groups = append(groups, opener{offset: i, text: groupText(p[i:]), closer: ')'})
		case ')':
			if len(groups) > 0 {
				groups = groups[:len(groups)-1]
			}
		case '[':
			end, text := classEnd(p, i)
			if end < 0 {
				out := []opener{{offset: i, text: text, closer: ']'}}
				for j := len(groups) - 1; j >= 0; j-- {
					out = append(out, groups[j])
				}
				return out
			}
			i = end
		}
	}
	out := make([]opener, 0, len(groups))
	for j := len(groups) - 1; j >= 0; j-- {
		out = append(out, groups[j])
	}
	return out
}

// classEnd returns the offset of the ']' that closes the class opening at p[i] (-1: none), and
// the class's opening text.
func classEnd(p string, i int) (int, string) {
	j := i + 1
	text := "["
	if j < len(p) && p[j] == '^' {
		j++
		text = "[^"
	}
	if j < len(p) && p[j] == ']' {
		j++ // a ']' first is a literal
	}
	for j < len(p) {
		switch {
		case p[j] == '\\':
			j += 2
		case p[j] == '[' && j+1 < len(p) && p[j+1] == ':':
			if k := strings.Index(p[j+2:], ":]"); k >= 0 {
				j += 2 + k + 2
			} else {
				j++
			}
		case p[j] == ']':
			return j, text
		default:
			j++
		}
	}
	return -1, text
}

// groupText is the opening of the group at the start of s: "(", or through the '>' of a named
// group, or through the ':' of a flag group.
func groupText(s string) string {
	if !strings.HasPrefix(s, "(?") {
		return "("
	}
	for k := 2; k < len(s) && k < 2+maxGroupText; k++ {
		switch s[k] {
		case '>', ':', ')':
			return s[:k+1]
		case '(', '[', '\\':
			return s[:k]
		}
	}
	return "(?"
}

// maxGroupText bounds how much of a group's opening a message quotes.
const maxGroupText = 64
