package monitoring

import (
	"context"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"

	"github.com/logrouter/logrouter/internal/cli"
)

const (
	alertsFile    = "../../deploy/monitoring/alerts.yaml"
	operationsDoc = "../../docs/operations.md"
)

var promParser = parser.NewParser(parser.Options{})

func loadRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promParser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// knownMetrics are the series a rule may name: the components' metrics with their labels, the
// Go and process metrics every command registers (cli.NewRegistry), and Prometheus' own up.
func knownMetrics(t *testing.T) map[string][]string {
	known := map[string][]string{"up": nil}
	for _, m := range componentMetrics(t) {
		known[m.Name] = m.Labels
		if m.Type == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[m.Name+s] = append(slices.Clone(m.Labels), "le")
			}
		}
	}
	mfs, err := cli.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		known[mf.GetName()] = nil
	}
	return known
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

// selectorProblems lists metrics an expression names that the code does not register, and
// label matchers on labels those metrics do not have.
func selectorProblems(expr string, known map[string][]string) []string {
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		ls, ok := known[vs.Name]
		if !ok {
			p = append(p, "metric "+vs.Name+" is not registered by any component")
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName && !slices.Contains(ls, m.Name) && !slices.Contains(targetLabels, m.Name) {
				p = append(p, vs.Name+" has no label "+m.Name)
			}
		}
		return nil
	})
	return p
}

// alertCase is one `promtool test rules` case: series loaded at a 1m interval (promqltest
// syntax), the rule evaluated every minute from 0 to at, and the alerts firing then, each as
// its labels without alertname and severity.
type alertCase struct {
	alert, name string
	series      string
	at          time.Duration
	firing      []string
}

const (
	coll = `job="logrouter-collector", instance="n1"`
	gw   = `job="logrouter-gateway", instance="g1"`
	arch = `job="logrouter-archiver", instance="a1"`
	file = `namespace="shop", pod="web-0", container="app", file="0.log"`
)

