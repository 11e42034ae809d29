package helm

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/deploy/crds"
)

const repoRoot = "../.."

// TestChartCopiesUpToDate: the chart's copies of the CRDs and of deploy/monitoring are what
// go run ./deploy/render writes, and its copy directories hold nothing else.
func TestChartCopiesUpToDate(t *testing.T) {
	copies, err := Copies(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) < 4 {
		t.Fatalf("%d copies: want the 2 CRDs, alerts and dashboard", len(copies))
	}
	for dst, src := range copies {
		want, err := os.ReadFile(filepath.Join(repoRoot, src))
		if err != nil {
			t.Fatal(err)
		}
		// The embedded chart is what Render uses; the directory on disk is what helm packages.
		emb, err := files.ReadFile(strings.TrimPrefix(dst, "deploy/helm/"))
		if err != nil || string(emb) != string(want) {
			t.Errorf("%s differs from %s: run go run ./deploy/render", dst, src)
		}
	}
	for _, d := range CopyDirs {
		have, _ := filepath.Glob(filepath.Join(repoRoot, ChartDir, d, "*"))
		for _, h := range have {
			rel := path.Join(ChartDir, d, filepath.Base(h))
			if _, ok := copies[rel]; !ok {
				t.Errorf("%s is not a copy of anything: remove it (go run ./deploy/render does)", rel)
			}
		}
	}
}

func decodeCase(t *testing.T, vals map[string]any) []runtime.Object {
	t.Helper()
	base := minimalValues(t)
	return decodeAll(t, renderCase{name: "case", release: defaultRelease, values: mergeMaps(base, vals)})
}

// TestChartCRDs: the chart installs deploy/crds as they are (as templates, kept on uninstall)
// unless crds.install is false.
func TestChartCRDs(t *testing.T) {
	want := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for name, b := range crds.Files() {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[c.Name] = c
	}
	got := 0
	for _, o := range decodeCase(t, nil) {
		c, ok := o.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			continue
		}
		got++
		w := want[c.Name]
		if w == nil {
			t.Errorf("CRD %s is not in deploy/crds", c.Name)
			continue
		}
		if !equality.Semantic.DeepEqual(c.Spec, w.Spec) {
			t.Errorf("CRD %s: spec differs from deploy/crds", c.Name)
		}
		if c.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s: not kept on uninstall (annotations %v)", c.Name, c.Annotations)
		}
		if c.Labels["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("CRD %s: labels %v", c.Name, c.Labels)
		}
	}
	if got != len(want) {
		t.Errorf("%d CRDs rendered, want %d", got, len(want))
	}
	for _, o := range decodeCase(t, map[string]any{"crds": map[string]any{"install": false}}) {
		if _, ok := o.(*apiextensionsv1.CustomResourceDefinition); ok {
			t.Error("crds.install=false renders a CRD")
		}
	}
}

// TestControllerObjects: the controller Deployment runs `logrouter controller` with leader
// election in the release's namespace, and its RBAC is exactly what it needs.
func TestControllerObjects(t *testing.T) {
	objs := decodeCase(t, nil)
	var dep *appsv1.Deployment
	roles := map[string][]rbacv1.PolicyRule{}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			if o.Name == "logrouter-controller" {
				dep = o
			}
		case *rbacv1.ClusterRole:
			roles["ClusterRole/"+o.Name] = o.Rules
		case *rbacv1.Role:
			roles["Role/"+o.Namespace+"/"+o.Name] = o.Rules
		}
	}
	if dep == nil {
		t.Fatal("no controller Deployment by default")
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *dep.Spec.Replicas)
	}
	ct := dep.Spec.Template.Spec.Containers[0]
	env := envOf(ct)
	if !slices.Equal(ct.Args, []string{"controller"}) || env["LOGROUTER_LEADER_ELECT"] != "true" ||
		env["LOGROUTER_LEADER_ELECTION_NAMESPACE"] != "logrouter" || env["LOGROUTER_LEADER_ELECTION_ID"] != "logrouter-controller" ||
		env["LOGROUTER_BROKERS"] == "" {
		t.Errorf("controller args %v env %v", ct.Args, env)
	}
	if a := dep.Spec.Template.Spec.AutomountServiceAccountToken; a != nil && !*a {
		t.Error("the controller has no API token")
	}
	type rule struct{ groups, resources, names, verbs string }
	flat := func(rs []rbacv1.PolicyRule) []rule {
		var out []rule
		for _, r := range rs {
			out = append(out, rule{strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.ResourceNames, ","), strings.Join(r.Verbs, ",")})
		}
		return out
	}
	for name, want := range map[string][]rule{
		"ClusterRole/logrouter-controller": {
			{"logrouter.io", "logpipelines,logrouterpolicies", "", "get,list,watch"},
			{"logrouter.io", "logpipelines/status,logrouterpolicies/status", "", "update,patch"},
			{"", "namespaces", "", "get,list,watch"},
			{",events.k8s.io", "events", "", "create,patch"},
			{"", "secrets", "", "create"},
			{"", "secrets", "logrouter-kafka", "get,update,delete"},
		},
		"Role/logrouter/logrouter-controller-leader-election": {
			{"coordination.k8s.io", "leases", "", "create"},
			{"coordination.k8s.io", "leases", "logrouter-controller", "get,list,watch,update,patch"},
		},
		"ClusterRole/logrouter-collector": {
			{"", "pods,namespaces", "", "get,list,watch"},
			{"logrouter.io", "logpipelines,logrouterpolicies", "", "get,list,watch"},
		},
	} {
		if got := flat(roles[name]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s rules:\n got %v\nwant %v", name, got, want)
		}
	}
	// Without leader election one replica; the Lease Role goes.
	for _, o := range decodeCase(t, map[string]any{"controller": map[string]any{"replicas": 1, "leaderElection": map[string]any{"enabled": false}}}) {
		switch o := o.(type) {
		case *rbacv1.Role:
			t.Errorf("Role %s rendered without leader election", o.Name)
		case *appsv1.Deployment:
			if o.Name == "logrouter-controller" && envOf(o.Spec.Template.Spec.Containers[0])["LOGROUTER_LEADER_ELECT"] != "false" {
				t.Error("leader election still on")
			}
		}
	}
	for _, o := range decodeCase(t, map[string]any{"controller": map[string]any{"enabled": false}}) {
		if d, ok := o.(*appsv1.Deployment); ok && d.Name == "logrouter-controller" {
			t.Error("controller.enabled=false renders the controller")
		}
	}
}

