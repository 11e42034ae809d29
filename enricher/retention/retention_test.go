package retention

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string // substring of the error; empty for success
	}{
		{"7d", 7 * 24 * time.Hour, ""},
		{"1d", 24 * time.Hour, ""},
		{"36h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0d1ms", time.Millisecond, ""},
		{"1ms", time.Millisecond, ""},
		{"", 0, "empty value"},
		{"0", 0, "at least 1ms"},
		{"0d", 0, "at least 1ms"},
		{"500us", 0, "at least 1ms"},
		{"-1h", 0, "at least 1ms"},
		{"1d-1h", 0, "sign after the days"},
		{"d", 0, "number of days before 'd'"},
		{"1.5d", 0, `"1.5" is not a whole number of days`},
		{"-7d", 0, "not a whole number of days"},
		{"7 d", 0, "not a whole number of days"},
		{"7days", 0, `invalid duration "ays"`},
		{"1w", 0, "unknown unit"},
		{"forever", 0, "want e.g. 7d"},
		{"7d7d", 0, `unknown unit "d"`},
		{"106752d", 0, "too many days"},
		{"106751d24h", 0, "too long"},
		{"99999999999999999999d", 0, "too many days"},
	} {
		got, err := Parse(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Parse(%q) = %v, %v; want ErrInvalid mentioning %q", tc.in, got, err, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{7 * 24 * time.Hour, "7d"},
		{36 * time.Hour, "1d12h0m0s"},
		{90 * time.Minute, "1h30m0s"},
		{24 * time.Hour, "1d"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"7d", "36h", "1d12h", "", "-1h", "1d-1h", "106751d", "1.5h", "0d1ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if d < Min {
			t.Fatalf("Parse(%q) = %v, below Min", s, d)
		}
		// What Format writes, Parse reads back to the same value.
		back, err := Parse(Format(d))
		if err != nil || back != d {
			t.Fatalf("Parse(Format(%v)) = %v, %v", d, back, err)
		}
	})
}
