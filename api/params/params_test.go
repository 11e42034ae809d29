package params

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/topic"
)

func TestNamespace(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"team-a", true},
		{"a", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"..", false},
		{"a..b", false},
		{"Team-A", false},
		{"team_a", false},
		{"-team", false},
		{"team-", false},
		{"team%2fb", false},
		{"team%2Fb", false},
		{"team/b", false},
		{"team.b", false},
		{"tëam", false},
		{"team\x00", false},
	}
	for _, tt := range tests {
		err := Namespace(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Namespace(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidNamespace) {
			t.Errorf("Namespace(%q) error %v does not wrap ErrInvalidNamespace", tt.in, err)
		}
	}
}

func TestParseLogs(t *testing.T) {
	ts := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		query     string
		wantCode  string // "" = success
		wantParam string
		check     func(t *testing.T, l Logs)
	}{
		{name: "empty", query: "", check: func(t *testing.T, l Logs) {
			if l.Start.Kind != StartDefault || l.Page {
				t.Fatalf("got %+v", l)
			}
		}},
		{name: "earliest", query: "from=earliest", check: func(t *testing.T, l Logs) {
			if l.Start.Kind != StartEarliest {
				t.Fatalf("got %+v", l.Start)
			}
		}},
		{name: "latest", query: "from=latest", check: func(t *testing.T, l Logs) {
			if l.Start.Kind != StartLatest {
				t.Fatalf("got %+v", l.Start)
			}
		}},
		{name: "time", query: "from=2026-11-21T10:00:00Z", check: func(t *testing.T, l Logs) {
			if l.Start.Kind != StartTime || !l.Start.Time.Equal(ts) {
				t.Fatalf("got %+v", l.Start)
			}
		}},
		{name: "time with offset", query: "from=2026-11-21T11:00:00%2B01:00", check: func(t *testing.T, l Logs) {
			if !l.Start.Time.Equal(ts) {
				t.Fatalf("got %v", l.Start.Time)
			}
		}},
		{name: "cursor via from", query: "from=AQAAAAEBAQ", check: func(t *testing.T, l Logs) {
			if l.Start.Kind != StartCursor || l.Start.Cursor != "AQAAAAEBAQ" || l.Page {
				t.Fatalf("got %+v", l)
			}
		}},
		{name: "page", query: "limit=10&cursor=AQAAAAEBAQ&pod=web-1&container=app&grep=err(or)?", check: func(t *testing.T, l Logs) {
			if !l.Page || l.Limit != 10 || l.Start.Cursor != "AQAAAAEBAQ" || l.Filter.Pod != "web-1" || l.Filter.Container != "app" || !l.Filter.Grep.MatchString("an error") {
				t.Fatalf("got %+v", l)
			}
		}},
		{name: "bad time", query: "from=2026-13-01T00:00:00Z", wantCode: CodeInvalid},
		{name: "from neither time nor cursor", query: "from=yesterday-ish", wantCode: CodeInvalid, wantParam: "from"},
		{name: "from short date", query: "from=2026", wantCode: CodeInvalid, wantParam: "from"},
		{name: "from truncated cursor", query: "from=AQAAAAE", wantCode: CodeInvalid, wantParam: "from"},
		{name: "empty from", query: "from=", wantCode: CodeInvalid},
		{name: "from and cursor", query: "from=earliest&cursor=AQ", wantCode: CodeInvalid},
		{name: "empty cursor", query: "cursor=", wantCode: CodeInvalid},
		{name: "limit zero", query: "limit=0", wantCode: CodeInvalid},
		{name: "limit huge", query: "limit=10001", wantCode: CodeInvalid},
		{name: "limit text", query: "limit=ten", wantCode: CodeInvalid},
		{name: "repeated", query: "pod=a&pod=b", wantCode: CodeInvalid},
		{name: "unknown", query: "topic=logs.other", wantCode: CodeUnknown},
		{name: "group", query: "group=x", wantCode: CodeUnknown},
		{name: "access_token", query: "access_token=lrt_x", wantCode: CodeTokenInQuery},
		{name: "token", query: "token=abc", wantCode: CodeTokenInQuery},
		{name: "Token uppercase", query: "Access_Token=abc", wantCode: CodeTokenInQuery},
		{name: "bad escape", query: "pod=%zz", wantCode: CodeInvalid},
		{name: "bad pod", query: "pod=Web_1", wantCode: CodeInvalid},
		{name: "bad container", query: "container=a.b", wantCode: CodeInvalid},
		{name: "bad grep", query: "grep=(", wantCode: CodeInvalid},
		{name: "empty grep", query: "grep=", wantCode: CodeInvalid},
		{name: "grep bomb", query: "grep=((a{100}){100}){100}", wantCode: CodeInvalid},
		{name: "grep repeat", query: "grep=(a{1000}){1000}", wantCode: CodeInvalid},
		{name: "grep too long", query: "grep=" + strings.Repeat("a", MaxGrepBytes+1), wantCode: CodeInvalid},
		{name: "backreference", query: `grep=(a)\1`, wantCode: CodeInvalid},
		{name: "huge query", query: "pod=" + strings.Repeat("a", 9000), wantCode: CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLogs(tt.query)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, l)
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.wantCode || tt.wantParam != "" && pe.Param != tt.wantParam {
				t.Fatalf("ParseLogs(%q) = %v, want code %s param %q", tt.query, err, tt.wantCode, tt.wantParam)
			}
		})
	}
}

