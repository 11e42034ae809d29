package pipeline

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// matcher finds redact's matches quickly: a regexp search over a whole line is most of
// redact's cost, and most lines hold no match, or one in a short run of text. Two facts cut
// the work, both derived from the pattern at Compile:
//   - lit: a literal every match contains ("@" for an email pattern). Text without it has
//     no match.
//   - breaks: bytes no part of the pattern can match (for an email pattern: spaces, quotes,
//     commas...). No match spans one, so only the run of text between two of them around an
//     occurrence of lit is searched. Patterns with anchors or word boundaries (whose result
//     depends on text outside the run) have no breaks.
//
// find returns exactly what re.FindAllIndex returns (FuzzMatcher checks it).
type matcher struct {
	re     *regexp.Regexp
	lit    []byte
	litStr string // lit, for string fields
	breaks *[256]bool
}

func newMatcher(re *regexp.Regexp, pattern string) *matcher {
	m := &matcher{re: re}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return m
	}
	tree = tree.Simplify()
	lit := literalIn(tree, 0)
	if lit == "" || !utf8.ValidString(lit) || bytes.ContainsRune([]byte(lit), utf8.RuneError) {
		return m
	}
	m.lit, m.litStr = []byte(lit), lit
	var possible [256]bool
	if possibleBytes(tree, &possible, 0) {
		var br [256]bool
		n := 0
		for i := range br {
			br[i] = !possible[i]
			if br[i] {
				n++
			}
		}
		if n > 0 {
			m.breaks = &br
		}
	}
	return m
}

// find appends the matches of text to locs[:0].
func (m *matcher) find(text []byte, locs [][]int) [][]int {
	locs = locs[:0]
	if m.lit == nil {
		return append(locs, m.re.FindAllIndex(text, -1)...)
	}
	if m.breaks == nil {
		if !bytes.Contains(text, m.lit) {
			return locs
		}
		return append(locs, m.re.FindAllIndex(text, -1)...)
	}
	i := 0
	for i < len(text) {
		j := bytes.Index(text[i:], m.lit)
		if j < 0 {
			break
		}
		pos := i + j
		start := pos
		for start > i && !m.breaks[text[start-1]] {
			start--
		}
		end := pos + len(m.lit)
		for end < len(text) && !m.breaks[text[end]] {
			end++
		}
		for _, l := range m.re.FindAllIndex(text[start:end], -1) {
			locs = append(locs, []int{start + l[0], start + l[1]})
		}
		i = end
	}
	return locs
}

// possibleBytes marks every byte a match of re can contain; false when that is unknown or
// when re has assertions that look outside a match.
func possibleBytes(re *syntax.Regexp, set *[256]bool, depth int) bool {
	if depth > 100 {
		return false
	}
	addRune := func(r rune) {
		if r < utf8.RuneSelf {
			set[r] = true
			return
		}
		for b := 0x80; b < 0x100; b++ {
			set[b] = true
		}
	}
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch:
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			addRune(r)
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					addRune(f)
				}
			}
		}
	case syntax.OpCharClass:
		for k := 0; k+1 < len(re.Rune); k += 2 {
			lo, hi := re.Rune[k], re.Rune[k+1]
			for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
				set[r] = true
			}
			if hi >= utf8.RuneSelf {
				addRune(hi)
			}
		}
	case syntax.OpAnyCharNotNL:
		for b := range set {
			set[b] = b != '\n'
		}
		return true
	case syntax.OpAnyChar:
		return false // every byte: no breaks
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !possibleBytes(sub, set, depth+1) {
				return false
			}
		}
	default: // ^ $ \A \z \b \B
		return false
	}
	return true
}
