// Package allowlist parses and matches the glob allow-lists that choose which pod labels, pod
// annotations and namespace labels the enricher copies into records.
//
// Syntax: a comma-separated list of patterns. A pattern is a label or annotation key in which
// '*' matches any run of characters (including '/' and none at all). A pattern that starts
// with '!' excludes the keys it matches. A key is copied when it matches at least one include
// pattern and no exclude pattern. The empty list copies nothing.
//
//	"*"                         every key
//	"logrouter.io/*"            keys with that prefix
//	"*,!pod-template-hash"      every key but one
package allowlist

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("invalid allow-list")

// List is a parsed allow-list. The zero value copies nothing. A List is immutable and safe for
// concurrent use.
type List struct {
	src     string
	include []pattern
	exclude []pattern
}

// pattern is a glob split at its stars: parts[0] is a required prefix, the last part a
// required suffix, and the parts between must appear in order.
type pattern struct {
	parts []string
	star  bool // the pattern holds at least one '*'
}

// Parse parses an allow-list.
func Parse(s string) (*List, error) {
	l := &List{src: s}
	if s == "" {
		return l, nil
	}
	for i, item := range strings.Split(s, ",") {
		neg := strings.HasPrefix(item, "!")
		body := strings.TrimPrefix(item, "!")
		if body == "" {
			return nil, fmt.Errorf("%w %q: item %d is empty", ErrSyntax, s, i+1)
		}
		for j := 0; j < len(body); j++ {
			if c := body[j]; !keyChar(c) && c != '*' {
				return nil, fmt.Errorf("%w %q: item %d %q: byte %d %q is not allowed in a label or annotation key (want [A-Za-z0-9._/-] and '*')",
					ErrSyntax, s, i+1, item, j+1, body[j:j+1])
			}
		}
		p := pattern{parts: strings.Split(body, "*")}
		p.star = len(p.parts) > 1
		if neg {
			l.exclude = append(l.exclude, p)
		} else {
			l.include = append(l.include, p)
		}
	}
	return l, nil
}

// MustParse is Parse for constants; it panics on error.
func MustParse(s string) *List {
	l, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

func keyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '/' || c == '-'
}

// String returns the list as parsed.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return l.src
}

// Match reports whether key is allowed.
func (l *List) Match(key string) bool {
	if l == nil {
		return false
	}
	ok := false
	for _, p := range l.include {
		if p.match(key) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, p := range l.exclude {
		if p.match(key) {
			return false
		}
	}
	return true
}

// Filter returns the entries of m whose keys are allowed, or nil when none is. It returns m
// itself when every key is allowed, so callers must treat the result as read-only.
func (l *List) Filter(m map[string]string) map[string]string {
	if len(m) == 0 || l == nil || len(l.include) == 0 {
		return nil
	}
	all := true
	for k := range m {
		if !l.Match(k) {
			all = false
			break
		}
	}
	if all {
		return m
	}
	var out map[string]string
	for k, v := range m {
		if l.Match(k) {
			if out == nil {
				out = make(map[string]string)
			}
			out[k] = v
		}
	}
	return out
}

func (p pattern) match(s string) bool {
	if !p.star {
		return s == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	// Greedy leftmost matching of the middle parts is exact for globs with only '*'.
	mid := s[len(first) : len(s)-len(last)]
	for _, part := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(mid, part)
		if i < 0 {
			return false
		}
		mid = mid[i+len(part):]
	}
	return true
}
