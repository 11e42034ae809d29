package pipeline

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

func TestAppendFieldsJSON(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"nil", nil, `{}`},
		{"sorted at every level", map[string]any{"b": 1, "a": map[string]any{"z": true, "y": nil}, "c": []any{"x", int64(-3), uint64(7)}},
			`{"a":{"y":null,"z":true},"b":1,"c":["x",-3,7]}`},
		{"floats as encoding/json writes them", map[string]any{"a": 1.5, "b": 1e21, "c": 1e-7, "d": 200.0, "e": math.NaN(), "f": math.Inf(-1)},
			`{"a":1.5,"b":1e+21,"c":1e-07,"d":200,"e":null,"f":null}`},
		{"escapes and invalid UTF-8", map[string]any{"k\"\n": "a\tb\x00\xffc"}, `{"k\"\n":"a\tb\u0000` + "\ufffd" + `c"}`},
		{"other kinds", map[string]any{"b": []byte{1, 2}, "t": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), "s": []string{"x"}, "m": map[string]string{"k": "v"}, "d": time.Second},
			`{"b":"AQI=","d":"1s","m":{"k":"v"},"s":["x"],"t":"2026-01-02T03:04:05.000000006Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendFieldsJSON([]byte("prefix"), tt.fields))
			if got != "prefix"+tt.want {
				t.Errorf("got  %s\nwant %s", got[6:], tt.want)
			}
			if !json.Valid([]byte(got[6:])) {
				t.Errorf("not valid JSON: %s", got[6:])
			}
		})
	}
	// More keys than the on-stack sort buffer.
	m := map[string]any{}
	for i := range 40 {
		m[string(rune('a'+i%26))+string(rune('a'+i/26))] = i
	}
	var back map[string]any
	if err := json.Unmarshal(AppendFieldsJSON(nil, m), &back); err != nil || len(back) != 40 {
		t.Errorf("40 keys: %v, %d", err, len(back))
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]any
		err  string
	}{
		{`{}`, map[string]any{}, ""},
		{" \t{\"a\" : 1 , \"b\":[ ]}\n", map[string]any{"a": int64(1), "b": []any{}}, ""},
		{`{"a":1,"a":2}`, map[string]any{"a": int64(2)}, ""},
		{`{"n":-0,"f":-1.5e3,"big":123456789012345678901234,"e":1E2}`, map[string]any{"n": int64(0), "f": -1500.0, "big": 1.2345678901234568e23, "e": 100.0}, ""},
		{`{"s":"\u00e9\ud83d\ude00\n\"\\\/\b\f\r\t"}`, map[string]any{"s": "é😀\n\"\\/\b\f\r\t"}, ""},
		{`{"s":"\ud800x"}`, map[string]any{"s": "\ufffdx"}, ""},
		{`{"s":"\ud800\u0041"}`, map[string]any{"s": "\ufffdA"}, ""},
		{`{"n":1e999}`, map[string]any{"n": "1e999"}, ""},
		{``, nil, "not a JSON object"},
		{`"x"`, nil, "not a JSON object"},
		{`{"a":01}`, nil, "invalid JSON: expected ',' or '}' at offset 6, found '1'"},
		{`{"a":1.}`, nil, "invalid JSON: invalid number at offset 7, found '}'"},
		{`{"a":tru}`, nil, "invalid JSON: invalid literal at offset 5, found 't'"},
		{"{\"a\":\"x\ny\"}", nil, "invalid JSON: control character in string at offset 7, found byte 0x0a"},
		{`{"a":"\x"}`, nil, "invalid JSON: invalid escape at offset 7, found 'x'"},
		{`{"a":"\u12"}`, nil, `invalid JSON: invalid \u escape at offset 8, found '1'`},
		{`{"a" 1}`, nil, "invalid JSON: expected ':' at offset 5, found '1'"},
		{`{1:2}`, nil, "invalid JSON: expected a string key at offset 1, found '1'"},
		{`{"a":[1,]}`, nil, "invalid JSON: expected a value at offset 8, found ']'"},
		{`{"a":"unterminated`, nil, "invalid JSON: unterminated string at offset 18, found end of input"},
	}
	for _, tt := range tests {
		m := map[string]any{}
		err := parseJSONInto(tt.in, m)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: error %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(m, tt.want) {
			t.Errorf("%q: %#v, %v; want %#v", tt.in, m, err, tt.want)
		}
	}
	deep := ""
	for range 100 {
		deep += `{"a":`
	}
	if err := parseJSONInto(deep, map[string]any{}); err == nil || err.Error() != "invalid JSON: nested deeper than 64 at offset 320, found '{'" {
		t.Errorf("deep: %v", err)
	}
}

func TestAppendStringPlain(t *testing.T) {
	for _, s := range []string{"", "a", "request served", "/api/v1/items", "12345678", "123456789abcdefg",
		"1234567\"", "\"1234567", "abcdefgh\\", "abc\x1fdefgh", "abcdefg\x7f", "abcdefgh\x00", "héllo wörld!", "\xff\xfe", "abcdefg\x20",
		"!#$%&'()*+,-./[]^_`{|}~", "\x21\x21\x21\x21\x21\x21\x21\x21\x23"} {
		checkAppendString(t, s)
	}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	want, _ := record.AppendString([]byte("x"), s)
	if got := appendString([]byte("x"), s); string(got) != string(want) {
		t.Fatalf("appendString(%q) = %q, record.AppendString: %q", s, got, want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"abcdefgh", "abcdefg\"", "\x1f1234567", "a\\bcdefghi", "é", "\x7f\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAppendString(t, s) })
}
