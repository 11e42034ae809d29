package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/problem"
)

// TestOpenAPIDocument checks that the served document parses, lists every route the gateway
// serves and every problem code handlers emit.
func TestOpenAPIDocument(t *testing.T) {
	var doc struct {
		OpenAPI    string                     `json:"openapi"`
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/namespaces/{ns}/logs", "/v1/namespaces/{ns}/archive", "/v1/namespaces", "/v1/namespaces/{ns}/pipelines", "/ui/", "/v1/tokens", "/v1/tokens/{id}", "/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("path %s missing", p)
		}
	}
	enum := map[string]bool{}
	for _, c := range doc.Components.Schemas.Problem.Properties.Code.Enum {
		enum[c] = true
	}
	for _, c := range []string{problem.CodeInvalidNamespace, problem.CodeInvalidParameter, problem.CodeUnknownParameter,
		problem.CodeTokenInQuery, problem.CodeInvalidCursor, problem.CodeNotAcceptable, problem.CodeUnauthenticated,
		problem.CodeTokenExpired, problem.CodeTokenRevoked, problem.CodeForbidden, problem.CodeNotFound,
		problem.CodeMethodNotAllowed, problem.CodeTooManyStreams, problem.CodeRateLimited, problem.CodeBodyTooLarge, problem.CodeHeaderTooLarge,
		problem.CodeUnsupportedMedia, problem.CodeBadRequest, problem.CodeNoTopic, problem.CodeUnavailable,
		problem.CodeArchiveDisabled, problem.CodePipelinesOff, problem.CodeInternal} {
		if !enum[c] {
			t.Errorf("problem code %s not documented", c)
		}
	}
}

// TestOpenAPIParameters: the document lists exactly the query parameters each read endpoint
// accepts (api/params), so a parameter cannot be added without being described.
func TestOpenAPIParameters(t *testing.T) {
	var doc struct {
		Paths map[string]struct {
			Get struct {
				Parameters []struct {
					Name string `json:"name"`
					In   string `json:"in"`
				} `json:"parameters"`
			} `json:"get"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for endpoint, path := range map[string]string{"logs": "/v1/namespaces/{ns}/logs", "archive": "/v1/namespaces/{ns}/archive"} {
		var got []string
		for _, p := range doc.Paths[path].Get.Parameters {
			if p.In == "query" {
				got = append(got, p.Name)
			}
		}
		slices.Sort(got)
		if want := params.Names(endpoint); !slices.Equal(got, want) {
			t.Errorf("%s: openapi.json query parameters %v, api/params accepts %v", path, got, want)
		}
	}
}

// TestOpenAPIPageFields: every field of the JSON page the gateway writes is described in the
// Page schema, so a field cannot be added without being documented.
func TestOpenAPIPageFields(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	rt := reflect.TypeFor[pageBody]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if _, ok := doc.Components.Schemas["Page"].Properties[name]; !ok {
			t.Errorf("page field %q is not in the Page schema", name)
		}
	}
	for _, name := range []string{"type", "partition", "offset", "record", "reason"} {
		if _, ok := doc.Components.Schemas["ArchiveLine"].Properties[name]; !ok {
			t.Errorf("archive line field %q is not in the ArchiveLine schema", name)
		}
	}
}