func TestParseArchive(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		query string
		ok    bool
	}{
		{"since only", "since=2026-11-21T10:00:00Z", true},
		{"range", "since=2026-11-21T10:00:00Z&until=2026-11-21T11:00:00Z&pod=a&grep=x", true},
		{"missing since", "until=2026-11-21T11:00:00Z", false},
		{"reversed", "since=2026-11-21T11:00:00Z&until=2026-11-21T10:00:00Z", false},
		{"equal", "since=2026-11-21T11:00:00Z&until=2026-11-21T11:00:00Z", false},
		{"future since", "since=2026-11-21T13:00:00Z", false},
		{"cursor not allowed", "since=2026-11-21T10:00:00Z&cursor=x", false},
		{"bad limit", "since=2026-11-21T10:00:00Z&limit=-1", false},
		{"year 0", "since=0000-01-01T00:00:00Z", false},
		{"before", "since=2026-11-21T10:00:00Z&before=AQID", true},
		{"empty before", "since=2026-11-21T10:00:00Z&before=", false},
		{"two befores", "since=2026-11-21T10:00:00Z&before=AQID&before=AQID", false},
		{"before too long", "since=2026-11-21T10:00:00Z&before=" + strings.Repeat("A", MaxCursorLen+1), false},
		{"offsets", "partition=1&from_offset=10&to_offset=20&pod=a&limit=5", true},
		{"offsets of partition 0 from 0", "partition=0&from_offset=0&to_offset=1", true},
		{"offsets without partition", "from_offset=10&to_offset=20", false},
		{"offsets without to", "partition=1&from_offset=10", false},
		{"offsets only partition", "partition=1", false},
		{"offsets empty range", "partition=1&from_offset=10&to_offset=10", false},
		{"offsets reversed", "partition=1&from_offset=20&to_offset=10", false},
		{"offsets negative", "partition=-1&from_offset=0&to_offset=10", false},
		{"offsets partition overflow", "partition=2147483648&from_offset=0&to_offset=10", false},
		{"offsets not numbers", "partition=a&from_offset=0x1&to_offset=10", false},
		{"offsets with since", "since=2026-11-21T10:00:00Z&partition=1&from_offset=10&to_offset=20", false},
		{"offsets with before", "partition=1&from_offset=10&to_offset=20&before=AQID", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseArchive(tt.query, now)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseArchive(%q) = %+v, %v; want ok=%v", tt.query, a, err, tt.ok)
			}
			if err != nil && First(err) == nil {
				t.Fatalf("error without a parameter: %v", err)
			}
			if err == nil && a.Offsets == nil && a.Until.IsZero() {
				t.Fatal("until not defaulted")
			}
			if err == nil && strings.Contains(tt.query, "partition=") && (a.Offsets == nil || a.Offsets.From >= a.Offsets.To) {
				t.Fatalf("offsets not parsed: %+v", a.Offsets)
			}
		})
	}
}

func FuzzParseLogs(f *testing.F) {
	for _, s := range []string{"", "from=earliest", "limit=5&cursor=AQ", "grep=a%2Bb&pod=x", "from=2026-11-21T10:00:00Z"} {
		f.Add(s)
	}
	f.Add("suffix=audit&from=earliest")
	f.Add("suffix=a%2eb")
	f.Fuzz(func(t *testing.T, q string) {
		l, err := ParseLogs(q)
		if err != nil {
			if First(err) == nil {
				t.Fatalf("error without a parameter: %v", err)
			}
			return
		}
		if l.Limit < 0 || l.Limit > MaxLimit {
			t.Fatalf("limit %d out of bounds", l.Limit)
		}
		if re := l.Filter.Grep; re != nil && len(re.String()) > MaxGrepBytes {
			t.Fatalf("grep too long accepted")
		}
		if l.Suffix != "" && topic.ValidSuffix(l.Suffix) != nil {
			t.Fatalf("suffix %q accepted", l.Suffix)
		}
	})
}

