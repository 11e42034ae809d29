package record

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendJSONRoundTrip(t *testing.T) {
	src := &Source{
		Namespace: "team-a", Pod: "web-1", PodUID: "uid-1", Container: "app",
		ContainerID: "abc123", Node: "node-1", File: "/var/log/pods/team-a_web-1_uid-1/app/0.log",
		Kubernetes: &Kubernetes{
			Image: "nginx:1", Labels: map[string]string{"b": "2", "a": "1"},
			OwnerKind: "Deployment", OwnerName: "web", NamespaceLabels: map[string]string{"team": "a"},
		},
	}
	frag := src.Fragment()
	tests := []struct {
		name string
		line Line
		want Record
	}{
		{
			name: "plain",
			line: Line{TS: []byte("2026-11-21T10:00:00.123456789Z"), Stream: "stdout", Message: []byte(`hello "world"` + "\t\x01"), Offset: 42},
			want: Record{Message: "hello \"world\"\t\x01", Stream: "stdout", Offset: 42},
		},
		{
			name: "invalid utf8",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Stream: "stderr", Message: []byte("a\xffb\xc3"), Offset: 7},
			want: Record{Message: "a\ufffdb\ufffd", MessageBase64: []byte("a\xffb\xc3"), Stream: "stderr", Offset: 7},
		},
		{
			name: "split and parse error",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("raw"), Split: true, SplitIndex: 3, SplitLast: true, ParseError: "cri: no stream"},
			want: Record{Message: "raw", Split: &Split{Index: 3, Last: true}, ParseError: "cri: no stream"},
		},
		{
			name: "fields",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("x"), Fields: []byte(`{"level":"info"}`)},
			want: Record{Message: "x", Fields: map[string]any{"level": "info"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, invalid := AppendJSON(nil, frag, &tt.line)
			if invalid != (tt.want.MessageBase64 != nil) {
				t.Fatalf("invalidUTF8 = %v", invalid)
			}
			if !json.Valid(b) {
				t.Fatalf("not valid JSON: %s", b)
			}
			r, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			ts, _ := time.Parse(time.RFC3339Nano, string(tt.line.TS))
			if !r.Time.Equal(ts) {
				t.Errorf("ts = %v, want %v", r.Time, ts)
			}
			if r.Message != tt.want.Message || !bytes.Equal(r.MessageBase64, tt.want.MessageBase64) || r.Stream != tt.want.Stream || r.Offset != tt.want.Offset {
				t.Errorf("got %+v, want %+v", r, tt.want)
			}
			if r.Namespace != "team-a" || r.Pod != "web-1" || r.PodUID != "uid-1" || r.Container != "app" || r.ContainerID != "abc123" || r.Node != "node-1" || r.File != src.File {
				t.Errorf("source fields: %+v", r)
			}
			if r.Kubernetes == nil || r.Kubernetes.Labels["a"] != "1" || r.Kubernetes.OwnerName != "web" || r.Kubernetes.NamespaceLabels["team"] != "a" {
				t.Errorf("k8s: %+v", r.Kubernetes)
			}
			if (r.Split == nil) != (tt.want.Split == nil) || r.Split != nil && *r.Split != *tt.want.Split {
				t.Errorf("split = %+v", r.Split)
			}
			if r.ParseError != tt.want.ParseError || len(r.Fields) != len(tt.want.Fields) {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func TestDecodeRejectsOtherVersion(t *testing.T) {
	if _, err := Decode([]byte(`{"v":2,"ts":"2026-11-21T10:00:00Z","message":""}`)); err == nil {
		t.Fatal("want error for v2")
	}
	if _, err := Decode([]byte(`{`)); err == nil {
		t.Fatal("want error for bad JSON")
	}
	if _, err := Decode([]byte(`{"v":1,"message":"x","namespace":"a","pod":"p","container":"c","offset":0}`)); err == nil {
		t.Fatal("want error for a record without ts")
	}
}

func TestPartialMetadata(t *testing.T) {
	frag := (&Source{Namespace: "n", Pod: "p", Container: "c", MetadataPartial: true}).Fragment()
	b, _ := AppendJSON(nil, frag, &Line{TS: []byte("2026-11-21T10:00:00Z")})
	r, err := Decode(b)
	if err != nil || r.Metadata != MetadataPartial || r.Kubernetes != nil {
		t.Fatalf("%v %+v", err, r)
	}
}

// FuzzAppendString checks that any bytes become valid JSON that decodes to what encoding/json
// makes of the same bytes, and that validity is reported exactly.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\n\r\t\x00\x1f", "\xff", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "é€😀", "\xe2\x82"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, valid := AppendString(nil, in)
		if valid != utf8.Valid(in) {
			t.Fatalf("valid = %v for %q", valid, in)
		}
		var got, want string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		ref, _ := json.Marshal(string(in))
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("got %q want %q", got, want)
		}
		bs, _ := AppendString(nil, string(in))
		if !bytes.Equal(bs, b) {
			t.Fatalf("string and []byte encodings differ")
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	frag := (&Source{Namespace: "team-a", Pod: "web-7d9f8b6c5-x2x9z", PodUID: "0b7e4d3c-2a1f-4e5d-9c8b-7a6f5e4d3c2b", Container: "app", ContainerID: "4f3c2b1a0f9e8d7c6b5a49382716051f4e3d2c1b0a9f8e7d6c5b4a3928170615", Node: "node-1", File: "/var/log/pods/team-a_web_0b7e/app/0.log"}).Fragment()
	l := Line{TS: []byte("2026-11-21T10:00:00.123456789Z"), Stream: "stdout", Message: []byte(`{"level":"info","ts":"2026-11-21T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12}`)}
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(l.Message)))
	for b.Loop() {
		buf, _ = AppendJSON(buf[:0], frag, &l)
	}
}
