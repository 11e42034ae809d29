package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
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
		{
			name: "fields error",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("{oops"), FieldsError: "steps[0].json: invalid character 'o' \"x\"\x01"},
			want: Record{Message: "{oops", FieldsError: "steps[0].json: invalid character 'o' \"x\"\x01"},
		},
		{
			name: "multiline",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("a\n  at b\n  at c"), Lines: 3, Fields: []byte(`{}`)},
			want: Record{Message: "a\n  at b\n  at c", Lines: 3, Fields: map[string]any{}},
		},
		{
			name: "one line is not marked",
			line: Line{TS: []byte("2026-11-21T10:00:00Z"), Message: []byte("a"), Lines: 1},
			want: Record{Message: "a"},
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
			if r.V != SchemaVersion || r.ParseError != tt.want.ParseError || !reflect.DeepEqual(r.Fields, tt.want.Fields) ||
				r.FieldsError != tt.want.FieldsError || r.Lines != tt.want.Lines {
				t.Errorf("got %+v", r)
			}
		})
	}
}

// TestDecodeVersions: readers accept versions 1 and 2 (topics keep version 1 records after
// an upgrade) and refuse the others with ErrUnsupportedVersion.
func TestDecodeVersions(t *testing.T) {
	for _, tt := range []struct {
		v  string
		ok bool
	}{{"1", true}, {"2", true}, {"0", false}, {"3", false}, {"-1", false}, {`"2"`, false}} {
		r, err := Decode([]byte(`{"v":` + tt.v + `,"ts":"2026-11-21T10:00:00Z","message":"m","fields":{"a":1}}`))
		if (err == nil) != tt.ok {
			t.Errorf("v=%s: err = %v, want ok=%v", tt.v, err, tt.ok)
		}
		if err == nil && (r.Message != "m" || r.Fields["a"] != 1.0) {
			t.Errorf("v=%s: %+v", tt.v, r)
		}
		if err != nil && tt.v != `"2"` && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("v=%s: err = %v, want ErrUnsupportedVersion", tt.v, err)
		}
	}
	for h, ok := range map[string]bool{"logrouter.v1": true, "logrouter.v2": true, "logrouter.v3": false, "logrouter.v0": false, "": false, "logrouter.v2 ": false} {
		if SupportedSchemaHeader([]byte(h)) != ok {
			t.Errorf("SupportedSchemaHeader(%q) = %v", h, !ok)
		}
	}
	if string(SchemaHeaderValue) != "logrouter.v2" || SchemaVersion != 2 {
		t.Errorf("schema %d header %q, want 2 and logrouter.v2", SchemaVersion, SchemaHeaderValue)
	}
}

