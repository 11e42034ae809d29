package helm

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
)

// minimalValues is examples/minimal.yaml: what every install sets.
func minimalValues(t testing.TB) map[string]any {
	t.Helper()
	ex, err := Examples()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ex {
		if e.Name == "minimal.yaml" {
			return e.Values
		}
	}
	t.Fatal("no examples/minimal.yaml")
	return nil
}

// TestBadValuesFail: values.schema.json and the templates refuse bad values at install with
// a message that names the value.
func TestBadValuesFail(t *testing.T) {
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, set string
		base      bool // over examples/minimal.yaml
		want      []string
	}{
		{"no brokers", "", false, []string{"kafka.brokers is required"}},
		{"no bucket with the archiver", "kafka.brokers=k:9092", false, []string{"bucket.url is required"}},
		{"brokers without port", "kafka.brokers=kafka", true, []string{"/kafka/brokers", "does not match pattern"}},
		{"misspelt key", "collector.bufferByte=1", true, []string{"bufferByte"}},
		{"unknown top-level key", "colector.enabled=false", true, []string{"colector"}},
		{"buffer below 8 reads", "collector.bufferBytes=1000", true, []string{"/collector/bufferBytes", "minimum"}},
		{"buffer as a string", "collector.bufferBytes=64Mi", true, []string{"/collector/bufferBytes"}},
		{"memory set by hand", "collector.resources.limits.memory=1Gi", true, []string{"memory"}},
		{"bad log access", "collector.logAccess=privileged", true, []string{"/collector/logAccess"}},
		{"no priority class", "collector.priorityClassName=", true, []string{"/collector/priorityClassName"}},
		{"sasl mechanism", "kafka.sasl.mechanism=GSSAPI", true, []string{"/kafka/sasl/mechanism"}},
		{"sasl without secret", "kafka.sasl.mechanism=PLAIN", true, []string{"kafka.sasl.secretName is required"}},
		{"bad duration", "topics.retention=3 days", true, []string{"/topics/retention"}},
		{"replication factor 0", "topics.replicationFactor=0", true, []string{"/topics/replicationFactor"}},
		{"topic template without namespace", "topics.template=logs", true, []string{"/topics/template"}},
		{"bucket not a URL", "bucket.url=my-bucket", true, []string{"/bucket/url"}},
		{"archive format", "archiver.format=csv", true, []string{"/archiver/format"}},
		{"port out of range", "gateway.port=70000", true, []string{"/gateway/port"}},
		{"ingress without hosts", "gateway.ingress.enabled=true", true, []string{"gateway.ingress.hosts"}},
		{"extraEnv overrides a derived setting", "collector.extraEnv[0].name=LOGROUTER_BUFFER_BYTES,collector.extraEnv[0].value=1", true, []string{"collector.extraEnv sets LOGROUTER_BUFFER_BYTES, which the chart sets itself"}},
		{"extraEnv overrides the brokers", "gateway.extraEnv[0].name=LOGROUTER_BROKERS,gateway.extraEnv[0].value=x:1", true, []string{"gateway.extraEnv sets LOGROUTER_BROKERS"}},
		{"extraEnv overrides the drain timeout", "archiver.extraEnv[0].name=LOGROUTER_DRAIN_TIMEOUT,archiver.extraEnv[0].value=1h", true, []string{"archiver.extraEnv sets LOGROUTER_DRAIN_TIMEOUT"}},
		{"two controllers without leader election", "controller.leaderElection.enabled=false", true, []string{"controller.replicas > 1 needs controller.leaderElection.enabled"}},
		{"controller extraEnv overrides leader election", "controller.extraEnv[0].name=LOGROUTER_LEADER_ELECT,controller.extraEnv[0].value=false", true, []string{"controller.extraEnv sets LOGROUTER_LEADER_ELECT"}},
		{"crds.install not a boolean", "crds.install=maybe", true, []string{"/crds/install"}},
		{"dashboard without a label", "monitoring.dashboard.enabled=true,monitoring.dashboard.labels.grafana_dashboard=null", true, []string{"/monitoring/dashboard/labels"}},
		{"misspelt monitoring key", "monitoring.prometheusRules.enabled=true", true, []string{"prometheusRules"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := map[string]any{}
			if tt.base {
				vals = minimalValues(t)
			}
			if tt.set != "" {
				if err := strvals.ParseInto(tt.set, vals); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Render(ch, vals, defaultRelease)
			if err == nil {
				t.Fatalf("--set %s rendered; want an error", tt.set)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// The same values render without the bad one.
	if _, err := Render(ch, minimalValues(t), defaultRelease); err != nil {
		t.Fatalf("minimal values: %v", err)
	}
}

// leaves lists the paths of values.yaml's leaves: scalars, lists and empty maps.
func leaves(prefix string, v map[string]any) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := v[k].(map[string]any); ok && len(m) > 0 {
			out = append(out, leaves(p, m)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func deletePath(v map[string]any, p string) map[string]any {
	v = deepCopy(v)
	keys := strings.Split(p, ".")
	cur := v
	for _, k := range keys[:len(keys)-1] {
		m, ok := cur[k].(map[string]any)
		if !ok {
			return v
		}
		cur = m
	}
	delete(cur, keys[len(keys)-1])
	return v
}

func deepCopy(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestEveryValueIsUsed: each value of values.yaml is read by a template. Rendering is strict
// (a template reading a missing key fails), so a value is used when removing it from the
// chart's defaults (and from the case's values) makes some case fail to render or render
// something else (a value passed through whole, like resources.requests.cpu).
func TestEveryValueIsUsed(t *testing.T) {
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	noSchema := func(vals map[string]any) *chart.Chart {
		mod := *ch
		mod.Values = vals
		mod.Schema = nil // the schema may require the value; the question is the templates
		return &mod
	}
	cs := cases(t)
	base := make([]map[string]string, len(cs))
	for i, c := range cs {
		if base[i], err = Render(noSchema(ch.Values), c.values, c.release); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	ps := leaves("", ch.Values)
	if len(ps) < 80 {
		t.Fatalf("only %d leaves in values.yaml: the walk is broken", len(ps))
	}
	for _, p := range ps {
		used := false
		for i, c := range cs {
			out, err := Render(noSchema(deletePath(ch.Values, p)), deletePath(c.values, p), c.release)
			if err != nil || !maps.Equal(out, base[i]) {
				used = true
				break
			}
		}
		if !used {
			t.Errorf("values.yaml %s: no template reads it (in any example or docs case)", p)
		}
	}
}

var (
	valuesRef = regexp.MustCompile(`\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)
	aliasDef  = regexp.MustCompile(`(\$[A-Za-z_][A-Za-z0-9_]*) :?= \.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)
	aliasRef  = `\%s((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`
	withRef   = regexp.MustCompile(`\{\{-? with \.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+) \}\}`)
)

// templateValuePaths scans the templates for the values they read: .Values.a.b, and $x.c
// after $x := .Values.a.
func templateValuePaths(ch *chart.Chart) map[string][]string {
	paths := map[string][]string{}
	for _, f := range ch.Templates {
		src := string(f.Data)
		add := func(p string) {
			if !slices.Contains(paths[p], f.Name) {
				paths[p] = append(paths[p], f.Name)
			}
		}
		for _, m := range valuesRef.FindAllStringSubmatch(src, -1) {
			add(strings.TrimPrefix(m[1], "."))
		}
		for _, m := range aliasDef.FindAllStringSubmatch(src, -1) {
			re := regexp.MustCompile(strings.Replace(aliasRef, "%s", regexp.QuoteMeta(m[1])[1:], 1))
			for _, r := range re.FindAllStringSubmatch(src, -1) {
				add(strings.TrimPrefix(m[2]+r[1], "."))
			}
		}
		_ = withRef
	}
	return paths
}

// TestTemplatesReadDeclaredValues: every value a template reads is declared in
// values.schema.json (and the schema is closed, so values.yaml cannot hold undeclared keys:
// Helm validates the defaults against it).
func TestTemplatesReadDeclaredValues(t *testing.T) {
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	paths := templateValuePaths(ch)
	if len(paths) < 50 {
		t.Fatalf("found only %d value paths in the templates: the scanner is broken", len(paths))
	}
	for p, files := range paths {
		if !schemaHas(schema, schema, strings.Split(p, ".")) {
			t.Errorf("%v read .Values.%s, which values.schema.json does not declare", files, p)
		}
	}
	checkClosed(t, schema, schema, "")
	if err := chartutil.ValidateAgainstSchema(ch, ch.Values); err != nil {
		t.Errorf("values.yaml does not match values.schema.json: %v", err)
	}
}

func resolve(root, node map[string]any) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		return root["$defs"].(map[string]any)[name].(map[string]any)
	}
	return node
}

func schemaHas(root, node map[string]any, path []string) bool {
	node = resolve(root, node)
	if len(path) == 0 {
		return true
	}
	props, ok := node["properties"].(map[string]any)
	if !ok {
		// A free-form object (Kubernetes fields passed through) declares whatever is below it.
		return node["type"] == "object" || node["type"] == "array"
	}
	child, ok := props[path[0]].(map[string]any)
	if !ok {
		return false
	}
	return schemaHas(root, child, path[1:])
}

// checkClosed: every object with declared properties refuses others, so a misspelt key fails.
func checkClosed(t *testing.T, root, node map[string]any, at string) {
	t.Helper()
	props, ok := node["properties"].(map[string]any)
	if !ok {
		return
	}
	if node["additionalProperties"] != false && at != "" && !strings.HasPrefix(at, "$defs.env") {
		t.Errorf("schema %s: additionalProperties is not false", at)
	}
	for k, v := range props {
		if m, ok := v.(map[string]any); ok {
			checkClosed(t, root, m, strings.TrimPrefix(at+"."+k, "."))
		}
	}
}

// TestScannerSeesAliases keeps the scanner honest: it must find values read through $x := .Values.y.
func TestScannerSeesAliases(t *testing.T) {
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	paths := templateValuePaths(ch)
	for _, p := range []string{"collector.bufferBytes", "kafka.brokers", "gateway.preStopSeconds", "archiver.memoryBudgetBytes"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("scanner misses %s", p)
		}
	}
	if b, err := os.ReadFile("logrouter/values.schema.json"); err != nil || len(b) == 0 {
		t.Fatal("no values.schema.json")
	}
}
