package pipeline

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// mustCompile compiles steps (YAML-free: Go values) for namespace "team-a".
func mustCompile(t testing.TB, steps ...v1alpha1.Step) *Pipeline {
	t.Helper()
	p, err := Compile("team-a", "p", 1, &v1alpha1.LogPipelineSpec{Steps: steps}, nil)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// out is one emitted record, copied (emit must not keep the record).
type out struct {
	Message     string
	Fields      string // AppendFieldsJSON
	FieldsError string
	Time        time.Time
	Start, End  int64
	Lines       int
}

func copyOut(r *Record) out {
	f := ""
	if r.Fields != nil {
		f = string(AppendFieldsJSON(nil, r.Fields))
	}
	return out{Message: string(r.Message), Fields: f, FieldsError: r.FieldsError, Time: r.Time, Start: r.Start, End: r.End, Lines: r.Lines}
}

var testMeta = &Meta{
	Namespace: "team-a", Pod: "web-1", Container: "app", Node: "node-1",
	Labels:      map[string]string{"app": "web"},
	Annotations: map[string]string{"team": "a"},
	OwnerKind:   "ReplicaSet", OwnerName: "web-5d4",
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// feed runs lines (one per input, offsets consecutive) through a new Runner and returns
// what was emitted and each line's Outcome.
func feed(t testing.TB, p *Pipeline, lines ...string) ([]out, []Outcome) {
	t.Helper()
	r := p.NewRunner()
	var outs []out
	var oc []Outcome
	off := int64(0)
	emit := func(rec *Record) { outs = append(outs, copyOut(rec)) }
	for _, l := range lines {
		buf := []byte(l)
		rec := Record{Time: t0, Stream: "stdout", Message: buf, Start: off, End: off + int64(len(l)) + 1, Lines: 1, Meta: testMeta}
		off = rec.End
		oc = append(oc, r.Process(&rec, t0, emit))
		// The caller's buffer moves on: a Runner that kept it would see this.
		for i := range buf {
			buf[i] = 'X'
		}
	}
	r.Flush(emit)
	return outs, oc
}

func messages(outs []out) string {
	var b strings.Builder
	for i, o := range outs {
		if i > 0 {
			b.WriteString("|")
		}
		b.WriteString(o.Message)
	}
	return b.String()
}

func hmacHex(key, v string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}
