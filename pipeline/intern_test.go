package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// benchChain is the chain of `logrouter bench collect --pipelines typical` (cmd/logrouter's
// benchTypicalPipeline): json, a regex on the message, a CEL keep, redact of a field by name
// with a hash.
var benchChain = []S{
	{JSON: &v1alpha1.JSONStep{}},
	{Regex: &v1alpha1.RegexStep{Pattern: `"path":"/api/(?P<api>v[0-9]+)/`}},
	{Keep: &v1alpha1.ConditionStep{If: `record.fields.level != "debug"`}},
	{Redact: &v1alpha1.RedactStep{Fields: []string{"src"}, Hash: true}},
}

// benchLine is line seq of the bench workload (router/loadgen.SeqMessage's form): every
// string value repeats from line to line, the sequence number does not.
func benchLine(seq int) string {
	return fmt.Sprintf(`{"level":"info","src":"bench-0/pod-0","seq":%d,"msg":"request served","path":"/api/v1/items","pad":"%s"}`, seq, strings.Repeat("x", 57))
}

// TestTypicalChainAllocs bounds the allocations of the typical chain per line when the
// line's string values repeat (interned) and its text is read in place: what is left is the
// box of the sequence number, regexp's match indexes and CEL's string value of
// record.fields.level. Before interning and views it was 11 per line: the copy of the line,
// one box per string field, two for the redacted field.
func TestTypicalChainAllocs(t *testing.T) {
	p := mustCompile(t, benchChain...)
	r := p.NewRunner()
	buf := make([]byte, 0, 256) // the collector's read buffer: reused for every line
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = benchLine(1000 + i)
	}
	var got map[string]any
	emit := func(rec *Record) { got = rec.Fields }
	var rec Record // the collector's, reused
	seq := 0
	line := func() {
		buf = append(buf[:0], lines[seq%len(lines)]...)
		rec = Record{Time: t0, Stream: "stdout", Message: buf, Start: int64(seq) * 200, End: int64(seq+1) * 200, Lines: 1, Meta: testMeta}
		if out := r.Process(&rec, t0, emit); out.Verdict != Emit || out.ParseFailed {
			t.Fatalf("line %d: %+v", seq, out)
		}
		seq++
	}
	for range 3 {
		line() // the first sightings
	}
	limit := 3.0
	if raceEnabled {
		limit = 4 // one more escapes to the heap under the race detector
	}
	if n := testing.AllocsPerRun(500, line); n > limit {
		t.Errorf("%.1f allocations per line, want at most %v", n, limit)
	}
	want := map[string]any{"level": "info", "seq": int64(1000 + (seq-1)%len(lines)), "msg": "request served", "path": "/api/v1/items",
		"pad": strings.Repeat("x", 57), "api": "v1", "src": "[REDACTED:sha256:" + hmacHex(string(redactKey("team-a")), "bench-0/pod-0")[:12] + "]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields\n got %v\nwant %v", got, want)
	}
}

// TestFieldsOutliveTheLineBuffer: field values and names made from a line read in place
// (interned, substrings of the line's copy, unescaped, number text, regex captures, nested)
// stay as they were after the collector reuses the line's buffer.
func TestFieldsOutliveTheLineBuffer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []S
		lines []string
	}{
		{"bench chain", benchChain, []string{benchLine(1), benchLine(2), benchLine(3), benchLine(300)}},
		{"unique values", benchChain[:1], []string{`{"id":"a1","n":1}`, `{"id":"b2","n":2}`, `{"id":"c3","n":3}`}},
		{"repeated and long values", benchChain[:1], []string{
			`{"k":"v","long":"` + strings.Repeat("y", 100) + `"}`, `{"k":"v","long":"` + strings.Repeat("y", 100) + `"}`,
			`{"k":"v","long":"` + strings.Repeat("y", 100) + `"}`}},
		{"escapes, nesting, lists, big numbers", benchChain[:1], []string{
			`{"e\"k":"a\nb","o":{"in":"x","l":["p","q",{"z":"w"}]},"big":1e999}`,
			`{"e\"k":"a\nb","o":{"in":"x","l":["p","q",{"z":"w"}]},"big":1e999}`,
			`{"e\"k":"a\nb","o":{"in":"x","l":["p","q",{"z":"w"}]},"big":1e999}`}},
		{"json into", []S{{JSON: &v1alpha1.JSONStep{Into: "app"}}}, []string{`{"a":"b"}`, `{"a":"b"}`, `{"a":"c"}`}},
		{"regex on the message", []S{{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<verb>[A-Z]+) (?P<path>\S+)`}}},
			[]string{"GET /a 200", "GET /a 200", "POST /b 201", "GET /a 200"}},
		{"logfmt", []S{{Logfmt: &v1alpha1.LogfmtStep{}}}, []string{`a=1 b="x y"`, `a=1 b="x y"`, `a=2 b=z`}},
		{"json of a field", []S{{Regex: &v1alpha1.RegexStep{Pattern: `^(?P<body>\{.*\})$`}}, {JSON: &v1alpha1.JSONStep{Source: "body"}}},
			[]string{`{"a":"b"}`, `{"a":"b"}`, `{"a":"c"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, tc.steps...)
			r := p.NewRunner()
			buf := make([]byte, 0, 512)
			var kept []map[string]any
			var want []string
			for i, l := range tc.lines {
				buf = append(buf[:0], l...)
				rec := Record{Time: t0, Stream: "stdout", Message: buf, Start: int64(i), Lines: 1, Meta: testMeta}
				r.Process(&rec, t0, func(rec *Record) {
					kept = append(kept, deepCopyFields(rec.Fields))
					want = append(want, string(AppendFieldsJSON(nil, rec.Fields)))
				})
				if len(kept) != i+1 || len(kept[i]) == 0 {
					t.Fatalf("line %d %q: no fields", i, l)
				}
				for j := range buf {
					buf[j] = '#' // the collector reads the next chunk into the same buffer
				}
			}
			for i := range kept {
				if got := string(AppendFieldsJSON(nil, kept[i])); got != want[i] {
					t.Errorf("line %d: fields changed with the buffer:\n got %s\nwant %s", i, got, want[i])
				}
			}
		})
	}
}

