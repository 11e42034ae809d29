package collectortest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/loadgen"
)

// Header is one Kafka record header as a client returned it.
type Header struct{ Key, Value string }

// Msg is one Kafka record as a client under test returned it.
type Msg struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Headers   []Header
	Value     []byte
}

// DocumentedFields are the record value's fields that docs/record.md documents and that the
// collector writes for a file whose path names its pod UID and container ID (as kubelet's do).
var DocumentedFields = []string{"v", "ts", "stream", "message", "namespace", "pod", "pod_uid", "container", "container_id", "node", "file", "offset"}

// OptionalFields are the documented fields a record carries only in some cases (internal/record):
// message_base64 (invalid UTF-8), split (a chunk of an oversized line), parse_error, and what
// the enricher and tenant pipelines (fields, fields_error, lines: schema version 2) add.
var OptionalFields = map[string]string{"message_base64": "string", "split": "object", "parse_error": "string",
	"k8s": "object", "metadata": "string", "fields": "object", "fields_error": "string", "lines": "integer", "cluster": "string"}

// Schema is the part of docs/record.schema.json the tests check: the top-level properties
// with their JSON types, the required ones, and whether others are allowed.
type Schema struct {
	Path       string
	Properties map[string][]string // property -> allowed JSON types (nil: any)
	Required   []string
	Closed     bool // additionalProperties: false
}

