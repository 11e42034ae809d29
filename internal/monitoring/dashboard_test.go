package monitoring

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "../../deploy/monitoring/dashboard.json"

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // rows
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	grafanaVar  = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range)\}?`)
	grafanaVar2 = regexp.MustCompile(`\$\{?[a-z_]+\}?`)
	labelValues = regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*), *([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
)

// promQL turns a Grafana query into PromQL: interval variables become a duration, others a regex.
func promQL(expr string) string {
	return grafanaVar2.ReplaceAllString(grafanaVar.ReplaceAllString(expr, "5m"), ".*")
}

// TestDashboard parses deploy/monitoring/dashboard.json and checks that every query parses as
// PromQL and names only metrics (and labels) the components register, and that it shows what an
// operator looks at: throughput, bytes behind, Kafka lag, errors, archive freshness, gateway traffic.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	known := knownMetrics(t)
	used := map[string]bool{}
	var walk func([]panel)
	n := 0
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				n++
				q := promQL(tg.Expr)
				for _, prob := range selectorProblems(q, known) {
					t.Errorf("panel %q: %s: %s", p.Title, tg.Expr, prob)
				}
				if e, err := promParser.ParseExpr(q); err == nil {
					parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
						if vs, ok := n.(*parser.VectorSelector); ok {
							used[vs.Name] = true
						}
						return nil
					})
				}
			}
		}
	}
	walk(d.Panels)
	if n == 0 {
		t.Fatal("no queries in the dashboard")
	}
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil || !strings.HasPrefix(q.Query, "label_values") {
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: cannot read %q", v.Name, q.Query)
			continue
		}
		if ls, ok := known[m[1]]; !ok {
			t.Errorf("variable %s: metric %s is not registered", v.Name, m[1])
		} else if !strings.Contains(" "+strings.Join(ls, " ")+" ", " "+m[2]+" ") {
			t.Errorf("variable %s: %s has no label %s", v.Name, m[1], m[2])
		}
	}
	for what, metric := range map[string]string{
		"per-namespace throughput": "logrouter_collector_bytes_acked_total",
		"bytes behind":             "logrouter_collector_file_bytes_behind",
		"Kafka lag":                "logrouter_archiver_consumer_lag_records",
		"collector errors":         "logrouter_collector_produce_errors_total",
		"archiver errors":          "logrouter_archiver_errors_total",
		"archive freshness":        "logrouter_archiver_oldest_unarchived_record_age_seconds",
		"gateway traffic":          "logrouter_gateway_requests_total",
	} {
		if !used[metric] {
			t.Errorf("no panel shows %s (%s)", what, metric)
		}
	}
	if got := selectorProblems(promQL(`sum(rate(logrouter_gateway_request_total{status=~"$status"}[$__rate_interval]))`), known); len(got) != 1 {
		t.Errorf("a misspelt metric gave %q", got)
	}
}
