package helm

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestComponentKafkaSecrets: each component takes its Kafka user from its own Secret when it
// has one (kafkaSASLSecret), else from kafka.sasl.secretName (docs/kafka-access.md); the
// controller's Secrets rules follow controller.kafkaAccess.
func TestComponentKafkaSecrets(t *testing.T) {
	values := func(set map[string]map[string]any) map[string]any {
		v := minimalValues(t)
		v["kafka"].(map[string]any)["sasl"] = map[string]any{"mechanism": "SCRAM-SHA-512", "secretName": "shared-kafka"}
		for comp, kv := range set {
			m, _ := v[comp].(map[string]any)
			if m == nil {
				m = map[string]any{}
				v[comp] = m
			}
			for k, x := range kv {
				m[k] = x
			}
		}
		return v
	}
	secretsOf := func(objs []runtime.Object) (map[string]string, bool) {
		got := map[string]string{}
		for name, s := range saslSecrets(objs) {
			got[strings.TrimPrefix(name, "logrouter-")] = s
		}
		secretRules := false
		for _, o := range objs {
			if x, ok := o.(*rbacv1.ClusterRole); ok && x.Name == "logrouter-controller" {
				for _, r := range x.Rules {
					secretRules = secretRules || slices.Contains(r.Resources, "secrets")
				}
			}
		}
		return got, secretRules
	}
	decode := func(v map[string]any) []runtime.Object {
		return decodeAll(t, renderCase{name: "kafka secrets", release: defaultRelease, values: v})
	}
	got, rules := secretsOf(decode(values(map[string]map[string]any{
		"collector":  {"kafkaSASLSecret": "collector-kafka"},
		"controller": {"kafkaSASLSecret": "controller-kafka", "enabled": true},
		"gateway":    {"enabled": true},
	})))
	want := map[string]string{"collector": "collector-kafka", "controller": "controller-kafka", "archiver": "shared-kafka", "gateway": "shared-kafka"}
	for comp, w := range want {
		if got[comp] != w {
			t.Errorf("%s takes its Kafka user from %q, want %q (all: %v)", comp, got[comp], w, got)
		}
	}
	if !rules {
		t.Error("the controller has no Secrets rules with controller.kafkaAccess on (the default)")
	}
	if _, rules := secretsOf(decode(values(map[string]map[string]any{"controller": {"kafkaAccess": false, "enabled": true}}))); rules {
		t.Error("controller.kafkaAccess=false still grants Secrets")
	}
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	v := minimalValues(t)
	v["collector"] = map[string]any{"kafkaSASLSecret": "collector-kafka"}
	if _, err := Render(ch, v, defaultRelease); err == nil || !strings.Contains(err.Error(), "kafkaSASLSecret needs kafka.sasl.mechanism") {
		t.Errorf("a component Secret without a mechanism: %v", err)
	}
}

// TestKafkaAccessDocValues renders the chart values docs/kafka-access.md shows (its last yaml
// block) over examples/minimal.yaml: every component takes its user from its own Secret.
func TestKafkaAccessDocValues(t *testing.T) {
	raw, err := os.ReadFile("../../docs/kafka-access.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```yaml\n")
	block, _, _ := strings.Cut(blocks[len(blocks)-1], "```")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatal(err)
	}
	v := minimalValues(t)
	for k, x := range doc {
		m, _ := v[k].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for kk, xx := range x.(map[string]any) {
			m[kk] = xx
		}
		v[k] = m
	}
	got := saslSecrets(decodeAll(t, renderCase{name: "docs/kafka-access.md", release: defaultRelease, values: v}))
	for name, s := range got {
		if want := name + "-kafka"; s != want {
			t.Errorf("%s: user from %s, want %s", name, s, want)
		}
	}
	if len(got) < 3 {
		t.Errorf("%d components with a SASL user: %v", len(got), got)
	}
}

// saslSecrets is, per Deployment and DaemonSet, the Secret its SASL user comes from.
func saslSecrets(objs []runtime.Object) map[string]string {
	out := map[string]string{}
	for _, o := range objs {
		var name string
		var spec corev1.PodSpec
		switch x := o.(type) {
		case *appsv1.Deployment:
			name, spec = x.Name, x.Spec.Template.Spec
		case *appsv1.DaemonSet:
			name, spec = x.Name, x.Spec.Template.Spec
		default:
			continue
		}
		for _, e := range spec.Containers[0].Env {
			if e.Name == "LOGROUTER_KAFKA_SASL_USER" {
				out[name] = e.ValueFrom.SecretKeyRef.Name
			}
		}
	}
	return out
}
