package crds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

const teamNS = "team-a"

// fullPipeline uses every step and selector field: the server must accept it.
const fullPipeline = `
apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata: {name: full, namespace: team-a}
spec:
  selector:
    pods: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [front]}]}
    containers: [web, sidecar-1]
    streams: [stdout, stderr]
  steps:
    - multiline: {start: '^\d{4}-', maxLines: 200, maxBytes: 65536, flushTimeout: 2s}
    - multiline: {continue: '^\s+at '}
    - json: {}
    - json: {source: payload, into: payload}
    - logfmt: {into: kv}
    - regex: {pattern: '^(?P<ip>\S+) (?P<rest>.*)$', source: message}
    - timestamp: {field: time, layout: RFC3339Nano}
    - set: {field: env, value: '"prod"'}
    - rename: {from: lvl, to: level}
    - remove: {fields: [password, token]}
    - keep: {if: 'record.fields.level != "debug"'}
    - drop: {if: 'record.message.contains("/healthz")'}
    - redact: {pattern: '[a-z]+@[a-z.]+', hash: true}
    - redact: {fields: [authorization], replacement: '***'}
    - sample: {oneIn: 10, if: 'record.fields.level == "info"'}
  output: {suffix: audit}
`

const fullPolicy = `
apiVersion: logrouter.io/v1alpha1
kind: LogRouterPolicy
metadata: {name: default}
spec:
  namespaces: {matchExpressions: [{key: logs, operator: NotIn, values: ["off"]}]}
  limits: {linesPerSecond: 1000, burstLines: 2000, bytesPerSecond: 1Mi, burstBytes: 4Mi, action: throttle}
  topics: {partitions: 6, retention: 72h}
  overrides:
    - namespaces: {matchLabels: {tier: noisy}}
      limits: {linesPerSecond: 100, action: drop, bytesPerSecond: 1048576}
    - namespaces: {matchLabels: {tier: audit}}
      topics: {retention: 720h}
  maxStepsPerPipeline: 20
  maxPipelinesPerNamespace: 10
  allowedSuffixes: [audit, debug]
`

// pipeline returns a LogPipeline named name in team-a with spec (YAML, indented by 2).
func pipeline(name, spec string) string {
	return "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: " + name + ", namespace: team-a}\nspec:\n" + spec
}

func policy(name, spec string) string {
	return "apiVersion: logrouter.io/v1alpha1\nkind: LogRouterPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec
}