// deepCopyFields copies the maps and lists of fields, keeping their strings (which must not
// alias the line buffer).
func deepCopyFields(m map[string]any) map[string]any {
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyFields(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// TestInterner: a string is cached from its second sighting, only when short, never as a
// substring of the text it came from, and the cache stays bounded.
func TestInterner(t *testing.T) {
	var in interner
	if _, ok := in.get("info"); ok {
		t.Fatal("cached at the first sighting")
	}
	v, ok := in.get("info")
	if !ok || v != "info" {
		t.Fatalf("second sighting: %v %v", v, ok)
	}
	if v2, _ := in.get("info"); v2 != v {
		t.Fatal("not the same box")
	}
	long := strings.Repeat("l", internMaxLen+1)
	in.get(long)
	if _, ok := in.get(long); ok {
		t.Fatal("cached a string longer than internMaxLen")
	}
	// The cached string is a copy: changing the bytes it was read from does not change it.
	b := []byte("abcdef")
	view := string(b[1:4])
	in.get(view)
	cached, ok := in.key(view)
	if !ok || cached != "bcd" {
		t.Fatalf("key: %q %v", cached, ok)
	}
	// Many distinct repeated strings: bounded.
	for i := range 10 * internEntries {
		s := fmt.Sprintf("v%d", i)
		in.get(s)
		in.get(s)
		if len(in.m) > internEntries {
			t.Fatalf("%d entries, bound %d", len(in.m), internEntries)
		}
	}
	// Strings seen once each (ids) are never cached.
	var uniq interner
	for i := range 10_000 {
		if _, ok := uniq.get(fmt.Sprintf("id-%d", i)); ok {
			t.Fatalf("id-%d cached at its first sighting", i)
		}
	}
	if len(uniq.m) != 0 {
		t.Fatalf("%d unique strings cached", len(uniq.m))
	}
}

// FuzzParseJSONView parses a line read in place (a view of a buffer that is then
// overwritten), twice with one interner (the second parse hits its cache), and compares both
// with the parse of a string.
func FuzzParseJSONView(f *testing.F) {
	for _, s := range []string{`{}`, benchLine(7), `{"a":"b","a":"c"}`, `{"e\"k":"a\nb","o":{"in":"x","l":["p",{"z":"w"}]},"big":1e999}`, `{"a":"\ud800"}`, `{"a":1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := map[string]any{}
		wantErr := parseJSONInto(s, want)
		var in interner
		for round := range 3 {
			buf := []byte(s)
			got := map[string]any{}
			err := parseJSONPieces(pieces{in: &in, s: unsafeView(buf), view: true}, got)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("round %d %q: error %v, want %v", round, s, err, wantErr)
			}
			if err != nil {
				continue
			}
			copy(buf, bytes.Repeat([]byte{'#'}, len(buf)))
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("round %d %q:\n got %s\nwant %s", round, s, g, w)
			}
		}
	})
}

// unsafeView is b as a string without a copy, the way the json step reads a message.
func unsafeView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// TestMembersByPosition: the json step looks a top-level member up by its position on the
// last line first; lines whose members move, change value or change kind parse as without.
func TestMembersByPosition(t *testing.T) {
	lines := []string{
		`{"a":"x","b":"y","c":1}`, `{"a":"x","b":"y","c":1}`, `{"a":"x","b":"y","c":1}`,
		`{"b":"y","a":"x","c":1}`,             // moved
		`{"a":"x2","b":"y","c":"x"}`,          // changed value, changed kind
		`{"a":"x","b":{"a":"x"},"c":["y"]}`,   // nested: not by position
		`{"a":"x","a":"z","b":"y"}`,           // duplicate name: the last wins
		`{"a\u0078":"x","b":"y\u0079","c":1}`, // escaped name and value
		`{"a":"x"}`, `{}`, `{"a":"x","b":"y","c":1,"d":"` + strings.Repeat("d", 100) + `"}`,
	}
	p := mustCompile(t, benchChain[:1]...)
	r := p.NewRunner()
	buf := make([]byte, 0, 256)
	for round := range 3 {
		for i, l := range lines {
			buf = append(buf[:0], l...)
			rec := Record{Time: t0, Message: buf, Start: int64(i), Lines: 1}
			var got string
			r.Process(&rec, t0, func(rec *Record) { got = string(AppendFieldsJSON(nil, rec.Fields)) })
			want := map[string]any{}
			if err := parseJSONInto(l, want); err != nil {
				t.Fatal(err)
			}
			if w := string(AppendFieldsJSON(nil, want)); (len(want) > 0 || got != "") && got != w {
				t.Errorf("round %d, line %d %s:\n got %s\nwant %s", round, i, l, got, w)
			}
		}
	}
}