// LoadSchema reads docs/record.schema.json from the module root. It returns nil when the file
// does not exist (the documented field list is then the reference).
func LoadSchema(t testing.TB) *Schema {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "docs", "record.schema.json")
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Ref                  string                     `json:"$ref"`
		Properties           map[string]json.RawMessage `json:"properties"`
		Required             []string                   `json:"required"`
		AdditionalProperties json.RawMessage            `json:"additionalProperties"`
	}
	var doc object
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	// A schema whose root is {"$ref": "#/$defs/record"} (or #/definitions/...): follow it.
	if len(doc.Properties) == 0 && strings.HasPrefix(doc.Ref, "#/") {
		var cur any
		if err := json.Unmarshal(b, &cur); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, tok := range strings.Split(strings.TrimPrefix(doc.Ref, "#/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			m, _ := cur.(map[string]any)
			cur = m[tok]
		}
		ref := doc.Ref
		rb, _ := json.Marshal(cur)
		doc = object{}
		if err := json.Unmarshal(rb, &doc); err != nil {
			t.Fatalf("%s: %s: %v", p, ref, err)
		}
	}
	if len(doc.Properties) == 0 {
		t.Fatalf("%s: no top-level properties", p)
	}
	s := &Schema{Path: p, Properties: map[string][]string{}, Required: doc.Required,
		Closed: bytes.Equal(bytes.TrimSpace(doc.AdditionalProperties), []byte("false"))}
	for name, raw := range doc.Properties {
		var prop struct {
			Type json.RawMessage `json:"type"`
		}
		if err := json.Unmarshal(raw, &prop); err != nil {
			t.Fatalf("%s: property %q: %v", p, name, err)
		}
		var types []string
		if len(prop.Type) > 0 {
			var one string
			if json.Unmarshal(prop.Type, &one) == nil {
				types = []string{one}
			} else if err := json.Unmarshal(prop.Type, &types); err != nil {
				t.Fatalf("%s: property %q: type: %v", p, name, err)
			}
		}
		s.Properties[name] = types
	}
	return s
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// jsonType names v's JSON type as JSON Schema does ("integer" for whole numbers).
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// CheckFields checks value's field names and types against schema (nil: the documented
// field lists) and that every field of DocumentedFields is there.
func CheckFields(schema *Schema, value []byte) error { return checkFields(schema, value) }

// checkFields checks value's field names and types against the schema (or, without one, the
// documented field list), and that the fields this workload must produce are all there.
func checkFields(schema *Schema, value []byte) error {
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	var errs []string
	for _, f := range DocumentedFields {
		if _, ok := m[f]; !ok {
			if _, unparsed := m["parse_error"]; f == "stream" && unparsed {
				continue // an unparseable line has no stream (record.Record.Stream is omitempty)
			}
			errs = append(errs, fmt.Sprintf("field %q missing", f))
		}
	}
	if schema == nil {
		for f, v := range m {
			if want, ok := OptionalFields[f]; ok {
				if jsonType(v) != want {
					errs = append(errs, fmt.Sprintf("field %q is %s, want %s", f, jsonType(v), want))
				}
			} else if !slices.Contains(DocumentedFields, f) {
				errs = append(errs, fmt.Sprintf("undocumented field %q", f))
			}
		}
		for f, want := range map[string]string{"v": "integer", "ts": "string", "stream": "string", "message": "string", "namespace": "string",
			"pod": "string", "pod_uid": "string", "container": "string", "container_id": "string", "node": "string", "file": "string", "offset": "integer"} {
			if v, ok := m[f]; ok && jsonType(v) != want {
				errs = append(errs, fmt.Sprintf("field %q is %s, want %s", f, jsonType(v), want))
			}
		}
	} else {
		for _, f := range schema.Required {
			if _, ok := m[f]; !ok {
				errs = append(errs, fmt.Sprintf("required field %q (%s) missing", f, schema.Path))
			}
		}
		for f, v := range m {
			types, ok := schema.Properties[f]
			if !ok {
				if schema.Closed {
					errs = append(errs, fmt.Sprintf("field %q not in %s", f, schema.Path))
				}
				continue
			}
			got := jsonType(v)
			if len(types) > 0 && !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
				errs = append(errs, fmt.Sprintf("field %q is %s, %s says %v", f, got, schema.Path, types))
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// CheckSchemaDocumentsFields fails when docs/record.schema.json exists but does not list
// every documented field.
func CheckSchemaDocumentsFields(t testing.TB, schema *Schema) {
	t.Helper()
	if schema == nil {
		return
	}
	for _, f := range DocumentedFields {
		if _, ok := schema.Properties[f]; !ok {
			t.Errorf("%s does not document field %q", schema.Path, f)
		}
	}
}

// Verify checks msgs, everything one client read from topic "logs.<ns>", against what the
// workload wrote to namespace ns: exactly one record per line, each container's lines in order
// in one partition under the container's key, the headers, and every value field (decoded
// with record.Decode and, for the field names and types, as a plain JSON object against
// schema, which may be nil). client names the reader in failure messages.
func (w *Workload) Verify(t testing.TB, client, ns string, schema *Schema, msgs []Msg) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	topic := Topic(ns)
	byID := map[string]*Container{}
	want := 0
	for _, c := range w.Containers {
		if c.Namespace == ns {
			byID[c.ID] = c
			want += len(c.Lines)
		}
	}
	if want == 0 {
		t.Fatalf("%s: workload wrote nothing to namespace %s", client, ns)
	}
	if len(msgs) != want {
		t.Errorf("%s: read %d records from %s, want exactly %d", client, len(msgs), topic, want)
	}
	// Kafka orders records within a partition only; the check walks each partition in offset order.
	sorted := slices.Clone(msgs)
	slices.SortStableFunc(sorted, func(a, b Msg) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	const maxErrs = 10
	nerr := 0
	fail := func(format string, args ...any) {
		t.Helper()
		nerr++
		if nerr <= maxErrs {
			t.Errorf(client+": "+format, args...)
		}
	}
	next := map[string]int{}     // container ID -> next expected seq
	partOf := map[string]int32{} // container ID -> partition
	seenOffset := map[[2]int64]bool{}
	for _, m := range sorted {
		where := fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
		if m.Topic != topic {
			fail("%s: record from topic %q", where, m.Topic)
			continue
		}
		po := [2]int64{int64(m.Partition), m.Offset}
		if seenOffset[po] {
			fail("%s: read twice", where)
			continue
		}
		seenOffset[po] = true
		rec, err := record.Decode(m.Value)
		if err != nil {
			fail("%s: %v: %.300s", where, err, m.Value)
			continue
		}
		c := byID[rec.ContainerID]
		if c == nil {
			fail("%s: container_id %q is not a container of namespace %s: %.300s", where, rec.ContainerID, ns, m.Value)
			continue
		}
		if err := checkFields(schema, m.Value); err != nil {
			fail("%s: %v: %.300s", where, err, m.Value)
		}
		// Headers: exactly the four documented ones, once each.
		hs := map[string][]string{}
		for _, h := range m.Headers {
			hs[h.Key] = append(hs[h.Key], h.Value)
		}
		wantH := map[string]string{record.HeaderNamespace: c.Namespace, record.HeaderPod: c.Pod, record.HeaderContainer: c.Name,
			record.HeaderSchema: string(record.SchemaHeaderValue)}
		if len(m.Headers) != len(wantH) {
			fail("%s: headers %v, want exactly %v", where, m.Headers, wantH)
		}
		for k, v := range wantH {
			if len(hs[k]) != 1 || hs[k][0] != v {
				fail("%s: header %q = %q, want [%q]", where, k, hs[k], v)
			}
		}
		// Key: the container's, and one partition per container.
		if wantKey := record.Key(c.ID, c.PodUID, c.Namespace, c.Pod, c.Name); string(m.Key) != wantKey || wantKey != c.ID {
			fail("%s: key %q, want %q (the container ID)", where, m.Key, c.ID)
		}
		if p, ok := partOf[c.ID]; ok && p != m.Partition {
			fail("%s: container %s in partitions %d and %d", where, c.Key, p, m.Partition)
		}
		partOf[c.ID] = m.Partition
		// The line: next in sequence, and every field as written.
		seq := next[c.ID]
		if seq >= len(c.Lines) {
			fail("%s: %s: more records than the %d lines written: %q", where, c.Key, len(c.Lines), rec.Message)
			continue
		}
		l := c.Lines[seq]
		if rec.Message != l.Message {
			fail("%s: %s: message %q, want seq %d %q (lost, duplicated or reordered)", where, c.Key, rec.Message, seq, l.Message)
			// Resynchronise on the seq the record carries, so one loss is reported once.
			if _, s, ok := loadgen.ParseSeq(rec.Message); ok && s >= 0 && s < len(c.Lines) {
				seq = s
				l = c.Lines[s]
			} else {
				continue
			}
		}
		next[c.ID] = seq + 1
		if rec.V != record.SchemaVersion || !rec.Time.Equal(l.TS) || rec.Stream != l.Stream || rec.Offset != l.Offset ||
			rec.Namespace != c.Namespace || rec.Pod != c.Pod || rec.PodUID != c.PodUID || rec.Container != c.Name ||
			rec.ContainerID != c.ID || rec.Node != NodeName || rec.File != c.Path() || rec.MessageBase64 != nil ||
			rec.Split != nil || rec.ParseError != "" || rec.Kubernetes != nil || rec.Metadata != "" || rec.Fields != nil ||
			rec.FieldsError != "" || rec.Lines != 0 {
			fail("%s: %s seq %d: record %+v, want ts %s stream %s offset %d file %s pod_uid %s node %s",
				where, c.Key, seq, rec, l.TS.Format(time.RFC3339Nano), l.Stream, l.Offset, c.Path(), c.PodUID, NodeName)
		}
	}
	for id, c := range byID {
		if next[id] != len(c.Lines) {
			fail("%s: read up to seq %d of %d lines", c.Key, next[id], len(c.Lines))
		}
	}
	if nerr > maxErrs {
		t.Errorf("%s: %d more problems not shown", client, nerr-maxErrs)
	}
}
