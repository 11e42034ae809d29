package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/deploy/crds"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/load"
)

// pipelineNamespaces is how many namespaces (the first ones) have a LogPipeline in the
// pipelines scenario.
const pipelineNamespaces = 10

// The platform's policy and each team's pipeline: parse the workload's JSON lines.
const (
	systemPolicy = `apiVersion: logrouter.io/v1alpha1
kind: LogRouterPolicy
metadata:
  name: default
spec: {}
`
	systemPipeline = `apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  name: parse
  namespace: %s
spec:
  steps:
  - json: {}
`
)

// withKubernetes starts the real kube-apiserver fixture (the test skips without it), creates
// the workload's namespaces and pods on node-1 (so the collector finds their metadata), the
// collector's RBAC, the policy and a LogPipeline in the first pipelineNamespaces namespaces,
// and adds `logrouter controller` to the components; the collector runs with --kubernetes.
func withKubernetes(t *testing.T, kc *client.Client) option {
	return func(s *system) {
		srv := kubeapiserver.Start(t)
		ctx := context.Background()
		if err := crds.Install(ctx, srv.Config); err != nil {
			t.Fatal(err)
		}
		ctrllog.SetLogger(logr.Discard())
		scheme, err := controller.Scheme()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(srv.Config, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		*kc = c
		create := func(o client.Object) {
			t.Helper()
			if err := c.Create(ctx, o); err != nil {
				t.Fatalf("create %T %s: %v", o, o.GetName(), err)
			}
		}
		create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logrouter"}})
		uids := map[string]string{}
		for i := range namespaces {
			ns := fmt.Sprintf("team-%02d", i)
			create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			for j := range perNS / 2 {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("web-%d", j), Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{
						{Name: "c0", Image: "registry.example/web:1"}, {Name: "c1", Image: "registry.example/web:1"}}},
				}
				create(p)
				uids[ns+"/"+p.Name] = string(p.UID)
			}
		}
		s.podUID = func(ns, pod string) string { return uids[ns+"/"+pod] }
		// The collector runs as its service account with the RBAC it ships with.
		rbac, err := os.ReadFile("../../deploy/kubernetes/collector-rbac.yaml")
		if err != nil {
			t.Fatal(err)
		}
		dec := serializer.NewCodecFactory(scheme).UniversalDeserializer()
		for _, doc := range strings.Split(string(rbac), "\n---\n") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, _, err := dec.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("collector-rbac.yaml: %v", err)
			}
			create(obj.(client.Object))
		}
		docs := []string{systemPolicy}
		for i := range pipelineNamespaces {
			docs = append(docs, fmt.Sprintf(systemPipeline, fmt.Sprintf("team-%02d", i)))
		}
		for _, y := range docs {
			objs, err := load.Bytes("system.yaml", []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			var o client.Object = objs[0].Policy
			if objs[0].Pipeline != nil {
				o = objs[0].Pipeline
			}
			create(o)
		}
		s.collectorArgs = append(s.collectorArgs, "--kubernetes=true",
			"--kubeconfig", srv.WriteKubeconfig(t, srv.ServiceAccountToken(t, "logrouter", "logrouter-collector")),
			"--kubernetes-metadata-wait", "1m", "--pipelines-delay", "20ms")
		s.extra = append(s.extra, &component{name: "controller", args: []string{"controller",
			"--kubeconfig", srv.WriteKubeconfig(t, srv.Token(kubeapiserver.AdminUser)), "--brokers", s.brokers,
			"--leader-elect=false", "--counters-interval", "1s", "--metrics-addr", ""}})
	}
}

// TestSystemPipelines runs `logrouter controller` among the processes, against the real
// kube-apiserver, with a LogPipeline (a json step) in half of the namespaces; the collector
// takes the accepted pipelines through its informers. The controller is SIGKILLed and restarted
// twice while the workload writes. Every line must arrive once everywhere, and every record of
// a namespace with a pipeline carries the fields parsed from its line (its "seq"), every other
// record none.
func TestSystemPipelines(t *testing.T) {
	sc := scaleOf(t)
	var kc client.Client
	s := newSystem(t, namespaces, perNS, withKubernetes(t, &kc))
	ctrl := s.extra[0]
	ctx := context.Background()
	s.waitFor("every pipeline accepted", 2*time.Minute, func() string {
		for i := range pipelineNamespaces {
			var p v1alpha1.LogPipeline
			if err := kc.Get(ctx, types.NamespacedName{Namespace: fmt.Sprintf("team-%02d", i), Name: "parse"}, &p); err != nil {
				return err.Error()
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionAccepted)
			if p.Status.Accepted == nil || c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Sprintf("%s: %+v", p.Namespace, p.Status)
			}
		}
		return ""
	})
	// Lines written before the collector applied the pipelines would ship unparsed.
	s.waitFor("the collector runs the pipelines of every namespace", time.Minute, func() string {
		if n := s.collectorGauge("logrouter_collector_pipeline_namespaces"); n != pipelineNamespaces {
			return fmt.Sprintf("logrouter_collector_pipeline_namespaces %d", n)
		}
		return ""
	})
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	for range 2 {
		time.Sleep(sc.Duration / 3)
		s.checkAlive()
		s.restart(ctrl)
	}
	time.Sleep(sc.Duration / 3)
	stop()
	rep := s.account("pipelines", fmt.Sprintf("logrouter controller (SIGKILL x2) with a json LogPipeline in %d namespaces, collector --kubernetes on the real kube-apiserver", pipelineNamespaces))
	if !rep.exact() {
		t.Errorf("pipelines must not cost lines: %s", rep)
	}
	withFields, bad := 0, 0
	for p, kl := range s.recs {
		ns := strings.TrimPrefix(p.topic, "logs.")
		parsed := false
		for i := range pipelineNamespaces {
			parsed = parsed || ns == fmt.Sprintf("team-%02d", i)
		}
		want := ""
		if parsed {
			want = strconv.Itoa(kl.seq)
		}
		if kl.fieldSeq != want {
			if bad++; bad <= 10 {
				t.Errorf("%v (%s seq %d): fields.seq %q, want %q", p, kl.key, kl.seq, kl.fieldSeq, want)
			}
		}
		if kl.fieldSeq != "" {
			withFields++
		}
	}
	t.Logf("PIPELINES: %d of %d records carry parsed fields, %d wrong", withFields, len(s.recs), bad)
	s.stopAll()
}

// collectorGauge reads one unlabelled gauge of the collector (-1 when absent).
func (s *system) collectorGauge(name string) int64 {
	fams, err := s.collectorMetrics()
	if err != nil || fams[name] == nil || len(fams[name].GetMetric()) == 0 {
		return -1
	}
	return int64(fams[name].GetMetric()[0].GetGauge().GetValue())
}

// collectorMetrics scrapes the collector's current run.
func (s *system) collectorMetrics() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + s.colAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(string(b)))
}
