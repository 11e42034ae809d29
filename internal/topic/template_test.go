package topic

import (
	"regexp"
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	tests := []struct {
		tmpl, ns   string
		labels     map[string]string
		want       string
		usesLabels bool
		parseErr   bool
		renderErr  bool
	}{
		{tmpl: DefaultTemplate, ns: "team-a", want: "logs.team-a"},
		{tmpl: "{label:tier}.{namespace}", ns: "a", labels: map[string]string{"tier": "gold"}, want: "gold.a", usesLabels: true},
		{tmpl: "{label:tier}.{namespace}", ns: "a", renderErr: true, usesLabels: true},
		{tmpl: "{label:tier}.{namespace}", ns: "a", labels: map[string]string{"tier": "bad/value"}, renderErr: true, usesLabels: true},
		{tmpl: "logs.{namespace}", ns: strings.Repeat("a", 250), renderErr: true},
		{tmpl: "logs", parseErr: true},
		{tmpl: "logs.{pod}", parseErr: true},
		{tmpl: "logs.{namespace", parseErr: true},
		{tmpl: "lo gs.{namespace}", parseErr: true},
		{tmpl: "{label:}{namespace}", parseErr: true},
	}
	for _, tt := range tests {
		tp, err := Parse(tt.tmpl)
		if (err != nil) != tt.parseErr {
			t.Errorf("Parse(%q) err = %v", tt.tmpl, err)
			continue
		}
		if err != nil {
			continue
		}
		if tp.UsesLabels() != tt.usesLabels {
			t.Errorf("Parse(%q).UsesLabels() = %v", tt.tmpl, !tt.usesLabels)
		}
		got, err := tp.Render(tt.ns, tt.labels)
		if (err != nil) != tt.renderErr || got != tt.want && !tt.renderErr {
			t.Errorf("Render(%q, %q) = %q, %v", tt.tmpl, tt.ns, got, err)
		}
	}
}

// The default template, Of and DefaultPattern are one contract: what the collector writes is
// what the archiver finds and what the gateway reads.
func TestDefaultContract(t *testing.T) {
	tmpl, err := Parse(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(DefaultPattern)
	for _, ns := range []string{"a", "team-a", "kube-system", "x0", strings.Repeat("n", 63)} {
		got, err := tmpl.Render(ns, nil)
		if err != nil || got != Of(ns) {
			t.Fatalf("Render(%q) = %q, %v; Of = %q", ns, got, err, Of(ns))
		}
		m := re.FindStringSubmatch(got)
		if m == nil || m[re.SubexpIndex("namespace")] != ns {
			t.Errorf("DefaultPattern on %q = %q, want namespace %q", got, m, ns)
		}
	}
	// Not namespace topics: other prefixes, upper case, the token store, a suffix topic.
	for _, topic := range []string{"logs.", "logs.-a", "logs.A", "logs.a_b", "logrouter.tokens", "logsxa", "logs.a.b", "x.logs.a"} {
		if re.MatchString(topic) {
			t.Errorf("DefaultPattern matches %q", topic)
		}
	}
}

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"logs.a", true}, {"A_b-c.9", true}, {strings.Repeat("x", 249), true},
		{"", false}, {".", false}, {"..", false}, {strings.Repeat("x", 250), false}, {"a/b", false}, {"a b", false}, {"é", false},
	} {
		if err := Valid(tt.name); (err == nil) != tt.ok {
			t.Errorf("Valid(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