func TestDecodeRejectsBadValues(t *testing.T) {
	if _, err := Decode([]byte(`{"v":2,"ts":"2026-11-21T10:00:00Z","message":"","fields":[1]}`)); err == nil {
		t.Fatal("want error for fields that are not an object")
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

// The cluster is written only when set, and read back.
func TestCluster(t *testing.T) {
	for _, cluster := range []string{"", "eu-1", "prod.eu-west-1"} {
		frag := (&Source{Namespace: "n", Pod: "p", Container: "c", Node: "node-1", Cluster: cluster}).Fragment()
		b, _ := AppendJSON(nil, frag, &Line{TS: []byte("2026-11-21T10:00:00Z")})
		r, err := Decode(b)
		if err != nil || r.Cluster != cluster || r.Node != "node-1" {
			t.Fatalf("%q: %v %+v", cluster, err, r)
		}
		if written := bytes.Contains(b, []byte(`"cluster"`)); written != (cluster != "") {
			t.Fatalf("%q: cluster member written = %v: %s", cluster, written, b)
		}
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

// FuzzAppendJSONFields: a value with pipeline output (a fields object encoded with
// AppendString the way pipeline.AppendFieldsJSON does, fields_error, lines) is valid JSON,
// decodes back to exactly those fields, and stays within MaxValueLen plus Line.ExtraLen.
func FuzzAppendJSONFields(f *testing.F) {
	f.Add([]byte("msg"), "level", "info", "k2", "v\x01\"", "", 0)
	f.Add([]byte("a\n b"), "", "", "", "", "steps[0].json: unexpected end", 2)
	f.Add([]byte("\xff"), "\xff", "\xed\xa0\x80", "level", "level", "\x00", 1<<30)
	f.Add([]byte(""), "fields", "{", "v", "}", "", -1)
	frag := (&Source{Namespace: "ns", Pod: "p", Container: "c", Node: "n"}).Fragment()
	f.Fuzz(func(t *testing.T, msg []byte, k1, v1, k2, v2, ferr string, lines int) {
		want := map[string]any{}
		var fields []byte
		if k1 != "" || k2 != "" {
			fields = append(fields, '{')
			for i, kv := range [][2]string{{k1, v1}, {k2, v2}} {
				if i > 0 {
					fields = append(fields, ',')
				}
				fields, _ = AppendString(fields, kv[0])
				fields = append(fields, ':')
				fields, _ = AppendString(fields, kv[1])
				// What a JSON reader makes of the key and value (U+FFFD for invalid UTF-8;
				// the later of duplicate keys wins).
				var k, v string
				kb, _ := json.Marshal(kv[0])
				vb, _ := json.Marshal(kv[1])
				_ = json.Unmarshal(kb, &k)
				_ = json.Unmarshal(vb, &v)
				want[k] = v
			}
			fields = append(fields, '}')
		}
		l := Line{TS: []byte("2026-12-01T10:00:00.123456789Z"), Stream: "stdout", Message: msg, Offset: 9,
			Fields: fields, FieldsError: ferr, Lines: lines}
		b, _ := AppendJSON(nil, frag, &l)
		if !json.Valid(b) {
			t.Fatalf("not valid JSON: %q", b)
		}
		if max := MaxValueLen(len(msg), len(frag)+l.ExtraLen()); len(b) > max {
			t.Fatalf("value %d bytes > MaxValueLen+ExtraLen %d", len(b), max)
		}
		r, err := Decode(b)
		if err != nil {
			t.Fatalf("%v: %q", err, b)
		}
		if fields == nil {
			want = nil
		}
		var got map[string]any
		if r.Fields != nil {
			got = r.Fields
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fields %#v, want %#v (%q)", got, want, b)
		}
		var wantErr string
		eb, _ := json.Marshal(ferr)
		_ = json.Unmarshal(eb, &wantErr)
		if r.FieldsError != wantErr {
			t.Fatalf("fields_error %q, want %q", r.FieldsError, wantErr)
		}
		wantLines := lines
		if lines <= 1 {
			wantLines = 0
		}
		if r.Lines != wantLines {
			t.Fatalf("lines %d, want %d (%q)", r.Lines, wantLines, b)
		}
		if !bytes.Contains(b, []byte(`{"v":`+strconv.Itoa(SchemaVersion)+`,`)) {
			t.Fatalf("no version: %q", b)
		}
	})
}

// BenchmarkAppendJSONFields: the value of a line a pipeline parsed (a pre-encoded fields
// object of seven members) costs one more copy over BenchmarkAppendJSON.
func BenchmarkAppendJSONFields(b *testing.B) {
	frag := (&Source{Namespace: "team-a", Pod: "web-7d9f8b6c5-x2x9z", PodUID: "0b7e4d3c-2a1f-4e5d-9c8b-7a6f5e4d3c2b", Container: "app", ContainerID: "4f3c2b1a0f9e8d7c6b5a49382716051f4e3d2c1b0a9f8e7d6c5b4a3928170615", Node: "node-1", File: "/var/log/pods/team-a_web_0b7e/app/0.log"}).Fragment()
	msg := []byte(`{"level":"info","ts":"2026-11-21T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12}`)
	l := Line{TS: []byte("2026-11-21T10:00:00.123456789Z"), Stream: "stdout", Message: msg, Fields: msg}
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(l.Message)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendJSON(buf[:0], frag, &l)
	}
}
