package logview

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNeutralise(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tkept", "tab\tkept"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", `\x1b]8;;http://evil\x1b\link\x1b]8;;\x1b\`},
		{"bell\a", `bell\x07`},
		{"over\rwrite", `over\rwrite`},
		{"two\nlines", `two\nlines`},
		{"nul\x00", `nul\x00`},
		{"del\x7f", `del\x7f`},
		{"8-bit csi \u009b2J", `8-bit csi \u009b2J`},
		{"osc \u009d0;t\u009c", `osc \u009d0;t\u009c`},
		{"bidi \u202eoverride\u202c", `bidi \u202eoverride\u202c`},
		{"isolate \u2066x\u2069", `isolate \u2066x\u2069`},
		{"mark \u200f\u061c", `mark \u200f\u061c`},
		{"invalid \xff\xfe utf-8", `invalid \xff\xfe utf-8`},
		{"truncated \xe2\x82", `truncated \xe2\x82`},
		{"unicode ok: é ü 日本 🙂 \u00a0", "unicode ok: é ü 日本 🙂 \u00a0"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(Neutralise(nil, tt.in)); got != tt.want {
			t.Errorf("Neutralise(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// safeOutput reports whether s could control a terminal: a control character other than tab
// and newline, a C1 or bidi control, or invalid UTF-8.
func unsafeOutput(s string, newlines bool) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r == '\n' && newlines {
			continue
		}
		if unsafeRune(r) {
			return true
		}
	}
	return false
}

func FuzzNeutralise(f *testing.F) {
	for _, s := range []string{"", "a", "\x1b[2J", "\u009b", "\xff", "\u202e", "\r\n", "\x1b]0;x\x07", "é\xc3", "\xe2\x80\xae"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(Neutralise(nil, s))
		if unsafeOutput(out, false) {
			t.Fatalf("Neutralise(%q) = %q holds a control", s, out)
		}
		if !unsafeOutput(s, true) && !strings.Contains(s, "\n") && out != s {
			t.Fatalf("Neutralise changed safe text %q to %q", s, out)
		}
		// The text printer never lets one through either, whatever the pod name or message.
		var b bytes.Buffer
		p := New(&b, Options{Format: Text})
		if err := p.Print(&Line{Pod: s, Container: s, Message: s}); err != nil {
			t.Fatal(err)
		}
		_ = p.Flush()
		if unsafeOutput(b.String(), true) {
			t.Fatalf("text output of %q holds a control: %q", s, b.String())
		}
	})
}

func FuzzSafeJSON(f *testing.F) {
	for _, s := range []string{`{"message":"\u001b[2J"}`, "{\"message\":\"\u009b\u202e\"}", "{\"m\":\"\xff\"}", "{\n\"a\":\t1}", `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		out := SafeJSON(nil, v)
		if unsafeOutput(string(out), false) {
			t.Fatalf("SafeJSON(%q) = %q holds a control", v, out)
		}
		if !json.Valid(v) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("SafeJSON(%q) = %q is not valid JSON", v, out)
		}
		var a, b any
		_ = json.Unmarshal(v, &a)
		_ = json.Unmarshal(out, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("SafeJSON changed the value: %s -> %s", ja, jb)
		}
	})
}

func TestText(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123e6, time.UTC)
	lines := []Line{
		{Time: at, Pod: "web-1", Container: "app", Stream: "stdout", Message: "one"},
		{Time: at, Pod: "checkout-7d9f", Container: "sidecar", Stream: "stderr", Message: "two\nsecond line\r\nthird"},
		{Time: at, Pod: "web-1", Container: "app", Stream: "stdout", Message: "three"},
	}
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"text", Options{Format: Text}, "" +
			"2026-11-21T10:00:00.123Z web-1 app   one\n" +
			"2026-11-21T10:00:00.123Z checkout-7d9f sidecar ! two\n" +
			"                                                 second line\n" +
			"                                                 third\n" +
			"2026-11-21T10:00:00.123Z web-1         app       three\n"},
		{"colour", Options{Format: Text, Color: true}, "" +
			"\x1b[2m2026-11-21T10:00:00.123Z\x1b[0m \x1b[31mweb-1 \x1b[0m\x1b[2mapp\x1b[0m   one\n" +
			"\x1b[2m2026-11-21T10:00:00.123Z\x1b[0m \x1b[32mcheckout-7d9f \x1b[0m\x1b[2msidecar\x1b[0m ! two\n" +
			"                                                 second line\n" +
			"                                                 third\n" +
			"\x1b[2m2026-11-21T10:00:00.123Z\x1b[0m \x1b[31mweb-1         \x1b[0m\x1b[2mapp    \x1b[0m   three\n"},
		{"raw", Options{Format: Raw}, "one\ntwo\nsecond line\r\nthird\nthree\n"},
		{"raw on a terminal", Options{Format: Raw, Terminal: true}, "one\ntwo\nsecond line\nthird\nthree\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := New(&b, tt.opt)
			for i := range lines {
				if err := p.Print(&lines[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Fatalf("got\n%s\nwant\n%s\n(%q)", b.String(), tt.want, b.String())
			}
		})
	}
}

func TestRawExactBytes(t *testing.T) {
	var b bytes.Buffer
	p := New(&b, Options{Format: Raw})
	_ = p.Print(&Line{Message: "bad \ufffd", Exact: []byte("bad \xff")})
	_ = p.Flush()
	if b.String() != "bad \xff\n" {
		t.Fatalf("raw to a pipe: %q, want the exact bytes", b.String())
	}
}

// BenchmarkText measures the text printer per line (a 120-byte message, two pods): what a
// terminal view costs on top of reading.
func BenchmarkText(b *testing.B) {
	lines := []Line{
		{Time: time.Now(), Pod: "checkout-7d9f-x2k4p", Container: "app", Stream: "stdout", Message: strings.Repeat("GET /cart 200 12ms user=42 ", 4) + "trace=4bf92f3577b34da6"},
		{Time: time.Now(), Pod: "web-5c8d-9qz7t", Container: "nginx", Stream: "stderr", Message: strings.Repeat("upstream timed out ", 6)},
	}
	for _, c := range []struct {
		name string
		opt  Options
	}{{"plain", Options{Format: Text}}, {"colour", Options{Format: Text, Color: true}}, {"json", Options{Format: JSON}}} {
		b.Run(c.name, func(b *testing.B) {
			rec := []byte(`{"v":2,"ts":"2026-11-21T10:00:00Z","stream":"stdout","message":"` + lines[0].Message + `","namespace":"shop","pod":"checkout-7d9f-x2k4p","container":"app"}`)
			lines[0].Record, lines[1].Record = rec, rec
			p := New(io.Discard, c.opt)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = p.Print(&lines[i&1])
			}
			_ = p.Flush()
		})
	}
}
