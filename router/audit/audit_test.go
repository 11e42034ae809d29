package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name   string
		line   string
		reason string         // "" parses
		fields map[string]any // as the record's fields decode
		ts     string
	}{
		{
			name: "resource request, ResponseComplete",
			line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/team-a/deployments/web/scale","verb":"update","user":{"username":"system:serviceaccount:team-a:ci","uid":"u","groups":["system:serviceaccounts","system:authenticated"]},"impersonatedUser":{"username":"bob"},"sourceIPs":["10.0.0.1","10.0.0.2"],"userAgent":"ci/1.0","objectRef":{"resource":"deployments","namespace":"team-a","name":"web","apiGroup":"apps","apiVersion":"v1","subresource":"scale"},"responseStatus":{"metadata":{},"code":409},"requestObject":{"spec":{"replicas":3}},"requestReceivedTimestamp":"2026-12-01T19:40:00.000001Z","stageTimestamp":"2026-12-01T19:40:00.5Z"}`,
			fields: map[string]any{"audit_id": "a1", "stage": "ResponseComplete", "level": "RequestResponse", "verb": "update",
				"user": "system:serviceaccount:team-a:ci", "groups": []any{"system:serviceaccounts", "system:authenticated"}, "impersonated_user": "bob",
				"api_group": "apps", "api_version": "v1", "resource": "deployments", "subresource": "scale", "namespace": "team-a", "name": "web",
				"code": 409.0, "request_uri": "/apis/apps/v1/namespaces/team-a/deployments/web/scale", "source_ips": []any{"10.0.0.1", "10.0.0.2"}, "user_agent": "ci/1.0"},
			ts: "2026-12-01T19:40:00.500000000Z",
		},
		{
			name:   "RequestReceived: no response code, no objectRef (non-resource URL)",
			line:   `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"b2","stage":"RequestReceived","requestURI":"/healthz","verb":"get","user":{"username":"system:anonymous"},"requestReceivedTimestamp":"2026-12-01T21:40:00.25+02:00"}`,
			fields: map[string]any{"audit_id": "b2", "stage": "RequestReceived", "level": "Metadata", "verb": "get", "user": "system:anonymous", "request_uri": "/healthz"},
			ts:     "2026-12-01T19:40:00.250000000Z",
		},
		{
			name:   "strings with quotes, control characters and non-ASCII escaped",
			line:   `{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","auditID":"c\"3","stage":"Panic","user":{"username":"Zoë\n"},"stageTimestamp":"2026-12-01T19:40:00Z"}`,
			fields: map[string]any{"audit_id": `c"3`, "stage": "Panic", "user": "Zoë\n"},
			ts:     "2026-12-01T19:40:00.000000000Z",
		},
		{name: "not JSON", line: `2026-12-01 audit: something`, reason: ReasonBadJSON},
		{name: "truncated JSON", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x"`, reason: ReasonBadJSON},
		{name: "wrong type", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","user":{"groups":"admins"}}`, reason: ReasonBadJSON},
		{name: "another kind", line: `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`, reason: ReasonNotEvent},
		{name: "another API group's Event", line: `{"kind":"Event","apiVersion":"v1","reason":"Scheduled"}`, reason: ReasonNotEvent},
		{name: "no auditID", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","stageTimestamp":"2026-12-01T19:40:00Z"}`, reason: ReasonMissingID},
		{name: "no stage", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stageTimestamp":"2026-12-01T19:40:00Z"}`, reason: ReasonMissingStage},
		{name: "no timestamp", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete"}`, reason: ReasonBadTimestamp},
		{name: "bad timestamp", line: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","stageTimestamp":"yesterday"}`, reason: ReasonBadTimestamp},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Parse([]byte(c.line))
			if c.reason != "" {
				var ae *Error
				if !errors.As(err, &ae) || ae.Reason != c.reason || !errors.Is(err, ErrNotEvent) {
					t.Fatalf("Parse: %v, want reason %q wrapping ErrNotEvent", err, c.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(e.AppendFields(nil), &got); err != nil {
				t.Fatalf("fields %s: %v", e.AppendFields(nil), err)
			}
			if !reflect.DeepEqual(got, c.fields) {
				t.Errorf("fields\n got %v\nwant %v", got, c.fields)
			}
			if string(e.TS) != c.ts {
				t.Errorf("ts %s, want %s", e.TS, c.ts)
			}
		})
	}
}

// TestParseRealEvents parses events kube-apiserver v1.34 wrote with the audit policy of the
// integration test (testdata/apiserver-audit.log, taken from integration/kubeapiserver).
func TestParseRealEvents(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "apiserver-audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 10 {
		t.Fatalf("%d events in the sample", len(lines))
	}
	stages := map[string]int{}
	for i, l := range lines {
		e, err := Parse([]byte(l))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var raw struct {
			AuditID string `json:"auditID"`
			Verb    string `json:"verb"`
			User    struct {
				Username string `json:"username"`
			} `json:"user"`
		}
		if err := json.Unmarshal([]byte(l), &raw); err != nil {
			t.Fatal(err)
		}
		if e.AuditID != raw.AuditID || e.Verb != raw.Verb || e.User != raw.User.Username || e.User == "" {
			t.Errorf("event %d: audit ID %q verb %q user %q, want %q %q %q", i, e.AuditID, e.Verb, e.User, raw.AuditID, raw.Verb, raw.User.Username)
		}
		stages[e.Stage]++
	}
	if stages["ResponseComplete"] == 0 {
		t.Errorf("no ResponseComplete event among %v", stages)
	}
}

// FuzzParse: Parse never panics; what it accepts yields a valid JSON fields object with the
// event's audit ID and stage.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"get","user":{"username":"u","groups":["g"]},"objectRef":{"resource":"pods","namespace":"n","name":"p"},"responseStatus":{"code":200},"stageTimestamp":"2026-12-01T19:40:00Z"}`))
	f.Add([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"\xff","stage":"\u0000","stageTimestamp":"2026-12-01T19:40:00.123+01:00"}`))
	f.Add([]byte(`{"kind":"Event"`))
	f.Add([]byte(`null`))
	if b, err := os.ReadFile(filepath.Join("testdata", "apiserver-audit.log")); err == nil {
		for _, l := range strings.Split(string(b), "\n")[:5] {
			f.Add([]byte(l))
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := Parse(line)
		if err != nil {
			if !errors.Is(err, ErrNotEvent) {
				t.Fatalf("error %v does not wrap ErrNotEvent", err)
			}
			return
		}
		fields := e.AppendFields(nil)
		if !json.Valid(fields) || !utf8.Valid(fields) {
			t.Fatalf("fields not valid JSON: %q", fields)
		}
		var got struct {
			AuditID string `json:"audit_id"`
			Stage   string `json:"stage"`
		}
		if err := json.Unmarshal(fields, &got); err != nil {
			t.Fatal(err)
		}
		if got.AuditID != strings.ToValidUTF8(e.AuditID, "\uFFFD") || got.Stage != strings.ToValidUTF8(e.Stage, "\uFFFD") {
			t.Fatalf("fields %s: audit_id %q stage %q, want %q %q", fields, got.AuditID, got.Stage, e.AuditID, e.Stage)
		}
		if len(e.TS) != len("2006-01-02T15:04:05.000000000Z") {
			t.Fatalf("ts %q", e.TS)
		}
	})
}
