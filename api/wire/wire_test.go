package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/api/live"
)

func TestCleanValue(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{"{\n\"a\": 1\r\n}", `{"a":1}`, true},
		{`{"a":1},"cursor":"forged"`, "", false},
		{`{"a":`, "", false},
		{"", "", false},
		{"not json", "", false},
	}
	var scratch bytes.Buffer
	for _, tt := range tests {
		got, ok := CleanValue([]byte(tt.in), &scratch)
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("CleanValue(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestNDJSONLinesParse checks that every NDJSON event is one line of valid JSON.
func TestNDJSONLinesParse(t *testing.T) {
	var e NDJSONEncoder
	var b []byte
	b = e.Record(b, []byte("CUR"), 2, 7, []byte(`{"v":1}`))
	b = e.Skipped(b, []byte("CUR"), live.Skip{Partition: 1, From: 3, To: 9, Count: 6})
	b = e.Heartbeat(b, []byte("CUR"), time.Unix(0, 0))
	b = e.End(b, "shutdown", []byte(`{"code":"x"}`))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["type"] == nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestSSEFraming(t *testing.T) {
	var e SSEEncoder
	b := e.Record(nil, []byte("C1"), 0, 0, []byte(`{"v":1}`))
	b = e.Skipped(b, []byte("C2"), live.Skip{Count: 1})
	b = e.Heartbeat(b, []byte("C3"), time.Unix(0, 0))
	b = e.End(b, "limit", nil)
	want := "id: C1\ndata: {\"v\":1}\n\n" +
		"event: skipped\nid: C2\ndata: {\"partition\":0,\"from\":0,\"to\":0,\"count\":1}\n\n" +
		": heartbeat 1970-01-01T00:00:00Z\nid: C3\n\n" +
		"event: end\ndata: {\"reason\":\"limit\"}\n\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}

func TestValid(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `true`, `false`, `null`, ` {"a" : [1, "x\u00e9\n", {"b":null}]} `,
		`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `01`, `1.`, `.5`, `-`, `1e`, `"\x"`, "\"\x01\"", `"\u12"`, `tru`, `nulll`,
		`{} {}`, `"unterminated`, `[`, `{"a":1`, "\xff", `"` + "\xff" + `"`, `{"v":1},"cursor":"forged"`, ``, ` `,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	}
	for _, c := range cases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.40q) = %v, json.Valid = %v", c, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"v":1,"message":"a\"b\\c\u0041","n":-1.5E+3,"a":[true,false,null]}`, `[1,]`, `"\ud800"`, "01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	v := []byte(`{"v":1,"ts":"2026-11-21T10:00:00.123456789Z","stream":"stdout","message":"GET /api/v1/items?page=2 200 12.3ms \"Mozilla/5.0\" user=42 trace=4bf92f3577b34da6a3ce929d0e0e4736","namespace":"shop","pod":"web-5d8f7c9b6-abcde","pod_uid":"0b5c9d2e","container":"app","node":"node-1","offset":123456}`)
	b.Run("wire.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			Valid(v)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			json.Valid(v)
		}
	})
}
