package allowlist

import (
	"errors"
	"maps"
	"regexp"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"a,,b", "item 2 is empty"},
		{",", "item 1 is empty"},
		{"!", "item 1 is empty"},
		{"app label", `byte 4 " "`},
		{"a,b?", `item 2 "b?": byte 2 "?"`},
		{"a=b", `byte 2 "="`},
		{"ünï", `byte 1 "\xc3"`},
	} {
		_, err := Parse(tc.in)
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %q, want it to mention %q", tc.in, err, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		list string
		yes  []string
		no   []string
	}{
		{"", nil, []string{"", "a", "logrouter.io/x"}},
		{"*", []string{"", "a", "app.kubernetes.io/name"}, nil},
		{"logrouter.io/*", []string{"logrouter.io/", "logrouter.io/team"}, []string{"logrouter.io", "x.logrouter.io/team", "kubectl.kubernetes.io/last-applied-configuration"}},
		{"app", []string{"app"}, []string{"app2", "ap", "xapp"}},
		{"*,!pod-template-hash", []string{"app", "pod-template-hash2"}, []string{"pod-template-hash"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbc", "abcbc"}, []string{"ab", "acb", "bc"}},
		{"*.io/*", []string{"x.io/y", ".io/"}, []string{"x.io", "xio/y"}},
		{"aa*aa", []string{"aaaa", "aaXaa"}, []string{"aaa"}},
		{"team,tier", []string{"team", "tier"}, []string{"te", "teamtier"}},
		{"!app", nil, []string{"app", "other"}},
	} {
		l := MustParse(tc.list)
		for _, k := range tc.yes {
			if !l.Match(k) {
				t.Errorf("%q.Match(%q) = false, want true", tc.list, k)
			}
		}
		for _, k := range tc.no {
			if l.Match(k) {
				t.Errorf("%q.Match(%q) = true, want false", tc.list, k)
			}
		}
	}
}

func TestFilter(t *testing.T) {
	in := map[string]string{"app": "web", "pod-template-hash": "abc", "logrouter.io/team": "pay"}
	for _, tc := range []struct {
		list string
		want map[string]string
	}{
		{"*", in},
		{"", nil},
		{"logrouter.io/*", map[string]string{"logrouter.io/team": "pay"}},
		{"*,!pod-template-hash", map[string]string{"app": "web", "logrouter.io/team": "pay"}},
		{"nothing-matches", nil},
	} {
		got := MustParse(tc.list).Filter(in)
		if !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%q.Filter = %v, want %v", tc.list, got, tc.want)
		}
	}
}

// reference builds the regexp the documented syntax describes.
func reference(list string) (inc, exc []*regexp.Regexp) {
	for _, item := range strings.Split(list, ",") {
		neg := strings.HasPrefix(item, "!")
		body := strings.TrimPrefix(item, "!")
		parts := strings.Split(body, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re := regexp.MustCompile(`^(?s:` + strings.Join(parts, ".*") + `)$`)
		if neg {
			exc = append(exc, re)
		} else {
			inc = append(inc, re)
		}
	}
	return inc, exc
}

func FuzzAllowlist(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "a"}, {"logrouter.io/*", "logrouter.io/x"}, {"a*b*a", "abba"}, {"*,!x", "x"},
		{"a,,b", "a"}, {"aa*aa", "aaa"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, list, key string) {
		l, err := Parse(list)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrSyntax", list, err)
			}
			return
		}
		if l.String() != list {
			t.Fatalf("String() = %q, want %q", l.String(), list)
		}
		want := false
		if list != "" {
			inc, exc := reference(list)
			for _, re := range inc {
				if re.MatchString(key) {
					want = true
				}
			}
			for _, re := range exc {
				if re.MatchString(key) {
					want = false
				}
			}
		}
		if got := l.Match(key); got != want {
			t.Fatalf("Parse(%q).Match(%q) = %v, reference says %v", list, key, got, want)
		}
	})
}
