package collectortest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

// recorder is a testing.TB that records failures instead of failing, so Verify's own checks
// can be shown to fail.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }

func (r *recorder) run(f func()) []string {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
	return r.errs
}

// encode renders what the collector would produce for line l of c.
func encode(c *Container, l Line) Msg {
	src := record.Source{Namespace: c.Namespace, Pod: c.Pod, PodUID: c.PodUID, Container: c.Name, ContainerID: c.ID, Node: NodeName, File: c.Path()}
	v, _ := record.AppendJSON(nil, src.Fragment(), &record.Line{TS: []byte(l.TS.Format(time.RFC3339Nano)), Stream: l.Stream, Message: []byte(l.Message), Offset: l.Offset})
	return Msg{Topic: Topic(c.Namespace), Key: []byte(c.ID), Value: v, Headers: []Header{
		{record.HeaderNamespace, c.Namespace}, {record.HeaderPod, c.Pod}, {record.HeaderContainer, c.Name}, {record.HeaderSchema, "logrouter.v2"}}}
}

func TestVerifyDetects(t *testing.T) {
	w := NewWorkload(t, []string{"team-a"}, 1, []string{"app", "sidecar"})
	w.Write(t, 5, 100)
	good := func() []Msg {
		var out []Msg
		for ci, c := range w.Containers {
			for _, l := range c.Lines {
				m := encode(c, l)
				m.Partition = int32(ci)
				m.Offset = int64(len(out))
				out = append(out, m)
			}
		}
		return out
	}
	r := &recorder{TB: t}
	if errs := r.run(func() { w.Verify(r, "x", "team-a", nil, good()) }); len(errs) != 0 {
		t.Fatalf("good records rejected: %v", errs)
	}
	for name, tc := range map[string]struct {
		mutate func([]Msg) []Msg
		want   string
	}{
		"missing":        {func(m []Msg) []Msg { return append(m[:2], m[3:]...) }, "want exactly 10"},
		"duplicate":      {func(m []Msg) []Msg { d := m[2]; d.Offset = 100; return append(m, d) }, "want exactly 10"},
		"reordered":      {func(m []Msg) []Msg { m[1].Offset, m[2].Offset = m[2].Offset, m[1].Offset; return m }, "reordered"},
		"split":          {func(m []Msg) []Msg { m[4].Partition = 7; return m }, "in partitions"},
		"key":            {func(m []Msg) []Msg { m[0].Key = []byte("team-a/web-0/app"); return m }, "key"},
		"header missing": {func(m []Msg) []Msg { m[0].Headers = m[0].Headers[:3]; return m }, `header "schema"`},
		"header value":   {func(m []Msg) []Msg { m[0].Headers[1].Value = "other"; return m }, `header "pod"`},
		"old schema":     {func(m []Msg) []Msg { m[0].Headers[3].Value = "logrouter.v1"; return m }, `header "schema"`},
		"pipeline output": {func(m []Msg) []Msg {
			m[1].Value = bytes.Replace(m[1].Value, []byte(`"offset":`), []byte(`"fields_error":"x","offset":`), 1)
			return m
		}, "seq 1: record"},
		"header twice": {func(m []Msg) []Msg { m[0].Headers = append(m[0].Headers, m[0].Headers[0]); return m }, "headers"},
		"version": {func(m []Msg) []Msg {
			m[0].Value = bytes.Replace(m[0].Value, []byte(`"v":2`), []byte(`"v":3`), 1)
			return m
		}, "unsupported record schema version"},
		"field renamed": {func(m []Msg) []Msg {
			m[0].Value = bytes.Replace(m[0].Value, []byte(`"pod_uid"`), []byte(`"podUID"`), 1)
			return m
		}, `field "pod_uid" missing`},
		"offset": {func(m []Msg) []Msg {
			m[3].Value = bytes.Replace(m[3].Value, []byte(`"offset":`), []byte(`"offset":1`), 1)
			return m
		}, "offset"},
		"other topic": {func(m []Msg) []Msg { m[0].Topic = "logs.team-b"; return m }, "from topic"},
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{TB: t}
			errs := r.run(func() { w.Verify(r, "x", "team-a", nil, tc.mutate(good())) })
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("want a failure mentioning %q, got %q", tc.want, errs)
			}
		})
	}
}

func TestCheckFieldsAgainstSchema(t *testing.T) {
	s := &Schema{Path: "s", Closed: true, Required: []string{"v", "ts"}, Properties: map[string][]string{
		"v": {"integer"}, "ts": {"string"}, "stream": {"string"}, "message": {"string"}, "namespace": {"string"}, "pod": {"string"},
		"pod_uid": {"string"}, "container": {"string"}, "container_id": {"string"}, "node": {"string"}, "file": {"string"}, "offset": {"integer"}}}
	ok := `{"v":1,"ts":"t","stream":"stdout","message":"m","namespace":"n","pod":"p","pod_uid":"u","container":"c","container_id":"i","node":"x","file":"f","offset":3}`
	if err := checkFields(s, []byte(ok)); err != nil {
		t.Fatal(err)
	}
	if err := checkFields(nil, []byte(ok)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(ok, `"offset":3`, `"offset":"3"`, 1),
		strings.Replace(ok, `"offset":3`, `"offset":3,"extra":1`, 1),
		strings.Replace(ok, `"v":1,`, ``, 1),
	} {
		if checkFields(s, []byte(bad)) == nil || checkFields(nil, []byte(bad)) == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestLoadSchemaFollowsRootRef(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644)
	schema := `{"$ref":"#/$defs/record","$defs":{"record":{"type":"object","additionalProperties":false,"required":["v"],
		"properties":{"v":{"type":"integer"},"message":{"type":["string"]},"k8s":{"$ref":"#/$defs/k8s"}}}}}`
	if err := os.WriteFile(filepath.Join(dir, "docs", "record.schema.json"), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	s := LoadSchema(t)
	if s == nil || !s.Closed || len(s.Properties) != 3 || s.Properties["v"][0] != "integer" || s.Properties["k8s"] != nil || len(s.Required) != 1 {
		t.Fatalf("schema %+v", s)
	}
}