var alertCases = []alertCase{
	{"LogrouterCollectorDown", "down 7m", `up{` + coll + `} 1x5 0x10
		up{job="other", instance="x"} 0x20`, 12 * time.Minute,
		[]string{`{instance="n1", job="logrouter-collector"}`}},
	{"LogrouterCollectorDown", "PodMonitor job name", `up{job="monitoring/logrouter-collector", instance="n1"} 0x20`, 12 * time.Minute,
		[]string{`{instance="n1", job="monitoring/logrouter-collector"}`}},
	{"LogrouterCollectorDown", "down 3m only", `up{` + coll + `} 1x5 0x3 1x10`, 12 * time.Minute, nil},

	{"LogrouterCollectorRestarting", "3 restarts", `process_start_time_seconds{` + coll + `} 100x5 400x5 700x5 1000x5`, 20 * time.Minute,
		[]string{`{instance="n1", job="logrouter-collector"}`}},
	{"LogrouterCollectorRestarting", "1 restart", `process_start_time_seconds{` + coll + `} 100x10 400x10`, 20 * time.Minute, nil},

	{"LogrouterNamespaceNotShipping", "read, not acked", `logrouter_collector_bytes_read_total{` + coll + `, namespace="shop"} 0+1000x40
		logrouter_collector_bytes_acked_total{` + coll + `, namespace="shop"} 0+1000x10 10000x30
		logrouter_collector_bytes_read_total{` + coll + `, namespace="ok"} 0+1000x40
		logrouter_collector_bytes_acked_total{` + coll + `, namespace="ok"} 0+1000x40`, 35 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterNamespaceNotShipping", "behind, not read", `logrouter_collector_bytes_read_total{` + coll + `, namespace="shop"} 5000x40
		logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 4096x40
		logrouter_collector_bytes_acked_total{` + coll + `, namespace="shop"} 1000x40`, 35 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterNamespaceNotShipping", "shipping", `logrouter_collector_bytes_read_total{` + coll + `, namespace="shop"} 0+1000x40
		logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 4096x40
		logrouter_collector_bytes_acked_total{` + coll + `, namespace="shop"} 0+1000x40`, 35 * time.Minute, nil},
	{"LogrouterNamespaceNotShipping", "idle", `logrouter_collector_bytes_read_total{` + coll + `, namespace="shop"} 5000x40
		logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 0x40
		logrouter_collector_bytes_acked_total{` + coll + `, namespace="shop"} 5000x40`, 35 * time.Minute, nil},

	{"LogrouterCollectorBytesBehindGrowing", "10 MiB more a minute", `logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 0+10485760x60`, 50 * time.Minute,
		[]string{`{instance="n1"}`}},
	{"LogrouterCollectorBytesBehindGrowing", "large but steady", `logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 104857600x60`, 50 * time.Minute, nil},
	{"LogrouterCollectorBytesBehindGrowing", "growing but small", `logrouter_collector_file_bytes_behind{` + coll + `, ` + file + `} 0+1024x60`, 50 * time.Minute, nil},

	{"LogrouterCollectorUnackedLinesOld", "400s", `logrouter_collector_oldest_unacked_line_age_seconds{` + coll + `} 0x5 400x10`, 14 * time.Minute,
		[]string{`{instance="n1", job="logrouter-collector"}`}},
	{"LogrouterCollectorUnackedLinesOld", "acked again", `logrouter_collector_oldest_unacked_line_age_seconds{` + coll + `} 0x5 400x1 0x10`, 14 * time.Minute, nil},

	{"LogrouterCollectorProduceErrors", "errors", `logrouter_collector_produce_errors_total{` + coll + `, namespace="shop"} 0+5x30
		logrouter_collector_topic_errors_total{` + coll + `, namespace="shop"} 0x30`, 25 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterCollectorProduceErrors", "topic errors", `logrouter_collector_produce_errors_total{` + coll + `, namespace="shop"} 0x30
		logrouter_collector_topic_errors_total{` + coll + `, namespace="shop"} 0+1x30`, 25 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterCollectorProduceErrors", "none", `logrouter_collector_produce_errors_total{` + coll + `, namespace="shop"} 3x30
		logrouter_collector_topic_errors_total{` + coll + `, namespace="shop"} 0x30`, 25 * time.Minute, nil},

	{"LogrouterCollectorCheckpointsFailing", "save errors", `logrouter_collector_checkpoint_errors_total{` + coll + `} 0+1x20
		logrouter_collector_checkpoint_age_seconds{` + coll + `} 1x20`, 15 * time.Minute,
		[]string{`{instance="n1", job="logrouter-collector"}`}},
	{"LogrouterCollectorCheckpointsFailing", "not saved for long", `logrouter_collector_checkpoint_errors_total{` + coll + `} 0x20
		logrouter_collector_checkpoint_age_seconds{` + coll + `} 0+60x20`, 15 * time.Minute,
		[]string{`{instance="n1", job="logrouter-collector"}`}},
	{"LogrouterCollectorCheckpointsFailing", "healthy", `logrouter_collector_checkpoint_errors_total{` + coll + `} 2x20
		logrouter_collector_checkpoint_age_seconds{` + coll + `} 1x20`, 15 * time.Minute, nil},

	{"LogrouterCollectorLostLines", "counted at start (new series)", `logrouter_collector_lost_bytes_total{` + coll + `, namespace="shop", reason="deleted_before_read"} _x10 4096x50`, 30 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterCollectorLostLines", "counted while running", `logrouter_collector_lost_bytes_total{` + coll + `, namespace="shop", reason="deleted_before_read"} 0x70 4096x10`, 75 * time.Minute,
		[]string{`{instance="n1", namespace="shop"}`}},
	{"LogrouterCollectorLostLines", "an hour after the count", `logrouter_collector_lost_bytes_total{` + coll + `, namespace="shop", reason="deleted_before_read"} 4096x100`, 90 * time.Minute, nil},
	{"LogrouterCollectorLostLines", "nothing lost", `logrouter_collector_lost_bytes_total{` + coll + `, namespace="shop", reason="deleted_before_read"} 0x100`, 90 * time.Minute, nil},

	{"LogrouterArchiverLag", "1.2M over two archivers", `logrouter_archiver_consumer_lag_records{` + arch + `, topic="logs.shop"} 600000x30
		logrouter_archiver_consumer_lag_records{job="logrouter-archiver", instance="a2", topic="logs.shop"} 600000x30
		logrouter_archiver_consumer_lag_records{` + arch + `, topic="logs.ok"} 10x30`, 20 * time.Minute,
		[]string{`{topic="logs.shop"}`}},
	{"LogrouterArchiverLag", "800k", `logrouter_archiver_consumer_lag_records{` + arch + `, topic="logs.shop"} 400000x30
		logrouter_archiver_consumer_lag_records{job="logrouter-archiver", instance="a2", topic="logs.shop"} 400000x30`, 20 * time.Minute, nil},

	{"LogrouterArchiverUploadsFailing", "failing in a row", `logrouter_archiver_upload_consecutive_failures{` + arch + `} 0x2 1+1x10`, 12 * time.Minute,
		[]string{`{instance="a1", job="logrouter-archiver"}`}},
	{"LogrouterArchiverUploadsFailing", "failures that recover", `logrouter_archiver_upload_consecutive_failures{` + arch + `} 0 1 2 0 1 2 0 1 2 0 1 2 0 1 2`, 12 * time.Minute, nil},

	{"LogrouterArchiveStale", "age grows", `logrouter_archiver_oldest_unarchived_record_age_seconds{` + arch + `} 0+120x30`, 25 * time.Minute,
		[]string{`{instance="a1", job="logrouter-archiver"}`}},
	{"LogrouterArchiveStale", "under 30m", `logrouter_archiver_oldest_unarchived_record_age_seconds{` + arch + `} 0+60x30`, 25 * time.Minute, nil},

	{"LogrouterGatewayErrors", "9% 503", `logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="200"} 0+100x30
		logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="503", code="unavailable"} 0+10x30`, 20 * time.Minute,
		[]string{`{job="logrouter-gateway"}`}},
	{"LogrouterGatewayErrors", "1% 500", `logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="200"} 0+100x30
		logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="500", code="internal"} 0+1x30
		logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="404", code="not_found"} 0+50x30`, 20 * time.Minute, nil},

	{"LogrouterGatewayAuthFailureSpike", "from 0.1/s to 10/s", `logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="401", code="unauthenticated"} 0+6x60 960+600x20`, 70 * time.Minute,
		[]string{`{job="logrouter-gateway"}`}},
	{"LogrouterGatewayAuthFailureSpike", "steady 10/s", `logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="401", code="unauthenticated"} 0+600x80`, 75 * time.Minute, nil},
	{"LogrouterGatewayAuthFailureSpike", "spike to 0.5/s", `logrouter_gateway_requests_total{` + gw + `, endpoint="logs", status="403", code="forbidden"} 0+1x60 61+30x20`, 70 * time.Minute, nil},

	{"LogrouterGatewayTokenStoreUnavailable", "never confirmed", `logrouter_gateway_token_store_staleness_seconds{` + gw + `} 1x5 Inf Inf Inf Inf Inf Inf Inf Inf Inf Inf`, 12 * time.Minute,
		[]string{`{instance="g1", job="logrouter-gateway"}`}},
	{"LogrouterGatewayTokenStoreUnavailable", "a blip", `logrouter_gateway_token_store_staleness_seconds{` + gw + `} 1x5 30 1x10`, 12 * time.Minute, nil},
}

// firingAt evaluates rule over series every minute up to at, as Prometheus' rule manager and
// promtool do, and returns the firing alerts' labels.
func firingAt(t *testing.T, r rulefmt.Rule, series string, at time.Duration) []string {
	t.Helper()
	st := promqltest.LoadedStorage(t, "load 1m\n"+indent(series))
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 50_000_000)
	expr, err := promParser.ParseExpr(r.Expr)
	if err != nil {
		t.Fatal(err)
	}
	rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	query := rules.EngineQueryFunc(engine, st)
	for ts := time.Duration(0); ts <= at; ts += time.Minute {
		if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).Add(ts).UTC(), query, nil, 0); err != nil {
			t.Fatalf("eval at %s: %v", ts, err)
		}
	}
	var out []string
	for _, a := range rule.ActiveAlerts() {
		if a.State != rules.StateFiring {
			continue
		}
		b := labels.NewBuilder(a.Labels)
		b.Del(labels.AlertName, "severity")
		out = append(out, b.Labels().String())
	}
	sort.Strings(out)
	return out
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("  " + strings.TrimSpace(l) + "\n")
	}
	return b.String()
}

// TestAlertRules parses deploy/monitoring/alerts.yaml with Prometheus' rulefmt and runs each
// alert against input series: each has a case where it fires and one where it does not.
func TestAlertRules(t *testing.T) {
	rs := loadRules(t)
	byName := map[string]rulefmt.Rule{}
	for _, r := range rs {
		if r.Alert == "" {
			t.Errorf("recording rule %q: only alerts are expected here", r.Record)
			continue
		}
		byName[r.Alert] = r
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range alertCases {
		r, ok := byName[tc.alert]
		if !ok {
			t.Errorf("case %s/%s: no such alert", tc.alert, tc.name)
			continue
		}
		if len(tc.firing) > 0 {
			fires[tc.alert] = true
		} else {
			quiet[tc.alert] = true
		}
		t.Run(tc.alert+"/"+tc.name, func(t *testing.T) {
			if got := firingAt(t, r, tc.series, tc.at); !slices.Equal(got, tc.firing) {
				t.Errorf("at %s firing %q, want %q", tc.at, got, tc.firing)
			}
		})
	}
	for name := range byName {
		if !fires[name] || !quiet[name] {
			t.Errorf("%s needs a case where it fires and one where it does not", name)
		}
	}
}

// TestAlertMetricsExist checks that every series an alert names is registered by the code, with
// the labels its matchers use, and that the checker catches a wrong name or label.
func TestAlertMetricsExist(t *testing.T) {
	known := knownMetrics(t)
	for _, r := range loadRules(t) {
		for _, p := range selectorProblems(r.Expr, known) {
			t.Errorf("%s: %s", r.Alert, p)
		}
	}
	for expr, want := range map[string]int{
		`rate(logrouter_collector_lines_read_total{namespace="a"}[5m])`:              0,
		`rate(logrouter_collector_line_read_total[5m])`:                              1,
		`sum(logrouter_gateway_requests_total{stauts=~"5.."})`:                       1,
		`histogram_quantile(0.9, logrouter_gateway_request_duration_seconds_bucket)`: 0,
	} {
		if got := selectorProblems(expr, known); len(got) != want {
			t.Errorf("%s: problems %q, want %d", expr, got, want)
		}
	}
}

// TestAlertRunbooks checks that every alert links to its own section under "## Alerts" in
// docs/operations.md.
func TestAlertRunbooks(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, alerts, ok := strings.Cut(doc, "\n## Alerts\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Alerts" section`)
	}
	if i := strings.Index(alerts, "\n## "); i >= 0 {
		alerts = alerts[:i]
	}
	heading := regexp.MustCompile(`(?m)^### (\S+)$`)
	sections := map[string]string{}
	ms := heading.FindAllStringSubmatchIndex(alerts, -1)
	for i, m := range ms {
		end := len(alerts)
		if i+1 < len(ms) {
			end = ms[i+1][0]
		}
		sections[alerts[m[2]:m[3]]] = alerts[m[1]:end]
	}
	names := map[string]bool{}
	for _, r := range loadRules(t) {
		names[r.Alert] = true
		body, ok := sections[r.Alert]
		if !ok {
			t.Errorf("%s: no \"### %s\" runbook under ## Alerts in docs/operations.md", r.Alert, r.Alert)
			continue
		}
		if len(strings.TrimSpace(body)) < 100 {
			t.Errorf("%s: runbook too short to say what it means and what to do", r.Alert)
		}
		if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] == "" || !strings.HasSuffix(r.Annotations["runbook_url"], want) {
			t.Errorf("%s: runbook_url %q does not end in %s", r.Alert, r.Annotations["runbook_url"], want)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: no summary", r.Alert)
		}
	}
	for name := range sections {
		if !names[name] {
			t.Errorf("docs/operations.md has a runbook for %s, which is not an alert", name)
		}
	}
}
