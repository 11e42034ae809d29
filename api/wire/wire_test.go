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
