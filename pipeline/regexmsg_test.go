package pipeline

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"testing"
)

func TestRegexMessage(t *testing.T) {
	tests := []struct {
		pattern, want string
	}{
		// The example: RE2 reports only the class; the group is open too.
		{`(?P<x>[a-z`, `missing closing ] for "[" at offset 6 and ) for "(?P<x>" at offset 0: "(?P<x>[a-z"`},
		{`(?P<x>[a-z]`, `missing closing ) for "(?P<x>" at offset 0: "(?P<x>[a-z]"`},
		{`[a-z`, `missing closing ] for "[" at offset 0: "[a-z"`},
		{`^(\s`, `missing closing ) for "(" at offset 1: "^(\\s"`},
		{`((a)(b`, `missing closing ) for "(" at offset 4 and ) for "(" at offset 0: "((a)(b"`},
		{`(?:a|(?i:b`, `missing closing ) for "(?i:" at offset 5 and ) for "(?:" at offset 0: "(?:a|(?i:b"`},
		{`(?i)(a`, `missing closing ) for "(" at offset 4: "(?i)(a"`},
		{`(?<n>\(`, `missing closing ) for "(?<n>" at offset 0: "(?<n>\\("`},
		{`(\Q)(\E`, `missing closing ) for "(" at offset 0: "(\\Q)(\\E"`},
		{`(\Q)`, `missing closing ) for "(" at offset 0: "(\\Q)"`},
		{`([]a)`, `missing closing ] for "[" at offset 1 and ) for "(" at offset 0: "([]a)"`},
		{`([^]a)`, `missing closing ] for "[^" at offset 1 and ) for "(" at offset 0: "([^]a)"`},
		{`([[:alpha:]]`, `missing closing ) for "(" at offset 0: "([[:alpha:]]"`},
		{`([[:alpha:]`, `missing closing ] for "[" at offset 1 and ) for "(" at offset 0: "([[:alpha:]"`},
		{`([[:alpha:]\]`, `missing closing ] for "[" at offset 1 and ) for "(" at offset 0: "([[:alpha:]\\]"`},
		{`(?P<x>[)]`, `missing closing ) for "(?P<x>" at offset 0: "(?P<x>[)]"`},
		// Not about closing: RE2's message with the part it names.
		{`a)`, `unexpected ): "a)"`},
		{`a**`, `invalid nested repetition operator: "**"`},
		{`(?P<x`, `invalid named capture: "(?P<x"`},
		{`[z-a]`, `invalid character class range: "z-a"`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := regexp.Compile(tt.pattern)
			var se *syntax.Error
			if !errors.As(err, &se) {
				t.Fatalf("regexp.Compile(%q) = %v, want a syntax error", tt.pattern, err)
			}
			if got := regexMessage(tt.pattern, se); got != tt.want {
				t.Errorf("regexMessage(%q)\n got %s\nwant %s", tt.pattern, got, tt.want)
			}
		})
	}
}

// FuzzRegexMessage: every pattern RE2 refuses for an unclosed construct gets a message that
// names at least one, and the scan never panics on any input.
func FuzzRegexMessage(f *testing.F) {
	for _, s := range []string{`(?P<x>[a-z`, `([]a)`, `(\Q)(\E`, `[[:alpha:]`, `(?i:(`, `\`, `[\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		open := unclosed(p)
		_, err := regexp.Compile(p)
		var se *syntax.Error
		if !errors.As(err, &se) {
			return
		}
		if (se.Code == syntax.ErrMissingBracket || se.Code == syntax.ErrMissingParen) && len(open) == 0 {
			t.Errorf("%q: RE2 says %v, the scan found nothing open", p, se)
		}
		if se.Code == syntax.ErrMissingBracket && (len(open) == 0 || open[0].closer != ']') {
			t.Errorf("%q: RE2 says %v, the scan's innermost is %+v", p, se, open)
		}
		_ = regexMessage(p, se)
	})
}
