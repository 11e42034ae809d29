package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/router/loadgen"
)

// consoleTools finds chromium, node and playwright-core (.ci/provision-console.sh installs
// them), or says why the browser test cannot run.
func consoleTools() (chromium, node, modules string, err error) {
	chromium = os.Getenv("LOGROUTER_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		return "", "", "", fmt.Errorf("no chromium at %s (apt-get install chromium, or run .ci/provision-console.sh)", chromium)
	}
	if node, err = exec.LookPath("node"); err != nil {
		return "", "", "", errors.New("node is not on PATH (apt-get install nodejs)")
	}
	dir := cachedTool("LOGROUTER_CONSOLE_DIR", "console")
	modules = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "playwright-core", "package.json")); err != nil {
		return "", "", "", fmt.Errorf("playwright-core is not installed in %s (run .ci/provision-console.sh)", dir)
	}
	return chromium, node, modules, nil
}

// TestConsoleBrowser runs the web console in Debian's chromium, driven by Playwright, against
// real components: collector (tailing files the script writes) -> kfake -> gateway, and the
// archiver into a file:// bucket. integration/testdata/console/console.cjs holds the steps:
// sign-in, namespaces, a typed forbidden namespace, a line in the live tail within 2 s, the
// XSS corpus, each filter, pause/resume, a gateway restart under an open tail, scroll-back,
// archive search and NDJSON download,
// pipelines, and 5,000 lines/s for 30 s. Screenshots go to $LOGROUTER_ARTIFACTS/TestConsoleBrowser
// (or a temporary directory, logged).
func TestConsoleBrowser(t *testing.T) {
	chromium, node, modules, err := consoleTools()
	if err != nil {
		t.Skip(err)
	}
	artifacts := t.TempDir()
	if d := os.Getenv("LOGROUTER_ARTIFACTS"); d != "" {
		artifacts = filepath.Join(d, t.Name())
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("artifacts (screenshots, archive.ndjson, result.json) in %s", artifacts)

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)

	// Containers: shop's pods (two, one with a sidecar), the load namespace, and a namespace the
	// token does not grant, with lines in it.
	nodeDir, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, c := range []struct{ key, ns, pod, name string }{
		{"web1app", "shop", "web-1", "app"}, {"web1sidecar", "shop", "web-1", "sidecar"}, {"web2app", "shop", "web-2", "app"},
		{"load", "load", "gen-0", "app"}, {"secret", "secret", "vault-0", "app"},
	} {
		ct, err := nodeDir.AddContainer(c.ns, c.pod, c.name, loadgen.CRI)
		if err != nil {
			t.Fatal(err)
		}
		files[c.key] = ct.Path()
		// Every topic exists before the browser looks (a stream of a topic that does not
		// exist yet is 404 no_logs_yet).
		if err := ct.Write(time.Now(), "stdout", c.ns+" starts"); err != nil {
			t.Fatal(err)
		}
	}
	// One partition: the order in Kafka is the order of the writes, so "filtered out" can be
	// told from "not arrived yet" (the script waits for the excluded line to be in Kafka).
	ccfg := collectortest.Config(t, nodeDir, brokers, 1)
	collectortest.Start(t, ccfg)

	bucketDir := filepath.Join(t.TempDir(), "archive")
	acfg := archiver.DefaultConfig()
	acfg.Kafka.Brokers = brokers
	acfg.Bucket = "file://" + bucketDir + "?create_dir=true"
	acfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
	acfg.MaxObjectAge = time.Second
	acfg.TopicRefresh = 200 * time.Millisecond
	acfg.MemoryBudget = 64 << 20
	arch, err := archiver.New(acfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	aerr := make(chan error, 1)
	go func() { aerr <- arch.Run(actx) }()
	t.Cleanup(func() {
		acancel()
		if err := <-aerr; err != nil {
			t.Errorf("archiver: %v", err)
		}
	})

	// Pipelines come from the Kubernetes API; here the status a controller wrote, in
	// client-go's fake dynamic client (TestGatewayPipelinesKubeAPIServer reads a real one).
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.LogPipelines: "LogPipelineList"}, consolePipeline(t))
	listen := "127.0.0.1:0"
	gwOpts := func(c *api.Config, o *[]api.Option) {
		c.Listen = listen
		c.Bucket = acfg.Bucket
		c.KubePipelines = true
		*o = append(*o, api.WithDynamicClient(dyn))
	}
	e := startGatewayOn(t, cluster, kcl, gwOpts)
	listen = e.gw.Addr().String() // a restarted gateway listens where the browser knows it
	secret, _ := e.token(token.Spec{Name: "console", Namespaces: []string{"shop", "load"}})

	// 5,000 lines/s for 30 s, the load; under the race detector the in-process
	// collector and gateway deliver only about 1,500 lines/s on this machine, so the browser
	// then gets 1,000 lines/s (still 20,000 lines more than the view keeps).
	rate := 5000
	if raceEnabled {
		rate = 1000
	}
	t.Logf("load: %d lines/s for 30 s", rate)
	conf := map[string]any{
		"base": e.base, "token": secret, "chromium": chromium, "artifacts": artifacts, "csp": ui.CSP,
		"granted": []string{"load", "shop"}, "forbidden": "secret", "files": files,
		"rate": rate, "seconds": 30, "viewMax": 10000,
		"xss": []string{
			`<script>window.__xss=1</script>`,
			`<img src=x onerror="window.__xss=1">`,
			`"><svg onload=window.__xss=1>`,
			`</div><iframe src="javascript:window.__xss=1"></iframe>`,
			`<style>body{display:none}</style><b>bold</b>`,
			`&lt;b&gt;entities stay&lt;/b&gt; &amp;`,
			`{{constructor.constructor('window.__xss=1')()}}`,
			`javascript:window.__xss=1`,
			"\u202e right-to-left override and emoji 🚀",
		},
	}
	confPath := filepath.Join(t.TempDir(), "console.json")
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(confPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/console/console.cjs", confPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// The script asks for a gateway restart (stop, then start on the same address).
		switch line {
		case "CONTROL stop":
			e.stop()
			fmt.Fprintln(in, "stopped")
			continue
		case "CONTROL start":
			e = startGatewayOn(t, cluster, kcl, gwOpts)
			fmt.Fprintln(in, "started")
			continue
		}
		if r, ok := strings.CutPrefix(line, "RESULT "); ok {
			if err := json.Unmarshal([]byte(r), &res); err != nil {
				t.Errorf("result %q: %v", r, err)
			}
			_ = os.WriteFile(filepath.Join(artifacts, "result.json"), []byte(r+"\n"), 0o644)
			continue
		}
		t.Log(line)
	}
	werr := cmd.Wait()
	if res == nil {
		t.Fatalf("the browser script ended without a result (%v):\n%s", werr, stderr.String())
	}
	if ok, _ := res["ok"].(bool); !ok || werr != nil {
		t.Fatalf("console: %v\n%v\nstderr:\n%s", res["error"], res["consoleErrors"], stderr.String())
	}
	t.Logf("tail latency %v ms; load: written in %v s, delivered in %v s; %v long tasks, longest %v ms; %v input probes, slowest %v ms",
		res["tailLatencyMs"], res["writeSeconds"], res["deliveredSeconds"], res["longTasks"], res["longestTaskMs"], res["probes"], res["probeMaxMs"])
}

// consolePipeline is a LogPipeline of shop with the status a controller writes.
func consolePipeline(t *testing.T) runtime.Object {
	t.Helper()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	lp := &v1alpha1.LogPipeline{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "LogPipeline"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 3},
		Spec:       v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}, Output: v1alpha1.Output{Suffix: "audit"}},
		Status: v1alpha1.LogPipelineStatus{ObservedGeneration: 3,
			Conditions: []metav1.Condition{
				{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid, Message: "valid", LastTransitionTime: now},
				{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTopicFailed, Message: "creating topic logs.shop.audit: <b>denied</b>", LastTransitionTime: now},
			},
			Accepted: &v1alpha1.AcceptedSpec{Generation: 2},
			Counters: &v1alpha1.Counters{Selected: 100, Emitted: 90, Dropped: 10, UpdatedAt: now}}}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(lp)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}
