package monitoring

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const metricsDoc = "../../docs/metrics.md"

// docRow is `| metric | type | labels | meaning |` with the metric and labels in backquotes.
var docRow = regexp.MustCompile("^\\| `([^`]+)` \\| ([a-z]+) \\| ([^|]+) \\| ([^|]*[^ |][^|]*) \\|$")

// readMetricsDoc parses the metric tables of docs/metrics.md. Any table row naming a
// logrouter_ metric in another shape is an error, so that a typo cannot hide a row.
func readMetricsDoc(path string) (map[string]metric, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]metric{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `logrouter_") {
			if strings.HasPrefix(line, "|") && strings.Contains(line, "logrouter_") && !strings.Contains(line, " metric |") {
				return nil, fmt.Errorf("%s:%d: a table row naming a metric must start with \"| `logrouter_\": %q", path, n, line)
			}
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s:%d: not \"| `name` | type | `label`, ... or - | meaning |\": %q", path, n, line)
		}
		d := metric{Name: m[1], Type: m[2]}
		if labels := strings.TrimSpace(m[3]); labels != "-" {
			for _, l := range strings.Split(labels, ",") {
				l = strings.TrimSpace(l)
				if len(l) < 3 || l[0] != '`' || l[len(l)-1] != '`' {
					return nil, fmt.Errorf("%s:%d: label %q not in backquotes", path, n, l)
				}
				d.Labels = append(d.Labels, l[1:len(l)-1])
			}
			if !sort.StringsAreSorted(d.Labels) {
				return nil, fmt.Errorf("%s:%d: labels of %s not sorted by name", path, n, d.Name)
			}
		}
		if _, dup := out[d.Name]; dup {
			return nil, fmt.Errorf("%s:%d: %s documented twice", path, n, d.Name)
		}
		out[d.Name] = d
	}
	return out, sc.Err()
}

// compareDoc returns every difference between the code's metrics and the doc's.
func compareDoc(code []metric, doc map[string]metric) []string {
	var problems []string
	seen := map[string]bool{}
	for _, c := range code {
		seen[c.Name] = true
		d, ok := doc[c.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s (%s, %s, labels %v) is not in docs/metrics.md", c.Name, c.Component, c.Type, c.Labels))
		case d.Type != c.Type:
			problems = append(problems, fmt.Sprintf("%s: docs/metrics.md says %s, the code registers a %s", c.Name, d.Type, c.Type))
		case !slices.Equal(d.Labels, c.Labels):
			problems = append(problems, fmt.Sprintf("%s: docs/metrics.md lists labels %v, the code has %v", c.Name, d.Labels, c.Labels))
		}
	}
	for name := range doc {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("%s is in docs/metrics.md but no component registers it", name))
		}
	}
	sort.Strings(problems)
	return problems
}

// prefixes maps the command serving a metric to the components its names may carry.
var prefixes = map[string][]string{
	"collector":  {"logrouter_collector_", "logrouter_enricher_"},
	"archiver":   {"logrouter_archiver_"},
	"gateway":    {"logrouter_gateway_"},
	"controller": {"logrouter_controller_"},
}

var (
	nameChars = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// Prometheus wants base units: seconds and bytes, never these.
	nonBase = []string{"ms", "millis", "milliseconds", "us", "microseconds", "ns", "nanoseconds", "minutes", "hours", "days",
		"kb", "mb", "gb", "kib", "mib", "gib", "kilobytes", "megabytes", "bits", "percent", "ratio100"}
	// Words that make a name a time, which must then be in seconds.
	timeWords = []string{"age", "duration", "latency", "staleness", "elapsed", "time", "timeout", "delay"}
)

// nameProblems checks logrouter_<component>_<what>_<unit>: the component matches the command,
// counters end in _total (and nothing else does), histograms and times are in seconds or bytes,
// no non-base units, and the unit is seconds, bytes or the plural of what is counted.
func nameProblems(m metric) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, m.Name+": "+fmt.Sprintf(f, a...)) }
	if !nameChars.MatchString(m.Name) {
		bad("not lower-case snake_case")
	}
	var rest string
	for _, pre := range prefixes[m.Component] {
		if r, ok := strings.CutPrefix(m.Name, pre); ok {
			rest = r
		}
	}
	if rest == "" {
		bad("served by %s, so it must start with one of %v", m.Component, prefixes[m.Component])
		return p
	}
	words := strings.Split(rest, "_")
	if m.Type == "counter" {
		if words[len(words)-1] != "total" {
			bad("a counter must end in _total")
		} else {
			words = words[:len(words)-1]
		}
	} else if words[len(words)-1] == "total" {
		bad("only counters end in _total")
	}
	// A counter's unit may be what it counts (requests_total, errors_total).
	if len(words) < 2 && !(m.Type == "counter" && len(words) == 1) {
		bad("needs <what>_<unit> after the component")
		return p
	}
	unit := words[len(words)-1]
	for _, w := range words {
		if slices.Contains(nonBase, w) {
			bad("%q is not a base unit (use seconds or bytes)", w)
		}
		if slices.Contains(timeWords, w) && unit != "seconds" {
			bad("a time (%q) must end in _seconds", w)
		}
	}
	if (m.Type == "histogram" || m.Type == "summary") && unit != "seconds" && unit != "bytes" {
		bad("a %s must be in _seconds or _bytes", m.Type)
	}
	hasUnit := false
	for _, w := range words {
		// a base unit, or the plural of the things counted (lines, files, records, failures)
		if w == "seconds" || w == "bytes" || (len(w) > 2 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss")) {
			hasUnit = true
		}
	}
	if !hasUnit {
		bad("no unit: name seconds, bytes or the things counted (e.g. _files, _records)")
	}
	return p
}

