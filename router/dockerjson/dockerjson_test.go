package dockerjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/logline"
)

const ts = "2024-03-05T10:11:12.123456789Z"

func TestParse(t *testing.T) {
	long := strings.Repeat("a\"b\\c", 16*1024/5)
	longJSON, _ := json.Marshal(long)
	tests := []struct {
		name, line, msg, stream, ts string
		partial                     bool
	}{
		{"docker default", `{"log":"hello world\n","stream":"stdout","time":"` + ts + `"}`, "hello world", "stdout", ts, false},
		{"stderr", `{"log":"oops\n","stream":"stderr","time":"` + ts + `"}`, "oops", "stderr", ts, false},
		{"empty message", `{"log":"\n","stream":"stdout","time":"` + ts + `"}`, "", "stdout", ts, false},
		{"empty partial", `{"log":"","stream":"stdout","time":"` + ts + `"}`, "", "stdout", ts, true},
		{"16 KiB partial", `{"log":` + string(longJSON) + `,"stream":"stdout","time":"` + ts + `"}`, long, "stdout", ts, true},
		{"escapes", `{"log":"tab\there \"q\" back\\\\slash \/ \b\f\r\u00e9\u20ac\n","stream":"stdout","time":"` + ts + `"}`,
			"tab\there \"q\" back\\\\slash / \b\f\r\u00e9\u20ac", "stdout", ts, false},
		{"html escapes from docker", `{"log":"\u003cb\u003e \u0026\n","stream":"stdout","time":"` + ts + `"}`, "<b> &", "stdout", ts, false},
		{"surrogate pair", `{"log":"\ud83d\ude00\n","stream":"stdout","time":"` + ts + `"}`, "😀", "stdout", ts, false},
		{"uppercase hex pair", `{"log":"\uD83D\uDE00","stream":"stdout","time":"` + ts + `"}`, "😀", "stdout", ts, true},
		{"lone high surrogate", `{"log":"a\ud83db\n","stream":"stdout","time":"` + ts + `"}`, "a\uFFFDb", "stdout", ts, false},
		{"lone low surrogate", `{"log":"\ude00\n","stream":"stdout","time":"` + ts + `"}`, "\uFFFD", "stdout", ts, false},
		{"high then non-surrogate escape", `{"log":"\ud83d\u0041","stream":"stdout","time":"` + ts + `"}`, "\uFFFDA", "stdout", ts, true},
		{"two highs", `{"log":"\ud83d\ud83d\ude00","stream":"stdout","time":"` + ts + `"}`, "\uFFFD😀", "stdout", ts, true},
		{"raw unicode", `{"log":"héllo 😀 日本\n","stream":"stdout","time":"` + ts + `"}`, "héllo 😀 日本", "stdout", ts, false},
		{"invalid utf-8 kept", "{\"log\":\"\xff\xfe\\n\",\"stream\":\"stdout\",\"time\":\"" + ts + "\"}", "\xff\xfe", "stdout", ts, false},
		{"crlf message", `{"log":"win\r\n","stream":"stdout","time":"` + ts + `"}`, "win\r", "stdout", ts, false},
		{"attrs", `{"log":"x\n","stream":"stdout","attrs":{"tag":"web","labels":["a",1,true,null,-1.5e3,{}]},"time":"` + ts + `"}`, "x", "stdout", ts, false},
		{"other order", `{"time":"` + ts + `","stream":"stderr","log":"x\n"}`, "x", "stderr", ts, false},
		{"whitespace", " {\n\t\"log\" : \"x\\n\" ,\r\n \"stream\":\"stdout\" , \"time\" : \"" + ts + "\" } \n", "x", "stdout", ts, false},
		{"offset time", `{"log":"x\n","stream":"stdout","time":"2024-03-05T12:11:12.5+02:00"}`, "x", "stdout", "2024-03-05T10:11:12.5Z", false},
		{"escaped time", `{"log":"x\n","stream":"stdout","time":"2024-03-05T10:11:12\u002e5Z"}`, "x", "stdout", "2024-03-05T10:11:12.5Z", false},
		{"escaped keys and stream", `{"l\u006fg":"x\n","stre\u0061m":"std\u006fut","time":"` + ts + `"}`, "x", "stdout", ts, false},
		{"duplicate: last wins", `{"log":1,"log":"x\n","stream":"stderr","stream":"stdout","time":"2000-01-01T00:00:00Z","time":"` + ts + `"}`, "x", "stdout", ts, false},
		{"extra member after time", `{"log":"x\n","stream":"stdout","time":"` + ts + `","x":[]}`, "x", "stdout", ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, scratch := range [][]byte{nil, make([]byte, 0, 64*1024)} {
				l, err := Parse([]byte(tt.line), scratch)
				if err != nil {
					t.Fatalf("Parse(%.80q): %v", tt.line, err)
				}
				if string(l.Msg) != tt.msg || l.Stream != tt.stream || string(l.TS) != tt.ts || l.Partial != tt.partial {
					t.Errorf("Parse(%.80q) = {%q %q %v %.80q}, want {%q %q %v %.80q}",
						tt.line, l.TS, l.Stream, l.Partial, l.Msg, tt.ts, tt.stream, tt.partial, tt.msg)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line, reason, detail string
	}{
		{``, logline.ReasonBadJSON, "unexpected end of line at byte 0: expected '{'"},
		{`[]`, logline.ReasonBadJSON, "expected '{'"},
		{`{"log":"x\n","stream":"stdout","time":"` + ts + `"`, logline.ReasonBadJSON, "expected ',' or '}'"},
		{`{"log":"x\n","stream":"stdout","time":"` + ts + `"}}`, logline.ReasonBadJSON, "data after the object"},
		{`{"log":"x\n","stream":"stdout","time":"` + ts + `"} x`, logline.ReasonBadJSON, "data after the object"},
		{`{"log":"x\n,"stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadJSON, "expected ',' or '}'"},
		{`{"log":"x` + "\n" + `","stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadJSON, "control character 0x0a"},
		{`{"log":"x\q","stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadJSON, `invalid escape "\\q"`},
		{`{"log":"x\u12","stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadJSON, `invalid \u escape`},
		{`{"log":"x\ud83d\uZZZZ","stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadJSON, `invalid \u escape`},
		{`{"log":"unterminated`, logline.ReasonBadJSON, "unterminated string"},
		{`{"log":"x\`, logline.ReasonBadJSON, "unterminated escape"},
		{`{log:"x"}`, logline.ReasonBadJSON, "expected a member name"},
		{`{"log" "x"}`, logline.ReasonBadJSON, "expected ':'"},
		{`{"log":"x",}`, logline.ReasonBadJSON, "expected a member name"},
		{`{"a":01,"log":"x"}`, logline.ReasonBadJSON, "expected ',' or '}'"},
		{`{"a":-,"log":"x"}`, logline.ReasonBadJSON, "invalid number"},
		{`{"a":1.,"log":"x"}`, logline.ReasonBadJSON, "invalid number"},
		{`{"a":1e,"log":"x"}`, logline.ReasonBadJSON, "invalid number"},
		{`{"a":tru,"log":"x"}`, logline.ReasonBadJSON, "expected true"},
		{`{"a":[1,],"log":"x"}`, logline.ReasonBadJSON, "expected a value"},
		{`{"a":[1 2],"log":"x"}`, logline.ReasonBadJSON, "expected ',' or ']'"},
		{`{"a":{"b"},"log":"x"}`, logline.ReasonBadJSON, "expected ':'"},
		{`{"a":"` + "\x01" + `"}`, logline.ReasonBadJSON, "control character 0x01"},
		{`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, logline.ReasonBadJSON, "nesting deeper than 10000"},
		{`{}`, logline.ReasonMissingLog, `no "log" member`},
		{`{"stream":"stdout","time":"` + ts + `"}`, logline.ReasonMissingLog, `no "log" member`},
		{`{"log":null,"stream":"stdout","time":"` + ts + `"}`, logline.ReasonBadMember, `"log" is not a string`},
		{`{"log":"x\n","time":"` + ts + `"}`, logline.ReasonMissingStream, `no "stream" member`},
		{`{"log":"x\n","stream":1,"time":"` + ts + `"}`, logline.ReasonBadMember, `"stream" is not a string`},
		{`{"log":"x\n","stream":"stdin","time":"` + ts + `"}`, logline.ReasonUnknownStream, `"\"stdin\""`},
		{`{"log":"x\n","stream":"","time":"` + ts + `"}`, logline.ReasonUnknownStream, `"\"\""`},
		{`{"log":"x\n","stream":"stdout"}`, logline.ReasonMissingTime, `no "time" member`},
		{`{"log":"x\n","stream":"stdout","time":1}`, logline.ReasonBadMember, `"time" is not a string`},
		{`{"log":"x\n","stream":"stdout","time":"yesterday"}`, logline.ReasonBadTimestamp, `"yesterday"`},
		{`{"log":"x\n","stream":"stdout","time":"2024-02-30T00:00:00Z"}`, logline.ReasonBadTimestamp, "day out of range"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.line), nil)
		if err == nil {
			t.Errorf("Parse(%.80q): no error, want %s", tt.line, tt.reason)
			continue
		}
		var pe *logline.ParseError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) {
			t.Errorf("Parse(%.80q) error %v is not an ErrMalformed *logline.ParseError", tt.line, err)
			continue
		}
		if pe.Reason != tt.reason || pe.Format != logline.FormatDocker || !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("Parse(%.80q) error %q (reason %q), want reason %q containing %q", tt.line, err, pe.Reason, tt.reason, tt.detail)
		}
	}
	// One level less than the limit is fine.
	ok := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,"log":"x","stream":"stdout","time":"` + ts + `"}`
	if _, err := Parse([]byte(ok), nil); err != nil {
		t.Errorf("Parse of nesting depth %d: %v", maxDepth, err)
	}
}

func TestParseNoAlloc(t *testing.T) {
	for _, line := range []string{
		sampleLine,
		`{"log":"x\n","stream":"stdout","attrs":{"tag":"web"},"time":"` + ts + `"}`,
		`{"time":"2024-03-05T12:11:12.5+02:00","stream":"stderr","log":"\ud83d\ude00 \"x\"\n"}`,
	} {
		b := []byte(line)
		scratch := make([]byte, 0, 1024)
		n := testing.AllocsPerRun(100, func() {
			if _, err := Parse(b, scratch); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("Parse(%.60q) allocated %v times, want 0", line, n)
		}
	}
}

// TestMsgCapacity checks that appending to Msg cannot overwrite TS, which may follow it in scratch.
func TestMsgCapacity(t *testing.T) {
	line := []byte(`{"log":"x\n","stream":"stdout","time":"2024-03-05T12:11:12.5+02:00"}`)
	l, err := Parse(line, make([]byte, 0, 128))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(l.Msg, "yyyyyyyyyyyyyyyyyyyyyyyyy"...)
	if string(l.TS) != "2024-03-05T10:11:12.5Z" {
		t.Errorf("TS = %q after appending to Msg", l.TS)
	}
}

func FuzzDockerParse(f *testing.F) {
	for _, s := range []string{
		sampleLine,
		`{"log":"x","stream":"stderr","attrs":{"a":[1,2.5e-3,null,true,false,"\u00e9"]},"time":"2024-03-05T12:11:12.5+02:00"}`,
		`{"time":"` + ts + `","stream":"stdout","log":"\ud83d\ude00\ud83d\u0041\ude00\n"}`,
		` {"log" : "\"\\\/\b\f\n\r\t" , "stream":"stdout","time":"` + ts + `"} `,
		`{"log":"x\n","stream":"stdout","time":"` + ts + `","log":"y"}`,
		`{"log":"x\n","stream":"stdout","time":"2024-03-05T10:11:12\u002e5Z"}`,
		`{"log":"a\u12`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := string(line)
		l, err := Parse(line, nil)
		if string(line) != orig {
			t.Fatal("Parse modified its input")
		}
		// The general path must agree with the fast path wherever the fast path applies.
		g, gerr := parseGeneral(line, nil)
		if (err == nil) != (gerr == nil) || (err != nil && err.Error() != gerr.Error()) ||
			!bytes.Equal(l.Msg, g.Msg) || !bytes.Equal(l.TS, g.TS) || l.Stream != g.Stream || l.Partial != g.Partial {
			t.Fatalf("Parse = {%q %q %v %q} %v; parseGeneral = {%q %q %v %q} %v",
				l.TS, l.Stream, l.Partial, l.Msg, err, g.TS, g.Stream, g.Partial, g.Msg, gerr)
		}

		valid := json.Valid(line)
		var pe *logline.ParseError
		if err != nil {
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			isObject := bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), []byte("{"))
			if (pe.Reason == logline.ReasonBadJSON) != (!valid || !isObject) {
				t.Fatalf("reason %q for a line json.Valid says is %v: %v", pe.Reason, valid, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Parse accepted invalid JSON: %q", line)
		}
		if !utf8.Valid(line) {
			return // encoding/json replaces invalid bytes with U+FFFD; Parse keeps them.
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("Parse accepted what encoding/json rejects: %v", err)
		}
		wantMsg, _ := m["log"].(string)
		if !l.Partial {
			wantMsg = strings.TrimSuffix(wantMsg, "\n")
		} else if strings.HasSuffix(wantMsg, "\n") {
			t.Fatalf("Partial with a log value ending in newline")
		}
		if string(l.Msg) != wantMsg || l.Stream != m["stream"] {
			t.Fatalf("Parse = {%q %q}, encoding/json = {%q %q}", l.Msg, l.Stream, wantMsg, m["stream"])
		}
		if want, err := logline.NormalizeTS([]byte(m["time"].(string)), nil); err != nil || !bytes.Equal(l.TS, want) {
			t.Fatalf("TS = %q, encoding/json time normalizes to %q (%v)", l.TS, want, err)
		}
		if l.Stream != record.StreamStdout && l.Stream != record.StreamStderr {
			t.Fatalf("stream %q", l.Stream)
		}
	})
}

// FuzzDockerRoundTrip builds lines as docker would from arbitrary parts (and in other member
// orders, with attrs), so the fast path meets every message and timestamp.
func FuzzDockerRoundTrip(f *testing.F) {
	f.Add("hello \"world\"\t\u2028 <b>&", true, true, "2024-03-05T10:11:12.123456789Z", 0)
	f.Add("\xff\xfe\x00\x1f😀", false, false, "2024-03-05T12:11:12.5+02:00", 1)
	f.Add("", true, false, "2024-02-29T00:00:00Z", 2)
	f.Fuzz(func(t *testing.T, msg string, stdout, newline bool, ts string, layout int) {
		stream := record.StreamStderr
		if stdout {
			stream = record.StreamStdout
		}
		logValue := msg
		if newline {
			logValue += "\n"
		}
		lv, _ := json.Marshal(logValue)
		tv, _ := json.Marshal(ts)
		var line string
		switch layout % 3 {
		case 0:
			line = `{"log":` + string(lv) + `,"stream":"` + stream + `","time":` + string(tv) + `}`
		case 1:
			line = `{"log":` + string(lv) + `,"stream":"` + stream + `","attrs":{"k":["v",1]},"time":` + string(tv) + `}`
		default:
			line = `{"time":` + string(tv) + `, "stream":"` + stream + `", "log":` + string(lv) + `}`
		}
		l, err := Parse([]byte(line), nil)
		var tsBack string
		if err := json.Unmarshal(tv, &tsBack); err != nil {
			t.Fatal(err)
		}
		wantTS, tsErr := logline.NormalizeTS([]byte(tsBack), nil)
		if tsErr != nil {
			var pe *logline.ParseError
			if !errors.As(err, &pe) || pe.Reason != logline.ReasonBadTimestamp {
				t.Fatalf("Parse(%q) = %v, want a bad timestamp error", line, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		// encoding/json wrote invalid UTF-8 as U+FFFD; what it reads back is the reference.
		var want string
		if err := json.Unmarshal(lv, &want); err != nil {
			t.Fatal(err)
		}
		wantPartial := !strings.HasSuffix(want, "\n")
		want = strings.TrimSuffix(want, "\n")
		if string(l.Msg) != want || l.Stream != stream || l.Partial != wantPartial || !bytes.Equal(l.TS, wantTS) {
			t.Fatalf("Parse(%q) = {%q %q %v %q}, want {%q %q %v %q}", line,
				l.TS, l.Stream, l.Partial, l.Msg, wantTS, stream, wantPartial, want)
		}
	})
}

// sampleLine is a docker line of 201 bytes carrying the message of the CRI benchmark (21 escapes).
const sampleLine = `{"log":"{\"level\":\"info\",\"ts\":\"2024-03-05T10:11:12Z\",\"msg\":\"request served\",\"path\":\"/api/v1/items\",\"status\":200,\"ms\":12}\n","stream":"stdout","time":"2024-03-05T10:11:12.123456789Z"}`

func BenchmarkDockerParse(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"jsonmsg", sampleLine}, // docker's member order, a JSON message: 21 escapes
		{"plain", `{"log":"GET /api/v1/items HTTP/1.1 200 1534 12ms user-agent=kube-probe/1.30 request-id=6f1c2d7e-5b8a-4c4e-9a1b-0c2d3e4f5a6b\n","stream":"stdout","time":"2024-03-05T10:11:12.123456789Z"}`},
		// attrs (docker --log-opt labels/tag) leaves the fast path after the log value.
		{"jsonmsg-attrs", strings.Replace(sampleLine, `"time"`, `"attrs":{"tag":"web","env":"prod"},"time"`, 1)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			line := []byte(bc.line)
			scratch := make([]byte, 0, 1024)
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