// TestKubeAPIServer installs the CRDs into a real kube-apiserver and checks what its schema
// and CEL rules reject (with the message a user sees from kubectl apply), what they accept,
// the status subresource, and the printer columns.
func TestKubeAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Install(ctx, srv.Config); err != nil {
		t.Fatal(err)
	}
	// Installing again (an upgrade) is a no-op, not an error.
	if err := Install(ctx, srv.Config); err != nil {
		t.Fatalf("second install: %v", err)
	}
	if _, err := srv.Client(t).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	create := func(doc string, dryRun bool) (*unstructured.Unstructured, error) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		u := &unstructured.Unstructured{Object: obj}
		ri := dyn.Resource(v1alpha1.LogRouterPolicies).(dynamic.ResourceInterface)
		if u.GetKind() == "LogPipeline" {
			ri = dyn.Resource(v1alpha1.LogPipelines).Namespace(u.GetNamespace())
		}
		opts := metav1.CreateOptions{FieldValidation: "Strict"}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		return ri.Create(ctx, u, opts)
	}

	t.Run("rejected", func(t *testing.T) {
		for _, tt := range []struct {
			name, doc string
			want      []string // substrings of the server's message
		}{
			{"step with no member", pipeline("p", "  steps: [{}]\n"), []string{"spec.steps[0]", "a step sets exactly one of json, logfmt"}},
			{"step with two members", pipeline("p", "  steps: [{json: {}, logfmt: {}}]\n"), []string{"spec.steps[0]", "a step sets exactly one of"}},
			{"third step with two members", pipeline("p", "  steps: [{json: {}}, {logfmt: {}}, {keep: {if: 'true'}, drop: {if: 'false'}}]\n"), []string{"spec.steps[2]", "exactly one"}},
			{"unknown step", pipeline("p", "  steps: [{grok: {pattern: x}}]\n"), []string{`unknown field "spec.steps[0].grok"`}},
			{"unknown spec field", pipeline("p", "  step: []\n"), []string{`unknown field "spec.step"`}},
			{"no spec", "apiVersion: logrouter.io/v1alpha1\nkind: LogPipeline\nmetadata: {name: p, namespace: team-a}\n", []string{"spec", "Required value"}},
			{"suffix with a dot", pipeline("p", "  output: {suffix: team-b.audit}\n"), []string{"spec.output.suffix", "should match"}},
			{"suffix with a dot only", pipeline("p", "  output: {suffix: .}\n"), []string{"spec.output.suffix", "should match"}},
			{"suffix uppercase", pipeline("p", "  output: {suffix: Audit}\n"), []string{"spec.output.suffix", "should match"}},
			{"suffix with underscore", pipeline("p", "  output: {suffix: my_audit}\n"), []string{"spec.output.suffix", "should match"}},
			{"suffix ends with dash", pipeline("p", "  output: {suffix: audit-}\n"), []string{"spec.output.suffix", "should match"}},
			{"suffix too long", pipeline("p", "  output: {suffix: "+strings.Repeat("a", 64)+"}\n"), []string{"spec.output.suffix", "may not be more than 63"}},
			{"multiline start and continue", pipeline("p", "  steps: [{multiline: {start: '^a', continue: '^b'}}]\n"), []string{"spec.steps[0].multiline", "multiline sets exactly one of start and continue"}},
			{"multiline neither", pipeline("p", "  steps: [{multiline: {maxLines: 10}}]\n"), []string{"spec.steps[0].multiline", "multiline sets exactly one of start and continue"}},
			{"multiline empty start", pipeline("p", "  steps: [{multiline: {start: ''}}]\n"), []string{"spec.steps[0].multiline.start", "at least 1 chars"}},
			{"multiline one line", pipeline("p", "  steps: [{multiline: {start: '^a', maxLines: 1}}]\n"), []string{"spec.steps[0].multiline.maxLines", "greater than or equal to 2"}},
			{"multiline huge", pipeline("p", "  steps: [{multiline: {start: '^a', maxBytes: 2000000000}}]\n"), []string{"spec.steps[0].multiline.maxBytes", "less than or equal to 1048576"}},
			{"multiline zero flush", pipeline("p", "  steps: [{multiline: {start: '^a', flushTimeout: 0s}}]\n"), []string{"spec.steps[0].multiline.flushTimeout", "flushTimeout must be more than 0s and at most 1m"}},
			{"multiline long flush", pipeline("p", "  steps: [{multiline: {start: '^a', flushTimeout: 1h}}]\n"), []string{"flushTimeout must be more than 0s and at most 1m"}},
			{"regex without pattern", pipeline("p", "  steps: [{regex: {source: x}}]\n"), []string{"spec.steps[0].regex.pattern", "Required value"}},
			{"keep without condition", pipeline("p", "  steps: [{keep: {if: ''}}]\n"), []string{"spec.steps[0].keep.if", "at least 1 chars"}},
			{"redact neither pattern nor fields", pipeline("p", "  steps: [{redact: {hash: true}}]\n"), []string{"spec.steps[0].redact", "redact needs a pattern or fields"}},
			{"redact empty fields", pipeline("p", "  steps: [{redact: {fields: []}}]\n"), []string{"spec.steps[0].redact.fields", "at least 1 items"}},
			{"remove nothing", pipeline("p", "  steps: [{remove: {fields: []}}]\n"), []string{"spec.steps[0].remove.fields", "at least 1 items"}},
			{"rename to itself", pipeline("p", "  steps: [{rename: {from: a, to: a}}]\n"), []string{"spec.steps[0].rename", "rename from and to are the same field"}},
			{"sample zero", pipeline("p", "  steps: [{sample: {oneIn: 0}}]\n"), []string{"spec.steps[0].sample.oneIn", "greater than or equal to 1"}},
			{"stream stdin", pipeline("p", "  selector: {streams: [stdin]}\n"), []string{"spec.selector.streams[0]", `Unsupported value: "stdin"`}},
			{"stream twice", pipeline("p", "  selector: {streams: [stdout, stdout]}\n"), []string{"spec.selector.streams[1]", "Duplicate value"}},
			{"container not a DNS label", pipeline("p", "  selector: {containers: [Web_1]}\n"), []string{"spec.selector.containers[0]", "should match"}},
			{"bad label selector operator", pipeline("p", "  selector: {pods: {matchExpressions: [{key: a, operator: Is, values: [b]}]}}\n"), []string{"spec.selector", "operator must be In or NotIn with values"}},
			{"In without values", pipeline("p", "  selector: {pods: {matchExpressions: [{key: a, operator: In}]}}\n"), []string{"operator must be In or NotIn with values"}},
			{"Exists with values", pipeline("p", "  selector: {pods: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}\n"), []string{"or Exists or DoesNotExist without"}},
			{"too many steps", pipeline("p", "  steps:\n"+strings.Repeat("  - json: {}\n", 65)), []string{"spec.steps", "must have at most 64 items"}},

			{"policy not named default", policy("strict", "  limits: {action: drop}\n"), []string{"the cluster has one LogRouterPolicy, named default"}},
			{"policy action", policy("default", "  limits: {action: block}\n"), []string{"spec.limits.action", `Unsupported value: "block"`}},
			{"policy negative rate", policy("default", "  limits: {linesPerSecond: -1}\n"), []string{"spec.limits.linesPerSecond", "greater than or equal to 0"}},
			{"burst without rate", policy("default", "  limits: {burstLines: 10}\n"), []string{"spec.limits", "burstLines needs linesPerSecond"}},
			{"burst below rate", policy("default", "  limits: {linesPerSecond: 100, burstLines: 10}\n"), []string{"spec.limits", "burstLines must be at least linesPerSecond"}},
			{"byte burst without rate", policy("default", "  limits: {burstBytes: 1Mi}\n"), []string{"burstBytes needs bytesPerSecond"}},
			{"byte burst below rate", policy("default", "  limits: {bytesPerSecond: 2Mi, burstBytes: 1Mi}\n"), []string{"burstBytes must be at least bytesPerSecond"}},
			{"negative bytes", policy("default", "  limits: {bytesPerSecond: -1Mi}\n"), []string{"spec.limits", "bytesPerSecond must be a positive whole number of bytes"}},
			{"fractional bytes", policy("default", "  limits: {bytesPerSecond: 500m}\n"), []string{"bytesPerSecond must be a positive whole number of bytes"}},
			{"bytes not a quantity", policy("default", "  limits: {bytesPerSecond: fast}\n"), []string{"spec.limits.bytesPerSecond"}},
			{"override limit sanity", policy("default", "  overrides: [{namespaces: {}, limits: {linesPerSecond: 100, burstLines: 1}}]\n"), []string{"spec.overrides[0].limits", "burstLines must be at least linesPerSecond"}},
			{"override of nothing", policy("default", "  overrides: [{namespaces: {matchLabels: {a: b}}}]\n"), []string{"spec.overrides[0]", "an override sets limits or topics"}},
			{"override without selector", policy("default", "  overrides: [{topics: {partitions: 3}}]\n"), []string{"spec.overrides[0].namespaces", "Required value"}},
			{"suffix allowed with a dot", policy("default", "  allowedSuffixes: [a.b]\n"), []string{"spec.allowedSuffixes[0]", "should match"}},
			{"suffix allowed twice", policy("default", "  allowedSuffixes: [audit, audit]\n"), []string{"spec.allowedSuffixes[1]", "Duplicate value"}},
			{"short retention", policy("default", "  topics: {retention: 30s}\n"), []string{"spec.topics.retention", "retention must be at least 1m"}},
			{"kafka access without a selector", policy("default", "  kafkaAccess: {principalTemplate: 'ns-{namespace}'}\n"), []string{"spec.kafkaAccess.namespaces", "Required value"}},
			{"principal without the namespace", policy("default", "  kafkaAccess: {namespaces: {}, principalTemplate: team}\n"), []string{"spec.kafkaAccess.principalTemplate", "should match"}},
			{"principal with a space", policy("default", "  kafkaAccess: {namespaces: {}, principalTemplate: 'a {namespace}'}\n"), []string{"spec.kafkaAccess.principalTemplate", "should match"}},
			{"negative grace period", policy("default", "  kafkaAccess: {namespaces: {}, rotationGracePeriod: -1h}\n"), []string{"spec.kafkaAccess.rotationGracePeriod", "rotationGracePeriod must be between 0s and 720h"}},
			{"grace period beyond 30 days", policy("default", "  kafkaAccess: {namespaces: {}, rotationGracePeriod: 1000h}\n"), []string{"rotationGracePeriod must be between 0s and 720h"}},
			{"zero partitions", policy("default", "  topics: {partitions: 0}\n"), []string{"spec.topics.partitions", "greater than or equal to 1"}},
			{"zero steps allowed", policy("default", "  maxStepsPerPipeline: 0\n"), []string{"spec.maxStepsPerPipeline", "greater than or equal to 1"}},
			{"too many steps allowed", policy("default", "  maxStepsPerPipeline: 65\n"), []string{"spec.maxStepsPerPipeline", "less than or equal to 64"}},
			{"unknown policy field", policy("default", "  limit: {}\n"), []string{`unknown field "spec.limit"`}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := create(tt.doc, true)
				if err == nil {
					t.Fatalf("the server accepted:\n%s", tt.doc)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("message %q does not contain %q", err, w)
					}
				}
			})
		}
	})

	t.Run("accepted", func(t *testing.T) {
		for _, tt := range []struct{ name, doc string }{
			{"every step", fullPipeline},
			{"empty spec", pipeline("empty", "  {}\n")},
			{"suffix of 63", pipeline("long", "  output: {suffix: "+strings.Repeat("a", 63)+"}\n")},
			{"suffix digits and dashes", pipeline("dash", "  output: {suffix: 0-a-9}\n")},
			{"64 steps", pipeline("steps", "  steps:\n"+strings.Repeat("  - json: {}\n", 64))},
			{"Exists without values", pipeline("exists", "  selector: {pods: {matchExpressions: [{key: a, operator: Exists}, {key: b, operator: DoesNotExist, values: []}]}}\n")},
			{"policy", fullPolicy},
			{"empty policy", policy("default", "  {}\n")},
			{"unlimited", policy("default", "  limits: {linesPerSecond: 0}\n")},
			{"burst equal to rate", policy("default", "  limits: {linesPerSecond: 5, burstLines: 5, bytesPerSecond: 1k, burstBytes: '1000'}\n")},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := create(tt.doc, true); err != nil {
					t.Errorf("%v\n%s", err, tt.doc)
				}
			})
		}
	})

	t.Run("documented examples", func(t *testing.T) {
		for _, o := range documentedObjects(t) {
			var err error
			if o.Pipeline != nil {
				ns := o.Pipeline.Namespace
				if ns == "" {
					ns = teamNS
					o.Pipeline.Namespace = ns
				}
				_, err = srv.Client(t).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
				_, err = createTyped(ctx, dyn, o.Pipeline)
			} else {
				_, err = createTyped(ctx, dyn, o.Policy)
			}
			if err != nil {
				t.Errorf("%s: the server refuses it: %v", o, err)
			}
		}
		headers := documentedHeaders(t)
		if len(headers["logpipelines"]) == 0 {
			t.Error("no documented kubectl get logpipelines output")
		}
		for res, hs := range headers {
			path := "/apis/logrouter.io/v1alpha1/" + res
			tab := getTable(t, srv.Config, path)
			want := strings.ToUpper(columns(tab, false))
			for _, h := range hs {
				if h != want {
					t.Errorf("documented kubectl get %s header %s, the server prints %s", res, h, want)
				}
			}
		}
	})

	t.Run("status subresource", func(t *testing.T) {
		ri := dyn.Resource(v1alpha1.LogPipelines).Namespace(teamNS)
		doc := pipeline("web", "  steps: [{json: {}}]\n") + "status: {observedGeneration: 7}\n"
		u, err := create(doc, false)
		if err != nil {
			t.Fatal(err)
		}
		if g := u.GetGeneration(); g != 1 {
			t.Fatalf("generation %d after create, want 1", g)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "observedGeneration"); found {
			t.Error("create wrote status: the status subresource is not enabled")
		}
		// A spec update bumps the generation.
		if err := unstructured.SetNestedSlice(u.Object, []any{map[string]any{"logfmt": map[string]any{}}}, "spec", "steps"); err != nil {
			t.Fatal(err)
		}
		u, err = ri.Update(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if g := u.GetGeneration(); g != 2 {
			t.Fatalf("generation %d after a spec update, want 2", g)
		}
		// The controller's status update: conditions, the accepted spec, counters.
		st := v1alpha1.LogPipelineStatus{
			ObservedGeneration: 2,
			Conditions: []metav1.Condition{
				{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonRunningPrevious, Message: `steps[0].regex.pattern: missing closing ] for "[" at offset 6 and ) for "(?P<x>" at offset 0: "(?P<x>[a-z"`, ObservedGeneration: 2, LastTransitionTime: metav1.Now()},
				{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady, ObservedGeneration: 2, LastTransitionTime: metav1.Now()},
			},
			Accepted: &v1alpha1.AcceptedSpec{Generation: 1, Spec: v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}}},
			Counters: &v1alpha1.Counters{Selected: 12, Emitted: 10, Dropped: 2, Panicked: 1},
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var sm map[string]any
		if err := json.Unmarshal(b, &sm); err != nil {
			t.Fatal(err)
		}
		u.Object["status"] = sm
		u, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Fatal(err)
		}
		if g := u.GetGeneration(); g != 2 {
			t.Errorf("generation %d after a status update, want 2", g)
		}
		if g, _, _ := unstructured.NestedInt64(u.Object, "status", "accepted", "generation"); g != 1 {
			t.Errorf("status.accepted.generation %d, want 1", g)
		}
		// A status update does not change the spec.
		_ = unstructured.SetNestedSlice(u.Object, []any{}, "spec", "steps")
		u, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if steps, _, _ := unstructured.NestedSlice(u.Object, "spec", "steps"); len(steps) != 1 || u.GetGeneration() != 2 {
			t.Errorf("status update changed the spec: steps %v, generation %d", steps, u.GetGeneration())
		}
		// The status schema is checked too.
		_ = unstructured.SetNestedField(u.Object, "Maybe", "status", "conditions")
		if _, err := ri.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil {
			t.Error("status with conditions: Maybe accepted")
		}

		t.Run("printer columns", func(t *testing.T) {
			tab := getTable(t, srv.Config, "/apis/logrouter.io/v1alpha1/namespaces/team-a/logpipelines")
			if len(tab.Rows) != 1 {
				t.Fatalf("%d rows", len(tab.Rows))
			}
			if got, want := columns(tab, false), "Name,Accepted,Ready,Gen,Running-Gen,Emitted,Reason,Age"; got != want {
				t.Errorf("columns %s, want %s", got, want)
			}
			if got, want := columns(tab, true), "Name,Accepted,Ready,Gen,Running-Gen,Emitted,Reason,Dropped,Panicked,Message,Age"; got != want {
				t.Errorf("columns with -o wide %s, want %s", got, want)
			}
			want := map[string]any{"Name": "web", "Accepted": "False", "Ready": "True", "Gen": 2.0, "Running-Gen": 1.0, "Emitted": 10.0,
				"Reason": "RunningPreviousVersion", "Dropped": 2.0, "Panicked": 1.0, "Message": `steps[0].regex.pattern: missing closing ] for "[" at offset 6 and ) for "(?P<x>" at offset 0: "(?P<x>[a-z"`}
			checkRow(t, tab, want)
			if _, err := create(fullPolicy, false); err != nil {
				t.Fatal(err)
			}
			ptab := getTable(t, srv.Config, "/apis/logrouter.io/v1alpha1/logrouterpolicies")
			if len(ptab.Rows) != 1 {
				t.Fatalf("%d policy rows", len(ptab.Rows))
			}
			if got, want := columns(ptab, false), "Name,Accepted,Lines/s,Bytes/s,Action,Age"; got != want {
				t.Errorf("policy columns %s, want %s", got, want)
			}
			checkRow(t, ptab, map[string]any{"Name": "default", "Accepted": nil, "Lines/s": 1000.0, "Bytes/s": "1Mi", "Action": "throttle"})
		})
	})
}

