package cri

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/logline"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("x", 16*1024)
	tests := []struct {
		name, line string
		want       logline.Line
	}{
		{"containerd full", "2024-03-05T10:11:12.123456789Z stdout F hello world",
			logline.Line{TS: []byte("2024-03-05T10:11:12.123456789Z"), Stream: record.StreamStdout, Msg: []byte("hello world")}},
		{"stderr partial", "2024-03-05T10:11:12.123456789Z stderr P " + long,
			logline.Line{TS: []byte("2024-03-05T10:11:12.123456789Z"), Stream: record.StreamStderr, Partial: true, Msg: []byte(long)}},
		{"cri-o offset", "2024-03-05T12:11:12.5+02:00 stdout F x",
			logline.Line{TS: []byte("2024-03-05T10:11:12.5Z"), Stream: record.StreamStdout, Msg: []byte("x")}},
		{"empty message with space", "2024-03-05T10:11:12Z stdout F ",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte{}}},
		{"empty message no space", "2024-03-05T10:11:12Z stdout F",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte{}}},
		{"extra tags ignored", "2024-03-05T10:11:12Z stdout F:x:y msg",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte("msg")}},
		{"partial with extra tag", "2024-03-05T10:11:12Z stdout P: msg",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Partial: true, Msg: []byte("msg")}},
		{"spaces, tabs, quotes kept", "2024-03-05T10:11:12Z stdout F   \t\"quoted\" {\"json\":1}  ",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte("  \t\"quoted\" {\"json\":1}  ")}},
		{"carriage return kept", "2024-03-05T10:11:12Z stdout F windows\r",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte("windows\r")}},
		{"unicode and invalid utf-8 kept", "2024-03-05T10:11:12Z stdout F héllo 😀 \xff\xfe",
			logline.Line{TS: []byte("2024-03-05T10:11:12Z"), Stream: record.StreamStdout, Msg: []byte("héllo 😀 \xff\xfe")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.line), make([]byte, 0, 64))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !bytes.Equal(got.TS, tt.want.TS) || got.Stream != tt.want.Stream || got.Partial != tt.want.Partial ||
				!bytes.Equal(got.Msg, tt.want.Msg) || got.Msg == nil {
				t.Errorf("Parse(%.80q) =\n  {%q %q %v %.80q}, want\n  {%q %q %v %.80q}", tt.line,
					got.TS, got.Stream, got.Partial, got.Msg, tt.want.TS, tt.want.Stream, tt.want.Partial, tt.want.Msg)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line, reason, detail string
	}{
		{"", logline.ReasonMissingStream, "no space after the timestamp"},
		{"2024-03-05T10:11:12Z", logline.ReasonMissingStream, "no space after the timestamp"},
		{"2024-03-05T10:11:12Z ", logline.ReasonMissingStream, "nothing after the timestamp"},
		{"2024-03-05T10:11:12Z  F msg", logline.ReasonMissingStream, "empty stream"},
		{"2024-03-05T10:11:12Z stdin F msg", logline.ReasonUnknownStream, `"stdin"`},
		{"2024-03-05T10:11:12Z STDOUT F msg", logline.ReasonUnknownStream, `"STDOUT"`},
		{"2024-03-05T10:11:12Z stdouts", logline.ReasonUnknownStream, `"stdouts"`},
		{"2024-03-05T10:11:12Z stdout", logline.ReasonBadTag, "missing tag"},
		{"2024-03-05T10:11:12Z stdout ", logline.ReasonBadTag, "missing tag"},
		{"2024-03-05T10:11:12Z stdout  msg", logline.ReasonBadTag, "missing tag"},
		{"2024-03-05T10:11:12Z stdout X msg", logline.ReasonBadTag, `"X" is neither P nor F`},
		{"2024-03-05T10:11:12Z stdout FF msg", logline.ReasonBadTag, `"FF" is neither P nor F`},
		{"2024-03-05T10:11:12Z stdout f msg", logline.ReasonBadTag, `"f" is neither P nor F`},
		{"2024-03-05T10:11:12Z stdout hello world", logline.ReasonBadTag, `"hello" is neither P nor F`},
		{"2024-13-05T10:11:12Z stdout F msg", logline.ReasonBadTimestamp, "month out of range"},
		{"yesterday stdout F msg", logline.ReasonBadTimestamp, `"yesterday"`},
		{" stdout F msg", logline.ReasonBadTimestamp, "empty"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.line), nil)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %s", tt.line, tt.reason)
			continue
		}
		var pe *logline.ParseError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %v is not an ErrMalformed *logline.ParseError", tt.line, err)
			continue
		}
		if pe.Reason != tt.reason || pe.Format != logline.FormatCRI || !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("Parse(%q) error %q (reason %q), want reason %q containing %q", tt.line, err, pe.Reason, tt.reason, tt.detail)
		}
		if tt.reason == logline.ReasonBadTimestamp && !errors.Is(err, logline.ErrTimestamp) {
			t.Errorf("Parse(%q) error %v does not wrap logline.ErrTimestamp", tt.line, err)
		}
	}
}

