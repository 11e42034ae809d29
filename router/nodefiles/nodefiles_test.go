package nodefiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidate(t *testing.T) {
	ok := Source{Name: "audit", Paths: []string{"/var/log/kube-apiserver/audit*.log"}, Parser: ParserKubeAudit}
	for _, c := range []struct {
		name string
		srcs []Source
		errs []string // substrings, every one reported at once
	}{
		{name: "none"},
		{name: "valid", srcs: []Source{ok, {Name: "auditd", Paths: []string{"/var/log/audit/audit.log", "/var/log/audit/audit.log.[0-9]"}, Topic: "platform.auditd"}}},
		{name: "every problem at once", srcs: []Source{
			{Name: "Bad_Name", Paths: []string{"relative/*.log"}, Parser: "xml"},
			{Name: "system", Paths: []string{"/var/log/[.log"}},
			{Name: "d", Paths: []string{"/var/log/*/audit.log"}, Topic: "bad topic"},
			{Name: "e", Paths: []string{"/var/log/pods/ns_pod_uid/c/*.log", "/var/log/containers/x.log"}},
			{Name: "f"}, ok, ok,
		}, errs: []string{
			`source 0 ("Bad_Name"): name:`, `source 0 ("Bad_Name"): path "relative/*.log": must be absolute`, `source 0 ("Bad_Name"): parser "xml"`,
			`source 1 ("system"): name "system" is the journal's`, `source 1 ("system"): path "/var/log/[.log": syntax error in pattern`,
			`source 2 ("d"): path "/var/log/*/audit.log": only the file name may have wildcards`, `source 2 ("d"): topic: invalid Kafka topic name`,
			`source 3 ("e"): path "/var/log/pods/ns_pod_uid/c/*.log": inside container log directory /var/log/pods`,
			`source 3 ("e"): path "/var/log/containers/x.log": inside container log directory /var/log/containers/`,
			`source 4 ("f"): paths: at least one glob`, `source 6 ("audit"): name used twice`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Sources: c.srcs}
			err := cfg.Validate("/var/log/containers/", "/var/log/pods")
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			for _, want := range c.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(c.errs) {
				t.Errorf("%d problems reported, want %d:\n%v", n, len(c.errs), err)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []Source
		err  string
	}{
		{args: []string{"--node-file", "audit=kube-audit:/var/log/kube-apiserver/audit*.log", "--node-file", "sys=raw:/var/log/a.log, /var/log/b.log"},
			want: []Source{{Name: "audit", Parser: ParserKubeAudit, Paths: []string{"/var/log/kube-apiserver/audit*.log"}}, {Name: "sys", Parser: ParserRaw, Paths: []string{"/var/log/a.log", "/var/log/b.log"}}}},
		{args: []string{"--node-file", "/var/log/a.log"}, err: "want NAME=PARSER:GLOB"},
		{args: []string{"--node-file", "a=/var/log/a.log"}, err: "want NAME=PARSER:GLOB"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.Register(fs)
		err := fs.Parse(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.Sources, c.want) {
			t.Errorf("%v: %+v, want %+v", c.args, cfg.Sources, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Flags and file add up.
	cfg := Config{File: write("ok.yaml", "sources:\n- name: audit\n  paths: [/var/log/kube-apiserver/audit*.log]\n  parser: kube-audit\n"),
		Sources: []Source{{Name: "sys", Paths: []string{"/var/log/sys.log"}}}}
	if err := cfg.Load(); err != nil {
		t.Fatal(err)
	}
	if want := []Source{{Name: "sys", Paths: []string{"/var/log/sys.log"}}, {Name: "audit", Paths: []string{"/var/log/kube-apiserver/audit*.log"}, Parser: ParserKubeAudit}}; !reflect.DeepEqual(cfg.Sources, want) {
		t.Errorf("%+v, want %+v", cfg.Sources, want)
	}
	for name, body := range map[string]string{
		"misspelt.yaml": "sources:\n- name: audit\n  path: [/var/log/a.log]\n",
		"unknown.yaml":  "source:\n- name: audit\n",
		"bad.yaml":      "sources: [",
	} {
		cfg := Config{File: write(name, body)}
		if err := cfg.Load(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	cfg = Config{File: filepath.Join(dir, "missing.yaml")}
	if err := cfg.Load(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestCollectorDocSample loads the node files sample of docs/collector.md: it must decode
// strictly and validate.
func TestCollectorDocSample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "collector.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "<!-- node-files-sample -->\n```yaml\n"
	i := bytes.Index(doc, []byte(start))
	if i < 0 {
		t.Fatal("docs/collector.md has no node-files-sample")
	}
	body := doc[i+len(start):]
	body = body[:bytes.Index(body, []byte("```"))]
	srcs, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Sources: srcs}
	if err := cfg.Validate("/var/log/containers", "/var/log/pods"); err != nil {
		t.Fatal(err)
	}
	if len(srcs) < 2 || srcs[0].ParserOf() != ParserKubeAudit {
		t.Errorf("sample sources %+v: want the audit log first, and more", srcs)
	}
}

func TestFields(t *testing.T) {
	for _, c := range []struct {
		parser       Parser
		line, fields string
		reason       string
	}{
		{ParserRaw, `{"a":1}`, "", ""},
		{ParserJSON, ` { "a" : 1, "b": [true, null], "c": {"d": "é\u00e9"} } `, `{"a":1,"b":[true,null],"c":{"d":"é\u00e9"}}`, ""},
		{ParserJSON, `{"a":1} trailing`, "", ReasonBadJSON},
		{ParserJSON, `{"a":`, "", ReasonBadJSON},
		{ParserJSON, `"string"`, "", ReasonNotObject},
		{ParserJSON, ``, "", ReasonNotObject},
		{ParserJSON, "{\"a\":\"\xff\"}", "", ReasonInvalidUTF8},
		{ParserKubeAudit, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"i","stage":"ResponseComplete","stageTimestamp":"2026-12-01T19:40:00Z"}`, `{"audit_id":"i","stage":"ResponseComplete"}`, ""},
		{ParserKubeAudit, `{}`, "", "not an audit event"},
	} {
		fields, _, err := c.parser.Fields([]byte("prefix"), []byte(c.line))
		if c.reason != "" {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason != c.reason || pe.Parser != c.parser {
				t.Errorf("%s %q: %v, want reason %q", c.parser, c.line, err, c.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", c.parser, c.line, err)
			continue
		}
		want := c.fields
		if want != "" {
			want = "prefix" + want // appended to the buffer given
		}
		if string(fields) != want {
			t.Errorf("%s %q: fields %s, want %s", c.parser, c.line, fields, want)
		}
	}
}

// FuzzJSONFields: what the json parser accepts is one valid UTF-8 JSON object, equal in value
// to the line.
func FuzzJSONFields(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` {"a" : [1, {"b": null}]}`, `{"a":"\ud800"}`, `[]`, `{`, "{\"\xff\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fields, ts, err := ParserJSON.Fields(nil, line)
		if ts != nil {
			t.Fatal("json parser set ts")
		}
		if err != nil {
			return
		}
		if !json.Valid(fields) || !utf8.Valid(fields) || fields[0] != '{' {
			t.Fatalf("fields %q of %q", fields, line)
		}
		var a, b any
		if json.Unmarshal(line, &a) != nil || json.Unmarshal(fields, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("fields %q differ from line %q", fields, line)
		}
	})
}
