package topic

import (
	"errors"
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

func TestValidSuffix(t *testing.T) {
	for _, tt := range []struct {
		s  string
		ok bool
	}{
		{"audit", true}, {"a", true}, {"debug-1", true}, {"0", true}, {strings.Repeat("s", MaxSuffixLen), true},
		{"", false}, {strings.Repeat("s", MaxSuffixLen+1), false}, {"a.b", false}, {".", false}, {"..", false},
		{"-a", false}, {"a-", false}, {"Audit", false}, {"a_b", false}, {"a/b", false}, {"a%2eb", false},
		{"a b", false}, {"é", false}, {"a\x00", false}, {"a+b", false},
	} {
		err := ValidSuffix(tt.s)
		if (err == nil) != tt.ok {
			t.Errorf("ValidSuffix(%q) = %v, want ok=%v", tt.s, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSuffix) {
			t.Errorf("ValidSuffix(%q) = %v, want ErrInvalidSuffix", tt.s, err)
		}
	}
}

// TestSuffixContract: WithSuffix, SuffixPattern and ParseDefault agree; every valid suffix
// topic is a valid Kafka topic; and no suffix can produce another namespace's topic (plain or
// suffixed), because neither namespaces nor suffixes contain dots.
func TestSuffixContract(t *testing.T) {
	namespaces := []string{"a", "a-b", "team-a", "kube-system", "x0", "audit", strings.Repeat("n", 63)}
	suffixes := []string{"", "a", "audit", "b", "debug-1", "team-a", strings.Repeat("s", MaxSuffixLen)}
	re := regexp.MustCompile(SuffixPattern)
	plain := regexp.MustCompile(DefaultPattern)
	owner := map[string][2]string{}
	for _, ns := range namespaces {
		for _, sfx := range suffixes {
			if sfx != "" {
				if err := ValidSuffix(sfx); err != nil {
					t.Fatal(err)
				}
			}
			tp := WithSuffix(Of(ns), sfx)
			if err := Valid(tp); err != nil {
				t.Errorf("WithSuffix(%q, %q) = %q: %v", Of(ns), sfx, tp, err)
			}
			if prev, dup := owner[tp]; dup {
				t.Errorf("topic %q is both %v and %v", tp, prev, [2]string{ns, sfx})
			}
			owner[tp] = [2]string{ns, sfx}
			gotNS, gotSfx, ok := ParseDefault(tp)
			if !ok || gotNS != ns || gotSfx != sfx {
				t.Errorf("ParseDefault(%q) = %q, %q, %v; want %q, %q", tp, gotNS, gotSfx, ok, ns, sfx)
			}
			m := re.FindStringSubmatch(tp)
			if m == nil || m[re.SubexpIndex("namespace")] != ns || m[re.SubexpIndex("suffix")] != sfx {
				t.Errorf("SuffixPattern on %q = %q", tp, m)
			}
			// A suffix topic is never a plain namespace topic.
			if sfx != "" && plain.MatchString(tp) {
				t.Errorf("DefaultPattern matches suffix topic %q", tp)
			}
		}
	}
	if WithSuffix("logs.a", "") != "logs.a" {
		t.Error("an empty suffix must be the namespace topic itself")
	}
	// Not namespace topics with a suffix: two suffixes, empty parts, upper case, other prefixes,
	// logrouter's own topics, over-long parts.
	for _, tp := range []string{"logs.a.b.c", "logs.a.", "logs..a", "logs.a..b", "logs.a.B", "logs.a.b_c", "logs.a.-b",
		"logs", "x.logs.a.b", CountersTopic, "logrouter.tokens", "logs." + strings.Repeat("n", 64) + ".a", "logs.a." + strings.Repeat("s", 64)} {
		if ns, sfx, ok := ParseDefault(tp); ok {
			t.Errorf("ParseDefault(%q) = %q, %q, true", tp, ns, sfx)
		}
	}
	if Valid(CountersTopic) != nil || plain.MatchString(CountersTopic) || re.MatchString(CountersTopic) {
		t.Errorf("CountersTopic %q must be a valid topic outside the namespace patterns", CountersTopic)
	}
}
