package logline

import (
	"testing"
	"time"
)

func TestParseUTC(t *testing.T) {
	for _, ts := range []string{
		"2026-12-01T10:00:00.123456789Z",
		"2026-12-01T10:00:00Z",
		"2026-12-01T10:00:00.1Z",
		"2024-02-29T23:59:59.000000001Z",
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
		"2026-12-01T10:00:00+02:00",           // not UTC: time.Parse
		"2026-12-01T10:00:00.123456789-07:00", // likewise
		"2026-02-30T10:00:00Z",                // out of range: time.Parse's error
		"2026-12-01T10:00:00.Z",
		"2026-12-01 10:00:00Z",
		"",
		"garbage",
	} {
		t.Run(ts, func(t *testing.T) { checkParseUTC(t, ts) })
	}
}

func checkParseUTC(t *testing.T, ts string) {
	t.Helper()
	got, err := ParseUTC([]byte(ts))
	want, werr := time.Parse(time.RFC3339Nano, ts)
	if (err != nil) != (werr != nil) {
		t.Fatalf("ParseUTC(%q): error %v, time.Parse: %v", ts, err, werr)
	}
	gn, gOff := got.Zone()
	wn, wOff := want.Zone()
	if err == nil && (!got.Equal(want) || gn != wn || gOff != wOff || (want.Location() == time.UTC) != (got.Location() == time.UTC)) {
		t.Fatalf("ParseUTC(%q) = %v (%v), time.Parse: %v (%v)", ts, got, got.Location(), want, want.Location())
	}
}

// ParseUTC on a line without an allocation is what the collector relies on per line.
func TestParseUTCAllocs(t *testing.T) {
	ts := []byte("2026-12-01T10:00:00.123456789Z")
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseUTC(ts) }); n != 0 {
		t.Fatalf("ParseUTC allocates %v times", n)
	}
}

func FuzzParseUTC(f *testing.F) {
	for _, s := range []string{"2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00Z", "2024-02-29T00:00:00.5Z", "2026-12-01T10:00:00+02:00", "2026-13-01T10:00:00Z", "2026-12-01T24:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ts string) { checkParseUTC(t, ts) })
}