// columns lists a table's column names: those kubectl get shows, or with wide those of -o wide.
func columns(tab metav1.Table, wide bool) string {
	var cols []string
	for _, c := range tab.ColumnDefinitions {
		if c.Priority == 0 || wide {
			cols = append(cols, c.Name)
		}
	}
	return strings.Join(cols, ",")
}

// checkRow compares the first row's cells, by column name, with want.
func checkRow(t *testing.T, tab metav1.Table, want map[string]any) {
	t.Helper()
	cells := tab.Rows[0].Cells
	for i, c := range tab.ColumnDefinitions {
		w, ok := want[c.Name]
		if !ok {
			continue
		}
		if i >= len(cells) || fmt.Sprint(cells[i]) != fmt.Sprint(w) {
			t.Errorf("column %s: %v, want %v", c.Name, cellAt(cells, i), w)
		}
	}
}

func cellAt(cells []any, i int) any {
	if i < len(cells) {
		return cells[i]
	}
	return "<missing>"
}

// createTyped creates a typed object with a dry run, strictly.
func createTyped(ctx context.Context, dyn dynamic.Interface, obj any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	ri := dyn.Resource(v1alpha1.LogRouterPolicies).(dynamic.ResourceInterface)
	if u.GetKind() == "LogPipeline" {
		ri = dyn.Resource(v1alpha1.LogPipelines).Namespace(u.GetNamespace())
	}
	return ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict", DryRun: []string{metav1.DryRunAll}})
}

// getTable GETs path as kubectl get does (the server renders the printer columns).
func getTable(t *testing.T, cfg *rest.Config, path string) metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, cfg.Host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, b)
	}
	var tab metav1.Table
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatal(err)
	}
	if tab.Kind != "Table" {
		t.Fatalf("GET %s: kind %q, want Table", path, tab.Kind)
	}
	return tab
}