func TestParseNoAlloc(t *testing.T) {
	line := []byte(sampleLine)
	scratch := make([]byte, 0, 64)
	n := testing.AllocsPerRun(100, func() {
		if _, err := Parse(line, scratch); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Parse allocated %v times per line, want 0", n)
	}
}

func FuzzCRIParse(f *testing.F) {
	f.Add([]byte("2024-03-05T10:11:12.123456789Z"), true, true, []byte("F:x"), []byte("hello"))
	f.Add([]byte("2024-03-05T12:11:12.5+02:00"), false, false, []byte("P"), []byte(""))
	f.Add([]byte("2024-03-05T10:11:12Z"), true, false, []byte("F"), []byte(" lead\r"))
	f.Fuzz(func(t *testing.T, ts []byte, stdout, full bool, tag, msg []byte) {
		// Parse arbitrary bytes: never panic, errors are ParseErrors.
		for _, raw := range [][]byte{ts, msg, tag} {
			if l, err := Parse(raw, nil); err != nil {
				var pe *logline.ParseError
				if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse(%q): error %v is not a ParseError", raw, err)
				}
			} else if l.Stream != record.StreamStdout && l.Stream != record.StreamStderr {
				t.Fatalf("Parse(%q): stream %q", raw, l.Stream)
			}
		}

		// Round trip: a line built from valid parts parses back to them.
		nts, err := logline.NormalizeTS(ts, nil)
		if err != nil || bytes.IndexByte(ts, ' ') >= 0 {
			return
		}
		stream := record.StreamStderr
		if stdout {
			stream = record.StreamStdout
		}
		tagByte := byte('P')
		if full {
			tagByte = 'F'
		}
		fullTag := []byte{tagByte}
		if i := bytes.IndexByte(tag, ' '); i < 0 && len(tag) > 0 {
			fullTag = append(append(fullTag, ':'), tag...)
		}
		line := append(append(append(append(append([]byte{}, ts...), ' '), stream...), ' '), fullTag...)
		line = append(append(line, ' '), msg...)
		got, err := Parse(line, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		if !bytes.Equal(got.TS, nts) || got.Stream != stream || got.Partial != !full || !bytes.Equal(got.Msg, msg) {
			t.Fatalf("Parse(%q) = {%q %q %v %q}, want {%q %q %v %q}", line,
				got.TS, got.Stream, got.Partial, got.Msg, nts, stream, !full, msg)
		}
	})
}

// sampleLine is a typical containerd line (151 bytes).
const sampleLine = `2024-03-05T10:11:12.123456789Z stdout F {"level":"info","ts":"2024-03-05T10:11:12Z","msg":"request served","path":"/api/v1/items","status":200,"ms":12}`

func BenchmarkCRIParse(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"utc", sampleLine},
		{"offset", strings.Replace(sampleLine, "10:11:12.123456789Z", "12:11:12.123456789+02:00", 1)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			line := []byte(bc.line)
			scratch := make([]byte, 0, 64)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(line, scratch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