// TestMetricsDoc checks docs/metrics.md against the metrics the components really register, in
// both directions (names, types, labels), and every name against the naming rule.
func TestMetricsDoc(t *testing.T) {
	code := componentMetrics(t)
	if len(code) < 40 {
		t.Fatalf("only %d metrics collected from the components: the collection is broken", len(code))
	}
	doc, err := readMetricsDoc(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range compareDoc(code, doc) {
		t.Error(p)
	}
	for _, m := range code {
		for _, p := range nameProblems(m) {
			t.Error(p)
		}
	}
}

// TestMetricsDocChecks shows that the comparison and the naming rule catch what they claim to.
func TestMetricsDocChecks(t *testing.T) {
	code := []metric{
		{Name: "logrouter_collector_lines_read_total", Type: "counter", Labels: []string{"namespace"}, Component: "collector"},
		{Name: "logrouter_gateway_streams_active", Type: "gauge", Component: "gateway"},
		{Name: "logrouter_archiver_spool_bytes", Type: "gauge", Component: "archiver"},
	}
	doc := map[string]metric{
		"logrouter_collector_lines_read_total": {Name: "logrouter_collector_lines_read_total", Type: "counter", Labels: []string{"namespace", "pod"}},
		"logrouter_archiver_spool_bytes":       {Name: "logrouter_archiver_spool_bytes", Type: "counter"},
		"logrouter_archiver_gone_total":        {Name: "logrouter_archiver_gone_total", Type: "counter"},
	}
	got := compareDoc(code, doc)
	want := []string{
		"logrouter_archiver_gone_total is in docs/metrics.md but no component registers it",
		"logrouter_archiver_spool_bytes: docs/metrics.md says counter, the code registers a gauge",
		"logrouter_collector_lines_read_total: docs/metrics.md lists labels [namespace pod], the code has [namespace]",
		"logrouter_gateway_streams_active (gateway, gauge, labels []) is not in docs/metrics.md",
	}
	if !slices.Equal(got, want) {
		t.Errorf("compareDoc:\n got %q\nwant %q", got, want)
	}

	for _, tt := range []struct {
		m    metric
		want int // problems
	}{
		{metric{Name: "logrouter_collector_lines_read_total", Type: "counter", Component: "collector"}, 0},
		{metric{Name: "logrouter_enricher_cached_pods", Type: "gauge", Component: "collector"}, 0},
		{metric{Name: "logrouter_gateway_request_duration_seconds", Type: "histogram", Component: "gateway"}, 0},
		{metric{Name: "logrouter_collector_lines_read", Type: "counter", Component: "collector"}, 1},        // no _total
		{metric{Name: "logrouter_archiver_spool_bytes_total", Type: "gauge", Component: "archiver"}, 1},     // _total on a gauge
		{metric{Name: "logrouter_archiver_lines_read_total", Type: "counter", Component: "collector"}, 1},   // wrong component
		{metric{Name: "collector_lines_total", Type: "counter", Component: "collector"}, 1},                 // no prefix
		{metric{Name: "logrouter_gateway_request_duration_ms", Type: "histogram", Component: "gateway"}, 4}, // ms, time, histogram, no unit
		{metric{Name: "logrouter_archiver_upload_latency", Type: "histogram", Component: "archiver"}, 3},    // time, histogram, no unit
		{metric{Name: "logrouter_gateway_up", Type: "gauge", Component: "gateway"}, 1},                      // no what_unit
		{metric{Name: "logrouter_gateway_token_store_stale", Type: "gauge", Component: "gateway"}, 1},       // no unit
		{metric{Name: "logrouter_gateway_readyBytes", Type: "gauge", Component: "gateway"}, 2},              // case, no what_unit
	} {
		if got := nameProblems(tt.m); len(got) != tt.want {
			t.Errorf("%s: %d problems %q, want %d", tt.m.Name, len(got), got, tt.want)
		}
	}

	// A malformed row is an error, not a silently skipped metric.
	dir := t.TempDir()
	for _, row := range []string{
		"| logrouter_collector_x_total | counter | - | m |",
		"| `logrouter_collector_x_total` | counter | namespace | m |",
		"| `logrouter_collector_x_total` | counter | `pod`, `namespace` | m |",
		"| `logrouter_collector_x_total` | counter | - |  |",
	} {
		p := dir + "/m.md"
		if err := os.WriteFile(p, []byte("| metric | type | labels | meaning |\n|---|---|---|---|\n"+row+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readMetricsDoc(p); err == nil {
			t.Errorf("row %q accepted", row)
		}
	}
}