var jobMatcher = regexp.MustCompile(`job=~"([^"]+)"`)

// TestMonitoringObjects: the PrometheusRule holds deploy/monitoring/alerts.yaml as it is, the
// dashboard ConfigMap holds dashboard.json with the sidecar's label, and the PodMonitor names
// every component's job as the rules select it.
func TestMonitoringObjects(t *testing.T) {
	alerts, err := os.ReadFile(filepath.Join(repoRoot, "deploy/monitoring/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wantRules monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(alerts, &wantRules); err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(filepath.Join(repoRoot, "deploy/monitoring/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeCase(t, map[string]any{
		"monitoring": map[string]any{"prometheusRule": map[string]any{"enabled": true}, "dashboard": map[string]any{"enabled": true}},
		"metrics":    map[string]any{"podMonitor": map[string]any{"enabled": true}},
	})
	var rule *monitoringv1.PrometheusRule
	var cm *corev1.ConfigMap
	var pm *monitoringv1.PodMonitor
	var components []string
	for _, o := range objs {
		switch o := o.(type) {
		case *monitoringv1.PrometheusRule:
			rule = o
		case *corev1.ConfigMap:
			if strings.HasSuffix(o.Name, "-dashboard") {
				cm = o
			}
		case *monitoringv1.PodMonitor:
			pm = o
		case *appsv1.Deployment:
			components = append(components, o.Spec.Template.Labels["app.kubernetes.io/component"])
		case *appsv1.DaemonSet:
			components = append(components, o.Spec.Template.Labels["app.kubernetes.io/component"])
		}
	}
	if rule == nil || cm == nil || pm == nil {
		t.Fatalf("rendered PrometheusRule %v, dashboard ConfigMap %v, PodMonitor %v", rule != nil, cm != nil, pm != nil)
	}
	if !reflect.DeepEqual(rule.Spec, wantRules) {
		t.Error("the PrometheusRule's rules differ from deploy/monitoring/alerts.yaml")
	}
	if len(rule.Spec.Groups) == 0 {
		t.Error("no rule groups")
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "logrouter" {
		t.Errorf("dashboard ConfigMap labels %v namespace %s", cm.Labels, cm.Namespace)
	}
	var got, want any
	if err := json.Unmarshal([]byte(cm.Data["logrouter.json"]), &got); err != nil {
		t.Fatalf("dashboard in the ConfigMap: %v", err)
	}
	if err := json.Unmarshal(dash, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("the ConfigMap's dashboard differs from deploy/monitoring/dashboard.json")
	}
	// The job each component gets from the PodMonitor's relabeling.
	ep := pm.Spec.PodMetricsEndpoints[0]
	if !ep.HonorLabels {
		t.Error("honorLabels is off: the metrics' namespace label would become exported_namespace")
	}
	jobs := map[string]bool{}
	for _, c := range components {
		job := ""
		for _, r := range ep.RelabelConfigs {
			if r.TargetLabel == "job" && slices.Equal(r.SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_pod_label_app_kubernetes_io_component"}) && r.Replacement != nil {
				job = strings.ReplaceAll(*r.Replacement, "$1", c)
			}
		}
		if job == "" {
			t.Fatalf("the PodMonitor does not set job for %s", c)
		}
		jobs[job] = true
	}
	ms := jobMatcher.FindAllStringSubmatch(string(alerts), -1)
	if len(ms) == 0 {
		t.Fatal("alerts.yaml selects no job")
	}
	for _, m := range ms {
		re := regexp.MustCompile("^(?:" + m[1] + ")$")
		ok := false
		for j := range jobs {
			ok = ok || re.MatchString(j) || re.MatchString("logrouter/"+j)
		}
		if !ok {
			t.Errorf("alerts.yaml selects job=~%q, which no component's job (%v) matches", m[1], jobs)
		}
	}
}
