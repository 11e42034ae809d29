package row

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

func collectorValue(l record.Line, src record.Source) []byte {
	b, _ := record.AppendJSON(nil, src.Fragment(), &l)
	return b
}

func TestDecodeCollectorRecords(t *testing.T) {
	src := record.Source{Namespace: "team-a", Pod: "web-1", PodUID: "u1", Container: "app", ContainerID: "c1", Node: "n1", File: "/f",
		Kubernetes: &record.Kubernetes{Image: "img", Labels: map[string]string{"app": "web", "tier": "fe"}, NamespaceLabels: map[string]string{"team": "a"}}}
	tests := []struct {
		name string
		line record.Line
		src  record.Source
	}{
		{"plain", record.Line{TS: []byte("2026-11-21T10:00:00.123456789Z"), Stream: "stdout", Message: []byte(`hello "x" \ é`), Offset: 42}, src},
		{"invalid utf8", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Stream: "stderr", Message: []byte("a\xffb"), Offset: 1}, src},
		{"split", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("chunk"), Split: true, SplitIndex: 2, SplitLast: true}, src},
		{"parse error and fields", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("raw"), ParseError: "cri: bad", Fields: []byte(`{"level":"warn","n":[1,2]}`)}, src},
		{"pipeline output", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("a\n b"), Lines: 2, FieldsError: "steps[1].json: bad \"x\"", Fields: []byte(`{"k":{"n":1}}`)}, src},
		{"no k8s, partial", record.Line{TS: []byte("2026-11-21T10:00:00+02:00"), Message: []byte("m")}, record.Source{Namespace: "n", Pod: "p", Container: "c", MetadataPartial: true}},
		// Escapes all the way (the bad-input corpus's lines of NULs, docs/reliability.md): a
		// decoder that searched for the closing quote at every escape never finished these.
		{"1 MiB of NULs", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte(strings.Repeat("\x00", 1<<20)), Split: true}, src},
		{"1 MiB of quotes and backslashes", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte(strings.Repeat(`"\`, 1<<19))}, src},
		{"1 MiB of ESC", record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte(strings.Repeat("\x1b[0m", 1<<18))}, src},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := collectorValue(tt.line, tt.src)
			var r Row
			if err := d.Decode(&r, v); err != nil {
				t.Fatal(err)
			}
			want, err := record.Decode(v)
			if err != nil {
				t.Fatal(err)
			}
			compare(t, &r, &want)
		})
	}
}

// compare checks a row against encoding/json's decoding of the same value.
func compare(t *testing.T, r *Row, w *record.Record) {
	t.Helper()
	if r.Time != w.Time.UnixMicro() {
		t.Errorf("ts %d, want %d", r.Time, w.Time.UnixMicro())
	}
	got := r.Record()
	if got.Message != w.Message || string(got.MessageBase64) != string(w.MessageBase64) || got.Stream != w.Stream ||
		got.Namespace != w.Namespace || got.Pod != w.Pod || got.PodUID != w.PodUID || got.Container != w.Container ||
		got.ContainerID != w.ContainerID || got.Node != w.Node || got.File != w.File || got.Offset != w.Offset ||
		got.ParseError != w.ParseError || got.Metadata != w.Metadata || got.FieldsError != w.FieldsError || got.Lines != w.Lines {
		t.Errorf("got  %+v\nwant %+v", got, *w)
	}
	if (got.Split == nil) != (w.Split == nil) || got.Split != nil && *got.Split != *w.Split {
		t.Errorf("split %+v, want %+v", got.Split, w.Split)
	}
	var wl map[string]string
	if w.Kubernetes != nil {
		wl = w.Kubernetes.Labels
	}
	if len(r.Labels) != len(wl) || !maps.Equal(r.Labels, wl) && len(wl) > 0 {
		t.Errorf("labels %v, want %v", r.Labels, wl)
	}
	if (w.Fields != nil) != (r.Fields != "") {
		t.Errorf("fields %q, want %v", r.Fields, w.Fields)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not json", `hello`, "want object"},
		{"v3", `{"v":3,"ts":"2026-11-21T10:00:00Z"}`, "unsupported record schema version"},
		{"v0", `{"v":0,"ts":"2026-11-21T10:00:00Z"}`, "unsupported record schema version"},
		{"v huge", `{"v":4294967298,"ts":"2026-11-21T10:00:00Z"}`, "unsupported record schema version"},
		{"lines not int", `{"v":2,"ts":"2026-11-21T10:00:00Z","lines":"3"}`, "lines:"},
		{"fields_error not string", `{"v":2,"ts":"2026-11-21T10:00:00Z","fields_error":{}}`, "fields_error:"},
		{"no v", `{"ts":"2026-11-21T10:00:00Z"}`, "unsupported record schema version"},
		{"no ts", `{"v":1,"message":"x"}`, "ts: missing"},
		{"bad ts", `{"v":1,"ts":"yesterday"}`, "ts:"},
		{"pod not string", `{"v":1,"ts":"2026-11-21T10:00:00Z","pod":5}`, "pod:"},
		{"offset float", `{"v":1,"ts":"2026-11-21T10:00:00Z","offset":1.5}`, "not an int64"},
		{"trailing", `{"v":1,"ts":"2026-11-21T10:00:00Z"} x`, "data after the record"},
		{"truncated", `{"v":1,"ts":"2026-11-21T10:00:00Z","message":"abc`, "unterminated string"},
		{"bad escape", `{"v":1,"ts":"2026-11-21T10:00:00Z","message":"\q"}`, "invalid escape"},
		{"bad base64", `{"v":1,"ts":"2026-11-21T10:00:00Z","message_base64":"!!"}`, "message_base64"},
		{"bad unknown", `{"v":1,"ts":"2026-11-21T10:00:00Z","x":[1,}`, "byte"},
		{"fields not object", `{"v":1,"ts":"2026-11-21T10:00:00Z","fields":[1]}`, "fields: want object"},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Row
			err := d.Decode(&r, []byte(tt.in))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			// A record without ts decodes with encoding/json (zero time); the archive needs a
			// time, so Decode rejects it (it is archived with a parse_error instead).
			if _, jerr := record.Decode([]byte(tt.in)); jerr == nil && tt.name != "no ts" {
				t.Fatalf("encoding/json accepts %s", tt.in)
			}
		})
	}
}

func TestDecodeAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	for _, in := range []string{
		` { "ts" : "2026-11-21T10:00:00Z" , "v" : 1 , "unknown" : {"a":[true,false,null,-1.5e3]} } `,
		`{"v":1,"ts":"2026-11-21T10:00:00Z","POD":"upper","pod":null,"split":{"index":3}}`,
		`{"v":1,"ts":"2026-11-21T10:00:00Z","message":"\ud83d\ude00 \ud800 \u00e9\n"}`,
		`{"v":2,"ts":"2026-11-21T10:00:00Z","fields":{"a":"b"},"fields_error":"e\u0001","lines":3,"LINES":4}`,
		`{"v":1,"ts":"2026-11-21T10:00:00Z","k8s":{"labels":{"a":"1"},"image":"x"},"k8s":{"labels":{"b":"2"}}}`,
	} {
		var r Row
		if err := NewDecoder().Decode(&r, []byte(in)); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		w, err := record.Decode([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		compare(t, &r, &w)
	}
}

// FuzzDecode checks the decoder against encoding/json: whatever record.Decode accepts, Decode
// accepts with the same fields; it never panics on anything else.
func FuzzDecode(f *testing.F) {
	src := record.Source{Namespace: "ns", Pod: "p", Container: "c", Node: "n", Kubernetes: &record.Kubernetes{Labels: map[string]string{"k": "v"}}}
	f.Add(collectorValue(record.Line{TS: []byte("2026-11-21T10:00:00.5Z"), Stream: "stdout", Message: []byte("hi\x01\"")}, src))
	f.Add(collectorValue(record.Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("\xff"), Split: true, Fields: []byte(`{"a":1}`)}, src))
	f.Add([]byte(`{"v":1,"ts":"2026-11-21T10:00:00Z","message":"\ud800\udc00","kafka":{"topic":"t","offset":3}}`))
	f.Add([]byte(`{"v":1,"ts":"2026-11-21T10:00:00Z","Split":{"Index":1,"LAST":true},"x":[{"y":"z"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Row
		err := NewDecoder().Decode(&r, in)
		w, jerr := record.Decode(in)
		if jerr != nil || w.Time.IsZero() {
			return // rejected by encoding/json, or without a time (which Decode rejects)
		}
		if err != nil {
			t.Fatalf("encoding/json accepts %q, Decode: %v", in, err)
		}
		compare(t, &r, &w)
		if r.MessageBytes != nil && base64.StdEncoding.EncodeToString(r.MessageBytes) != base64.StdEncoding.EncodeToString(w.MessageBase64) {
			t.Fatal("message bytes differ")
		}
		if r.Fields != "" && !json.Valid([]byte(r.Fields)) {
			t.Fatalf("fields %q not JSON", r.Fields)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	src := record.Source{Namespace: "team-a", Pod: "web-7d9f8b6c5-x2x9z", PodUID: "0b7e4d3c-2a1f-4e5d-9c8b-7a6f5e4d3c2b", Container: "app",
		ContainerID: "4f3c2b1a0f9e8d7c6b5a49382716051f4e3d2c1b0a9f8e7d6c5b4a3928170615", Node: "node-1", File: "/var/log/pods/team-a_web_0b7e/app/0.log",
		Kubernetes: &record.Kubernetes{Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"}}}
	v := collectorValue(record.Line{TS: []byte(time.Now().UTC().Format(time.RFC3339Nano)), Stream: "stdout",
		Message: []byte(`{"level":"info","ts":"2026-11-21T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12}`)}, src)
	d := NewDecoder()
	var r Row
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if err := d.Decode(&r, v); err != nil {
			b.Fatal(err)
		}
	}
}
