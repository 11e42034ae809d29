package logline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		line string
		want Format
	}{
		{`{"log":"hi\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}`, FormatDocker},
		{"2024-01-01T00:00:00.123456789Z stdout F hi", FormatCRI},
		{"", FormatUnknown},
		{"hello world", FormatUnknown},
		{" {", FormatUnknown},
	}
	for _, tt := range tests {
		if got := Detect([]byte(tt.line)); got != tt.want {
			t.Errorf("Detect(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestFormatString(t *testing.T) {
	tests := []struct {
		f    Format
		want string
	}{
		{FormatUnknown, "unknown"}, {FormatCRI, "cri"}, {FormatDocker, "docker"}, {Format(7), "Format(7)"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int(tt.f), got, tt.want)
		}
	}
}

func TestNormalizeTS(t *testing.T) {
	tests := []struct {
		name, in, want string
		same           bool // the result must be the input itself
	}{
		{"containerd nanos", "2024-03-05T10:11:12.123456789Z", "2024-03-05T10:11:12.123456789Z", true},
		{"no fraction", "2024-03-05T10:11:12Z", "2024-03-05T10:11:12Z", true},
		{"one digit", "2024-03-05T10:11:12.1Z", "2024-03-05T10:11:12.1Z", true},
		{"trailing zeros kept", "2024-03-05T10:11:12.100000000Z", "2024-03-05T10:11:12.100000000Z", true},
		{"leap day", "2024-02-29T23:59:59.999Z", "2024-02-29T23:59:59.999Z", true},
		{"cri-o offset", "2024-03-05T12:11:12.123456789+02:00", "2024-03-05T10:11:12.123456789Z", false},
		{"negative offset crosses day", "2024-12-31T22:30:00.5-03:00", "2025-01-01T01:30:00.5Z", false},
		{"trailing zeros trimmed", "2024-03-05T12:11:12.500+02:00", "2024-03-05T10:11:12.5Z", false},
		{"zero fraction dropped", "2024-03-05T12:11:12.000000000+02:00", "2024-03-05T10:11:12Z", false},
		{"year end via offset", "2023-12-31T23:30:00-00:45", "2024-01-01T00:15:00Z", false},
		{"month start back", "2024-05-01T01:00:00+01:30", "2024-04-30T23:30:00Z", false},
		{"year start back", "2024-01-01T00:00:00+00:01", "2023-12-31T23:59:00Z", false},
		{"zero offset", "2024-03-05T10:11:12+00:00", "2024-03-05T10:11:12Z", false},
		{"offset with nanos and minutes", "2024-03-05T04:41:12.000000001-05:30", "2024-03-05T10:11:12.000000001Z", false},
		{"offset no fraction", "2024-01-01T00:59:59+01:00", "2023-12-31T23:59:59Z", false},
		{"leap day via offset", "2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00Z", false},
		{"ten fraction digits", "2024-03-05T10:11:12.1234567891Z", "2024-03-05T10:11:12.123456789Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			buf := make([]byte, 0, 64)
			got, err := NormalizeTS(in, buf)
			if err != nil {
				t.Fatalf("NormalizeTS(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("NormalizeTS(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.same && &got[0] != &in[0] {
				t.Errorf("NormalizeTS(%q) copied an already normalized timestamp", tt.in)
			}
			if !tt.same && &got[0] != &buf[:1][0] {
				t.Errorf("NormalizeTS(%q) did not use buf", tt.in)
			}
		})
	}
}

func TestNormalizeTSErrors(t *testing.T) {
	tests := []struct{ in, wantSub string }{
		{"", "empty"},
		{"hello", "cannot parse"},
		{"2024-13-05T10:11:12Z", "month out of range"},
		{"2024-00-05T10:11:12Z", "month out of range"},
		{"2023-02-29T10:11:12Z", "day out of range"},
		{"2024-04-31T10:11:12Z", "day out of range"},
		{"2024-04-00T10:11:12Z", "day out of range"},
		{"2024-04-01T24:11:12Z", "hour out of range"},
		{"2024-04-01T23:60:12Z", "minute out of range"},
		{"2024-04-01T23:59:60Z", "second out of range"},
		{"2024-04-01T23:59:59.Z", ""},
		{"2024-04-01 23:59:59Z", ""},
		{"2024-04-01T23:59:59", ""},
		{"2024-04-01T23:59:59+25:00", ""},
		{"2024-04-01T23:59:59Zjunk", ""},
		{"2024-02-30T00:00:00+01:00", "day out of range"},
		{"2024-02-01T00:00:00+24:00", "offset"},
		{"2024-02-01T00:00:00+01:60", "offset out of range"},
		{"2024-02-01T00:00:00,5-24:00", "offset out of range"},
		{"2024-02-01T00:00:00+0100", ""},
		{"0000-01-01T00:30:00+01:00", "year -1 in UTC"},
		{"9999-12-31T23:30:00-01:00", "year 10000 in UTC"},
		{strings.Repeat("9", 100), "too long (100 bytes)"},
	}
	for _, tt := range tests {
		got, err := NormalizeTS([]byte(tt.in), nil)
		if err == nil {
			t.Errorf("NormalizeTS(%q) = %q, want error", tt.in, got)
			continue
		}
		if !errors.Is(err, ErrTimestamp) {
			t.Errorf("NormalizeTS(%q) error %v does not wrap ErrTimestamp", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.wantSub) {
			t.Errorf("NormalizeTS(%q) error %q does not contain %q", tt.in, err, tt.wantSub)
		}
	}
}

func TestNormalizeTSNoAlloc(t *testing.T) {
	ts := []byte("2024-03-05T10:11:12.123456789Z")
	off := []byte("2024-03-05T12:11:12.123456789+02:00")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { _, _ = NormalizeTS(ts, buf) }); n != 0 {
		t.Errorf("NormalizeTS of a UTC timestamp: %v allocations, want 0", n)
	}
	// CRI-O writes offsets on every line of a non-UTC node: no allocation when buf is big enough.
	if n := testing.AllocsPerRun(100, func() { _, _ = NormalizeTS(off, buf) }); n != 0 {
		t.Errorf("NormalizeTS of an offset timestamp: %v allocations, want 0", n)
	}
}

func TestParseError(t *testing.T) {
	cause := errors.New("cause")
	e := &ParseError{Format: FormatCRI, Reason: ReasonBadTag, Detail: `"X"`, Err: cause}
	if got, want := e.Error(), `cri log line: bad tag: "X": cause`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrMalformed) || !errors.Is(e, cause) {
		t.Errorf("ParseError does not wrap ErrMalformed and its cause")
	}
	if got := Quote([]byte(strings.Repeat("a", 100))); len(got) > maxQuote+8 {
		t.Errorf("Quote did not truncate: %d bytes", len(got))
	}
}

func FuzzNormalizeTS(f *testing.F) {
	for _, s := range []string{
		"2024-03-05T10:11:12.123456789Z", "2024-03-05T12:11:12.123+02:00", "2024-02-30T00:00:00Z",
		"2024-03-05T10:11:12.Z", "0000-01-01T00:00:00-00:01", "2024-03-05T10:11:12,5Z", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := string(in)
		out, err := NormalizeTS(in, nil)
		if string(in) != orig {
			t.Fatalf("NormalizeTS modified its input")
		}
		want, perr := time.Parse(time.RFC3339Nano, orig)
		if err != nil {
			if !errors.Is(err, ErrTimestamp) {
				t.Fatalf("error %v does not wrap ErrTimestamp", err)
			}
			// Only the range checks time.Parse lacks (year in UTC, offsets of 24 h or 60 min) reject
			// what it accepts.
			if perr == nil && !strings.Contains(err.Error(), "in UTC is outside") &&
				!strings.Contains(err.Error(), "offset out of range") && len(orig) <= maxTSLen {
				t.Fatalf("NormalizeTS(%q) = %v but time.Parse accepts it", orig, err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("NormalizeTS(%q) = %q but time.Parse rejects it: %v", orig, out, perr)
		}
		// The result has the fast shape, so normalizing again returns it unchanged.
		if again, err := NormalizeTS(out, nil); err != nil || len(again) == 0 || &again[0] != &out[0] {
			t.Fatalf("NormalizeTS(%q) = %q, not in normalized form (%q, %v)", orig, out, again, err)
		}
		got, err := time.Parse(time.RFC3339Nano, string(out))
		if err != nil || !got.Equal(want) {
			t.Fatalf("NormalizeTS(%q) = %q = %v, want instant %v (%v)", orig, out, got, want, err)
		}
		// A rewritten timestamp is exactly what time.RFC3339Nano makes of it.
		if string(out) != orig {
			if f := want.UTC().Format(time.RFC3339Nano); string(out) != f {
				t.Fatalf("NormalizeTS(%q) = %q, want %q", orig, out, f)
			}
		}
	})
}

func BenchmarkNormalizeTS(b *testing.B) {
	for _, bc := range []struct{ name, ts string }{
		{"utc", "2024-03-05T10:11:12.123456789Z"},
		{"offset", "2024-03-05T12:11:12.123456789+02:00"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := []byte(bc.ts)
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeTS(ts, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
