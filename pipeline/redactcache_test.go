package pipeline

import (
	"strings"
	"testing"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// A Runner keeps the digest of the last removed value: every line's result must be what a new
// Runner gives for that line alone, whatever came before (same value, a prefix of it, another
// one, one too long to keep, an empty one).
func TestRedactHashRepeatedValues(t *testing.T) {
	p := mustCompile(t,
		S{JSON: &v1alpha1.JSONStep{}},
		S{Redact: &v1alpha1.RedactStep{Fields: []string{"src"}, Pattern: `\d{4}-\d{4}`, Hash: true}},
	)
	long := strings.Repeat("y", maxSumCached+1)
	vals := []string{"a", "a", "ab", "a", "", "", "1234-5678", long, long, long + "z", "b", "a"}
	r := p.NewRunner()
	for i, v := range vals {
		line := `{"src":"` + v + `","msg":"card 1234-5678 and 1234-567` + string(rune('0'+i%10)) + `"}`
		var got, want out
		r.Process(&Record{Message: []byte(line), Lines: 1}, t0, func(rec *Record) { got = copyOut(rec) })
		p.NewRunner().Process(&Record{Message: []byte(line), Lines: 1}, t0, func(rec *Record) { want = copyOut(rec) })
		if got != want {
			t.Fatalf("line %d (%q): after earlier lines\n got %+v\nwant %+v", i, v, got, want)
		}
		if strings.Contains(got.Fields, "1234-") || (v != "" && strings.Contains(got.Fields, `"src":"`+v+`"`)) {
			t.Fatalf("line %d: not redacted: %s", i, got.Fields)
		}
	}
}

// Redacting a field by name on a line costs the new string and its boxing only.
func TestRedactFieldAllocs(t *testing.T) {
	p := mustCompile(t, S{Redact: &v1alpha1.RedactStep{Fields: []string{"src"}, Hash: true}})
	r := p.NewRunner()
	rec := Record{Message: []byte("x"), Lines: 1}
	fields := map[string]any{}
	n := testing.AllocsPerRun(200, func() {
		fields["src"] = "team-a/web-1"
		rec.Fields = fields
		r.Process(&rec, t0, func(*Record) {})
	})
	if n > 2 {
		t.Fatalf("redacting one field allocates %v times per line, want at most 2", n)
	}
}