func FuzzGrep(f *testing.F) {
	for _, s := range []string{"a", "(a|b)*c", "((a{100}){100}){100}", "[[:alpha:]]+", `\pL{2,}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		re, err := Grep(s)
		if err != nil {
			return
		}
		// Accepted programs are bounded, and matching a long line terminates quickly (linear).
		re.MatchString(strings.Repeat("ab", 512))
	})
}

func FuzzNamespace(f *testing.F) {
	for _, s := range []string{"team-a", "..", "%2f", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Namespace(s) != nil {
			return
		}
		if len(s) > 63 || strings.ContainsAny(s, "./%_ ") || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzParseArchive(f *testing.F) {
	for _, s := range []string{"since=2026-11-21T10:00:00Z", "since=2026-11-21T10:00:00Z&until=2026-11-21T11:00:00Z&limit=5&grep=x", "until=x", "partition=1&from_offset=10&to_offset=20"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, q string) {
		a, err := ParseArchive(q, now)
		if err != nil {
			if First(err) == nil {
				t.Fatalf("error without a parameter: %v", err)
			}
			return
		}
		if o := a.Offsets; o != nil {
			if o.Partition < 0 || o.From < 0 || o.From >= o.To || !a.Since.IsZero() || a.Before != "" {
				t.Fatalf("accepted offsets %+v of %+v", o, a)
			}
		} else if !a.Since.Before(a.Until) {
			t.Fatalf("accepted %+v", a)
		}
		if a.Limit < 0 || a.Suffix != "" && topic.ValidSuffix(a.Suffix) != nil {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func TestNone(t *testing.T) {
	tests := []struct {
		q    string
		code string
	}{
		{"", ""},
		{"x=1", CodeUnknown},
		{"&", CodeUnknown},
		{"access_token=abc", CodeTokenInQuery},
		{"%zz", CodeInvalid},
	}
	for _, tt := range tests {
		err := None(tt.q)
		if tt.code == "" {
			if err != nil {
				t.Errorf("None(%q) = %v", tt.q, err)
			}
			continue
		}
		if pe := First(err); pe == nil || pe.Code != tt.code {
			t.Errorf("None(%q) = %v, want code %s", tt.q, err, tt.code)
		}
	}
}

// TestParseSuffix: both endpoints take one suffix, a single RFC 1123 label; anything that could
// name another topic (dots, `..`, slashes, escapes of them, another namespace's topic, upper
// case, an empty value, a second suffix) is invalid_parameter with param "suffix".
func TestParseSuffix(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		raw, want string
		ok        bool
	}{
		{"suffix=audit", "audit", true},
		{"suffix=debug-1", "debug-1", true},
		{"suffix=%61udit", "audit", true}, // an escaped letter is that letter
		{"", "", true},
		{"suffix=", "", false},
		{"suffix=..", "", false},
		{"suffix=.", "", false},
		{"suffix=%2e%2e", "", false},
		{"suffix=a.b", "", false},
		{"suffix=audit%2e", "", false},
		{"suffix=logs.team-b", "", false},
		{"suffix=team-b.audit", "", false},
		{"suffix=..%2f..%2flogs.team-b", "", false},
		{"suffix=a/b", "", false},
		{"suffix=a%2Fb", "", false},
		{"suffix=a%00", "", false},
		{"suffix=Audit", "", false},
		{"suffix=a_b", "", false},
		{"suffix=-a", "", false},
		{"suffix=a+b", "", false},
		{"suffix=%C3%A9", "", false},
		{"suffix=" + strings.Repeat("a", 64), "", false},
		{"suffix=audit&suffix=debug", "", false},
	} {
		for _, endpoint := range []string{"logs", "archive"} {
			var got string
			var err error
			if endpoint == "logs" {
				var l Logs
				l, err = ParseLogs(tt.raw)
				got = l.Suffix
			} else {
				var a Archive
				a, err = ParseArchive(strings.TrimPrefix(tt.raw+"&since=2026-11-21T10:00:00Z", "&"), now)
				got = a.Suffix
			}
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("%s %q: suffix %q, %v; want %q", endpoint, tt.raw, got, err, tt.want)
				}
				continue
			}
			if e := First(err); e == nil || e.Param != "suffix" || e.Code != CodeInvalid {
				t.Errorf("%s %q: err %v, want invalid_parameter on suffix", endpoint, tt.raw, err)
			}
		}
	}
	for _, endpoint := range []string{"logs", "archive"} {
		if !slices.Contains(Names(endpoint), "suffix") {
			t.Errorf("Names(%s) = %v", endpoint, Names(endpoint))
		}
	}
}
