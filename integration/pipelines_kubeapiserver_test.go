package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/logrouter/logrouter/deploy/crds"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// TestCollectorPipelinesFromKubeAPIServer: a LogPipeline created in the real API server is
// picked up by the collector binary (`logrouter collect` with --kubernetes, as the collector's
// service account with the chart's RBAC), and the records in Kafka carry its parsed fields;
// an update takes effect without a restart. The pipeline selects the pod by its labels (from
// the enricher).
func TestCollectorPipelinesFromKubeAPIServer(t *testing.T) {
	bin := collectortest.Binary(t)
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	if err := crds.Install(ctx, srv.Config); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	const node = "node-a"
	enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logrouter"}})
	enrApplyManifest(t, admin, "../deploy/kubernetes/collector-rbac.yaml")
	token := srv.ServiceAccountToken(t, "logrouter", "logrouter-collector")
	enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	pod := enrCreatePod(t, admin, enrPod("shop", "web-1", node, map[string]string{"app": "web", "team": "payments"}))

	dc, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	lps := dc.Resource(v1alpha1.LogPipelines).Namespace("shop")
	lp := &v1alpha1.LogPipeline{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "LogPipeline"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: v1alpha1.LogPipelineSpec{
			Selector: v1alpha1.Selector{Pods: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}},
				{Set: &v1alpha1.SetStep{Field: "team", Value: `record.labels.?team.orValue("none")`}}},
		}}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(lp)
	if err != nil {
		t.Fatal(err)
	}
	created, err := lps.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The pod's log file, in the kubelet's layout.
	root := t.TempDir()
	podsDir, logDir := filepath.Join(root, "pods"), filepath.Join(root, "containers")
	dir := filepath.Join(podsDir, fmt.Sprintf("shop_web-1_%s", pod.UID), "app")
	for _, d := range []string{dir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(dir, "0.log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Symlink(logFile, filepath.Join(logDir, "web-1_shop_app-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.log")); err != nil {
		t.Fatal(err)
	}
	seq := 0
	writeLine := func() {
		seq++
		fmt.Fprintf(f, "%s stdout F {\"level\":\"info\",\"seq\":%d}\n", time.Now().UTC().Format(time.RFC3339Nano), seq)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()[0]
	p := collectortest.StartBinary(t, bin, []string{"NODE_NAME=" + node}, "collect",
		"--kubeconfig", srv.WriteKubeconfig(t, token), "--brokers", brokers, "--log-dir", logDir, "--pods-dir", podsDir,
		"--checkpoint-dir", filepath.Join(root, "checkpoints"), "--metrics-addr", "127.0.0.1:0",
		"--poll-interval", "20ms", "--scan-interval", "50ms")
	defer p.Stop(10 * time.Second)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("logs.shop"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// waitFields writes a line now and then and consumes until a record's fields satisfy ok.
	var last string
	waitFields := func(what string, ok func(map[string]any) bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		for {
			writeLine()
			pctx, pcancel := context.WithTimeout(wctx, 200*time.Millisecond)
			fetches := cl.PollFetches(pctx)
			pcancel()
			found := false
			fetches.EachRecord(func(r *kgo.Record) {
				last = string(r.Value)
				var rec struct {
					Fields map[string]any `json:"fields"`
				}
				if json.Unmarshal(r.Value, &rec) == nil && ok(rec.Fields) {
					found = true
				}
			})
			if found {
				return
			}
			if p.Exited() {
				t.Fatalf("logrouter collect exited:\n%s", p.Stderr.String())
			}
			if wctx.Err() != nil {
				t.Fatalf("no record in logs.shop with %s; the last one: %s\ncollector log:\n%s", what, last, p.Stderr.String())
			}
		}
	}
	waitFields("the pipeline's fields (level, team)", func(m map[string]any) bool {
		return m["level"] == "info" && m["team"] == "payments"
	})

	// An update applies live.
	steps, _, _ := unstructured.NestedSlice(created.Object, "spec", "steps")
	steps[1] = map[string]any{"set": map[string]any{"field": "team", "value": `"edited"`}}
	if err := unstructured.SetNestedSlice(created.Object, steps, "spec", "steps"); err != nil {
		t.Fatal(err)
	}
	if _, err := lps.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFields(`team "edited" after the update`, func(m map[string]any) bool { return m["team"] == "edited" })
}
