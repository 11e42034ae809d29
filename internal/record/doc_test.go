package record

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDocsMatchRecord: docs/record.schema.json and docs/record.md document exactly the fields
// of Record (its JSON names), the versions readers accept and the schema header value.
func TestDocsMatchRecord(t *testing.T) {
	var tags []string
	rt := reflect.TypeFor[Record]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		tags = append(tags, name)
	}
	b, err := os.ReadFile("../../docs/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Enum []any `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile("../../docs/record.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tags {
		if _, ok := schema.Properties[name]; !ok {
			t.Errorf("record.schema.json lacks field %q of record.Record", name)
		}
		if !strings.Contains(string(md), "| `"+name+"`") && !strings.Contains(string(md), "`"+name+"`, ") && !strings.Contains(string(md), ", `"+name+"` |") {
			t.Errorf("docs/record.md has no table row for field %q", name)
		}
	}
	for name := range schema.Properties {
		if !slices.Contains(tags, name) {
			t.Errorf("record.schema.json documents %q, which record.Record does not have", name)
		}
	}
	var versions []any
	for v := MinSchemaVersion; v <= SchemaVersion; v++ {
		versions = append(versions, float64(v))
	}
	if got := schema.Properties["v"].Enum; !reflect.DeepEqual(got, versions) {
		t.Errorf("record.schema.json: v enum %v, want the supported versions %v", got, versions)
	}
	for _, want := range []string{"# The log record (schema version " + strconv.Itoa(SchemaVersion) + ")", "`" + string(SchemaHeaderValue) + "`", `{"v":` + strconv.Itoa(SchemaVersion) + ","} {
		if !strings.Contains(string(md), want) {
			t.Errorf("docs/record.md does not say %q", want)
		}
	}
}
