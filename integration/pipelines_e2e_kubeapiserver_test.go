package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/deploy/crds"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/load"
)

// The team's objects of the end-to-end test: the platform allows the suffix audit, and team
// shop parses its api pod's JSON lines and keeps the audit ones, in logs.shop.audit.
const (
	e2ePolicy = `apiVersion: logrouter.io/v1alpha1
kind: LogRouterPolicy
metadata:
  name: default
spec:
  allowedSuffixes: [audit]
`
	e2ePipeline = `apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  name: audit
  namespace: shop
spec:
  selector:
    pods:
      matchLabels:
        app: api
  output:
    suffix: audit
  steps:
  - json: {}
  - keep:
      if: 'record.fields.?kind.orValue("") == "audit"'
`
	e2eNode = "node-e2e"
)

// TestPipelinesEndToEnd: a team's LogPipeline created in a real kube-apiserver is accepted by
// `logrouter controller` (status.accepted, topics provisioned), picked up by `logrouter collect
// --kubernetes` through informers, and its records (parsed fields, suffix topic) reach Kafka,
// the archive (`logrouter archive`, read back) and the team, and only the team, through
// `logrouter gateway`; another namespace's lines ship unchanged. The collector's counters reach
// the pipeline's status.counters through the counters topic. An invalid update keeps the
// previous version running (status says so); a deleted pipeline stops. Every line is counted.
func TestPipelinesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and four logrouter processes")
	}
	bin := collectortest.Binary(t)
	srv := kubeapiserver.Start(t)
	ctx := context.Background()
	if err := crds.Install(ctx, srv.Config); err != nil {
		t.Fatal(err)
	}
	ctrllog.SetLogger(logr.Discard()) // the test's client logs nothing worth reading
	scheme, err := controller.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(srv.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	for _, ns := range []string{"logrouter", "shop", "plain"} {
		enrApply(t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	// The collector runs as its service account with the RBAC it ships with.
	enrApplyManifest(t, admin, "../deploy/kubernetes/collector-rbac.yaml")
	collectorKubeconfig := srv.WriteKubeconfig(t, srv.ServiceAccountToken(t, "logrouter", "logrouter-collector"))
	adminKubeconfig := srv.WriteKubeconfig(t, srv.Token(kubeapiserver.AdminUser))

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
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
	adm := kadm.NewClient(kcl)

	// Pods of this node, and their log files where the kubelet puts them (UIDs from the server).
	root := t.TempDir()
	podsDir, logDir := filepath.Join(root, "pods"), filepath.Join(root, "containers")
	api := e2eContainer(t, podsDir, logDir, enrCreatePod(t, admin, enrPod("shop", "api-7d9f", e2eNode, map[string]string{"app": "api"})))
	web := e2eContainer(t, podsDir, logDir, enrCreatePod(t, admin, enrPod("plain", "web-1", e2eNode, map[string]string{"app": "web"})))

	// (1) The platform's policy and the team's pipeline.
	for _, y := range []string{e2ePolicy, e2ePipeline} {
		objs, err := load.Bytes("e2e.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		var o client.Object = objs[0].Policy
		if objs[0].Pipeline != nil {
			o = objs[0].Pipeline
		}
		if err := kc.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	lp := types.NamespacedName{Namespace: "shop", Name: "audit"}
	getLP := func() *v1alpha1.LogPipeline {
		t.Helper()
		var p v1alpha1.LogPipeline
		if err := kc.Get(ctx, lp, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}

	// (2) The controller accepts it and provisions its topics.
	ctrl := collectortest.StartBinary(t, bin, nil, "controller", "--kubeconfig", adminKubeconfig, "--brokers", brokers,
		"--leader-elect=false", "--counters-interval", "100ms", "--metrics-addr", "")
	e2eWait(t, "status.accepted of generation 1", ctrl, func() (bool, string) {
		p := getLP()
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionAccepted)
		ok := p.Status.Accepted != nil && p.Status.Accepted.Generation == 1 && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == 1
		return ok, fmt.Sprintf("%+v", p.Status)
	})
	e2eWait(t, "logs.shop and logs.shop.audit provisioned", ctrl, func() (bool, string) {
		td, err := adm.ListTopics(ctx)
		return err == nil && td.Has("logs.shop") && td.Has("logs.shop.audit"), fmt.Sprint(td.Names(), err)
	})

	// The collector, on the informers' pipelines.
	metricsAddr := e2eFreeAddr(t)
	coll := collectortest.StartBinary(t, bin, []string{"NODE_NAME=" + e2eNode}, "collect",
		"--kubernetes", "--kubeconfig", collectorKubeconfig, "--kubernetes-metadata-wait", "1m",
		"--log-dir", logDir, "--pods-dir", podsDir, "--checkpoint-dir", t.TempDir(),
		"--brokers", brokers, "--metrics-addr", metricsAddr, "--topic-partitions", "2",
		"--poll-interval", "20ms", "--scan-interval", "50ms", "--checkpoint-interval", "50ms",
		"--pipelines-delay", "20ms", "--counters-interval", "100ms", "--shutdown-grace", "10s")

	// (3) Lines: shop's api writes audit lines, access lines and a line that is no JSON; plain's
	// web writes text. Only audit lines are kept, with their fields, in logs.shop.audit.
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var wantAudit []string // the audit records' messages, in order
	seq := 0
	writeShop := func(n int) {
		for range n {
			kind := "access"
			if seq%2 == 0 {
				kind = "audit"
			}
			msg := fmt.Sprintf(`{"kind":%q,"seq":%d,"user":"u%d"}`, kind, seq, seq)
			if kind == "audit" {
				wantAudit = append(wantAudit, msg)
			}
			api.write(t, base.Add(time.Duration(seq)*time.Second), msg)
			seq++
		}
	}
	writeShop(20)
	api.write(t, base, "not json at all") // parse failure: marked, then not kept (no kind)
	var wantPlain []string
	for i := range 15 {
		m := fmt.Sprintf("plain line %d: GET /index.html 200", i)
		wantPlain = append(wantPlain, m)
		web.write(t, base.Add(time.Duration(i)*time.Second), m)
	}
	audit := e2eRecords(t, adm, brokers, coll, "logs.shop.audit", len(wantAudit))
	e2eCheckAudit(t, audit, wantAudit)
	plain := e2eRecords(t, adm, brokers, coll, "logs.plain", len(wantPlain))
	for i, r := range plain {
		if r.Message != wantPlain[i] || r.Fields != nil || r.FieldsError != "" || r.Namespace != "plain" || r.Kubernetes == nil {
			t.Errorf("logs.plain record %d changed: %+v (want message %q, no fields, k8s metadata)", i, r, wantPlain[i])
		}
	}

	// Counters in status: 21 lines selected, 10 emitted, 11 dropped (one of them a parse failure).
	e2eWait(t, "status.counters after the first lines", coll, func() (bool, string) {
		c := getLP().Status.Counters
		return c != nil && c.Selected == 21 && c.Emitted == 10 && c.Dropped == 11 && c.ParseFailures == 1, fmt.Sprintf("%+v", c)
	})

	// What the team sees (docs/pipelines.md shows these rows).
	e2eCheckRow(t, srv.Config, map[string]string{"NAME": "audit", "ACCEPTED": "True", "READY": "True", "GEN": "1", "RUNNING-GEN": "1", "EMITTED": "10", "REASON": "Valid"})

	// An invalid update: refused in status, the previous version keeps running in the collector.
	p := getLP()
	// The same pipeline with a CEL syntax error in steps[1].
	invalid := strings.Replace(e2ePipeline, `== "audit"'`, `=='`, 1)
	bad, err := load.Bytes("invalid.yaml", []byte(invalid))
	if err != nil {
		t.Fatal(err)
	}
	p.Spec = bad[0].Pipeline.Spec
	if err := kc.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	e2eWait(t, "status of the invalid generation 2", ctrl, func() (bool, string) {
		p := getLP()
		acc := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionAccepted)
		rdy := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		ok := acc != nil && acc.ObservedGeneration == 2 && acc.Status == metav1.ConditionFalse && strings.Contains(acc.Message, "steps[1].keep") &&
			rdy != nil && rdy.Reason == v1alpha1.ReasonRunningPrevious && p.Status.Accepted != nil && p.Status.Accepted.Generation == 1
		return ok, fmt.Sprintf("%+v", p.Status)
	})
	e2eWait(t, "the collector to see the invalid version", coll, func() (bool, string) {
		n := e2eMetric(t, metricsAddr, "logrouter_collector_pipeline_invalid_versions_total", `namespace="shop"`)
		return n == 1, fmt.Sprint(n)
	})
	writeShop(6) // 3 audit, 3 access: still parsed and filtered by generation 1
	audit = e2eRecords(t, adm, brokers, coll, "logs.shop.audit", len(wantAudit))
	e2eCheckAudit(t, audit, wantAudit)
	e2eWait(t, "status.counters after the invalid update", coll, func() (bool, string) {
		c := getLP().Status.Counters
		return c != nil && c.Selected == 27 && c.Emitted == 13 && c.Dropped == 14 && c.ParseFailures == 1, fmt.Sprintf("%+v", c)
	})

	e2eCheckRow(t, srv.Config, map[string]string{"NAME": "audit", "ACCEPTED": "False", "READY": "True", "GEN": "2", "RUNNING-GEN": "1", "EMITTED": "13", "REASON": "Invalid"})

	// Deleted: shop's lines ship unchanged to logs.shop.
	if err := kc.Delete(ctx, getLP()); err != nil {
		t.Fatal(err)
	}
	e2eWait(t, "the collector to apply the deletion", coll, func() (bool, string) {
		n := e2eMetric(t, metricsAddr, "logrouter_collector_pipeline_namespaces", "")
		return n == 0, fmt.Sprint(n)
	})
	// A file may have loaded the namespace's pipelines for a chunk just before the apply: one
	// marker line, which either version takes to exactly one topic, fences that chunk off.
	marker := `{"kind":"audit","marker":"after delete"}`
	api.write(t, base, marker)
	e2eWait(t, "the marker line", coll, func() (bool, string) {
		a, s := e2eEnd(t, adm, "logs.shop.audit"), e2eEnd(t, adm, "logs.shop")
		return a+s == int64(len(wantAudit))+1, fmt.Sprintf("audit %d, shop %d", a, s)
	})
	nAudit, nShop := len(wantAudit), 0
	var wantShop []string
	if e2eEnd(t, adm, "logs.shop") == 1 {
		wantShop = append(wantShop, marker)
	} else {
		wantAudit = append(wantAudit, marker)
		nAudit++
	}
	for i := range 5 {
		m := fmt.Sprintf(`{"kind":"audit","seq":%d,"after":"delete"}`, 100+i)
		wantShop = append(wantShop, m)
		api.write(t, base, m)
	}
	nShop = len(wantShop)
	shop := e2eRecords(t, adm, brokers, coll, "logs.shop", nShop)
	for i, r := range shop {
		if r.Message != wantShop[i] || r.Fields != nil || r.Namespace != "shop" {
			t.Errorf("logs.shop record %d after the deletion: %+v, want message %q unchanged", i, r, wantShop[i])
		}
	}
	if got := e2eEnd(t, adm, "logs.shop.audit"); got != int64(nAudit) {
		t.Errorf("logs.shop.audit holds %d records after the deletion, want %d", got, nAudit)
	}

	// (4) The archive has them, fields included.
	bucketDir := filepath.Join(root, "bucket")
	if err := os.MkdirAll(bucketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bucketURL := "file://" + bucketDir
	bkt, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	want := map[archivetest.Pos]int64{}
	for _, tp := range []string{"logs.shop.audit", "logs.shop", "logs.plain"} {
		ends, err := adm.ListEndOffsets(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 {
				want[archivetest.Pos{Topic: tp, Partition: o.Partition}] = o.Offset
			}
		})
	}
	arch := collectortest.StartBinary(t, bin, nil, "archive", "--brokers", brokers, "--bucket", bucketURL,
		"--spool-dir", filepath.Join(root, "spool"), "--max-object-age", "1s", "--topic-refresh", "200ms", "--metrics-addr", "")
	if err := archivetest.WaitArchived(ctx, bkt, "", want, 90*time.Second); err != nil {
		t.Fatalf("%v\narchiver log:\n%s", err, arch.Stderr)
	}
	if err := arch.Stop(30 * time.Second); err != nil {
		t.Fatalf("archiver: %v\n%s", err, arch.Stderr)
	}
	au, err := archivetest.Read(ctx, bkt, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(au.Problems) > 0 {
		t.Errorf("archive problems: %v", au.Problems)
	}
	byTopic := map[string][]archivetest.Pos{}
	for p, n := range au.Count {
		if n != 1 {
			t.Errorf("%v archived %d times", p, n)
		}
		byTopic[p.Topic] = append(byTopic[p.Topic], p)
	}
	for tp, n := range map[string]int{"logs.shop.audit": nAudit, "logs.shop": nShop, "logs.plain": len(wantPlain)} {
		if len(byTopic[tp]) != n {
			t.Errorf("archive: %d records of %s, want %d", len(byTopic[tp]), tp, n)
		}
	}
	archived := map[string]string{} // audit message -> fields JSON
	for _, p := range byTopic["logs.shop.audit"] {
		r := au.Rows[p]
		archived[r.Message] = r.Fields
	}
	for _, m := range wantAudit {
		var f map[string]any
		if err := json.Unmarshal([]byte(archived[m]), &f); err != nil || f["kind"] != "audit" {
			t.Errorf("archived %q: fields %q (%v), want the parsed fields", m, archived[m], err)
		}
	}
	for _, p := range byTopic["logs.plain"] {
		if r := au.Rows[p]; r.Fields != "" {
			t.Errorf("archived logs.plain row with fields: %+v", r)
		}
	}

	// (5) The gateway serves the suffix topic to shop's token, and to no other namespace's.
	gwAddr := e2eFreeAddr(t)
	gw := collectortest.StartBinary(t, bin, nil, "gateway", "--listen", gwAddr, "--brokers", brokers, "--bucket", bucketURL, "--metrics-addr", "")
	shopTok, _, err := token.Create(ctx, kcl, token.DefaultTopic, token.Spec{Name: "shop", Namespaces: []string{"shop"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plainTok, _, err := token.Create(ctx, kcl, token.DefaultTopic, token.Spec{Name: "plain", Namespaces: []string{"plain"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, tok string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gwAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// The records are in Kafka (archived above): a gateway that has just started answers 503
	// (its token store not loaded yet, or the topic's first fetch not come within
	// --first-fetch-wait), or a page with records; never an empty page.
	var pg struct{ Records []json.RawMessage }
	e2eWait(t, "the gateway to serve shop's suffix topic to shop", gw, func() (bool, string) {
		code, b := get("/v1/namespaces/shop/logs?suffix=audit&limit=100", shopTok)
		pg.Records = nil
		if code == http.StatusOK {
			if err := json.Unmarshal(b, &pg); err != nil {
				t.Fatalf("page %.300s: %v", b, err)
			}
			if len(pg.Records) == 0 {
				t.Fatalf("an empty page for a topic that holds %d records: %.300s", len(wantAudit), b)
			}
		}
		return code == http.StatusOK && len(pg.Records) >= len(wantAudit), fmt.Sprintf("%d, %d records: %.300s", code, len(pg.Records), b)
	})
	served := make([]string, 0, len(pg.Records))
	for _, raw := range pg.Records {
		r, err := record.Decode(raw)
		if err != nil {
			t.Fatalf("served record %s: %v", raw, err)
		}
		if r.Namespace != "shop" || r.Fields["kind"] != "audit" {
			t.Errorf("served record without its fields: %+v", r)
		}
		served = append(served, r.Message)
	}
	sort.Strings(served)
	sorted := append([]string(nil), wantAudit...)
	sort.Strings(sorted)
	if strings.Join(served, "\n") != strings.Join(sorted, "\n") {
		t.Errorf("gateway served %d audit records %q, want %q", len(served), served, sorted)
	}
	e2eWait(t, "plain's token to authenticate", gw, func() (bool, string) {
		code, b := get("/v1/namespaces/plain/logs?limit=1", plainTok)
		return code == http.StatusOK, fmt.Sprintf("%d %.300s", code, b)
	})
	for _, path := range []string{"/v1/namespaces/shop/logs?suffix=audit", "/v1/namespaces/shop/archive?suffix=audit&since=" + base.Format(time.RFC3339)} {
		if code, b := get(path, plainTok); code != http.StatusForbidden {
			t.Errorf("plain's token on %s: %d %s, want 403", path, code, b)
		}
	}

	for name, p := range map[string]*collectortest.Process{"gateway": gw, "collector": coll, "controller": ctrl} {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("%s: %v\n%s", name, err, p.Stderr)
		}
	}
}

// e2eFile is a container's log file under a pods dir, with its /var/log/containers link.
type e2eFile struct{ f *os.File }

func e2eContainer(t *testing.T, podsDir, logDir string, p *corev1.Pod) *e2eFile {
	t.Helper()
	c := p.Spec.Containers[0].Name
	dir := filepath.Join(podsDir, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), c)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "0.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	id := strings.Repeat(fmt.Sprintf("%x", len(p.Name)), 64)[:64]
	if err := os.Symlink(path, filepath.Join(logDir, fmt.Sprintf("%s_%s_%s-%s.log", p.Name, p.Namespace, c, id))); err != nil {
		t.Fatal(err)
	}
	return &e2eFile{f: f}
}

// write appends one CRI line.
func (e *e2eFile) write(t *testing.T, ts time.Time, msg string) {
	t.Helper()
	if _, err := e.f.WriteString(ts.Format(time.RFC3339Nano) + " stdout F " + msg + "\n"); err != nil {
		t.Fatal(err)
	}
}

// e2eWait polls cond; the deadline only bounds a broken test. p's log is shown on failure.
func e2eWait(t *testing.T, what string, p *collectortest.Process, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("waiting for %s (exited: %v); last: %s\nlog:\n%s", what, p.Exited(), state, p.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func e2eFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// e2eEnd is the number of records in a topic (the sum of its partitions' end offsets: the
// collector's idempotent producer writes no control records).
func e2eEnd(t *testing.T, adm *kadm.Client, tp string) int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(context.Background(), tp)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// e2eRecords waits until topic holds exactly n records and returns them, ordered by their
// offset in the file they came from (the topic has several partitions).
func e2eRecords(t *testing.T, adm *kadm.Client, brokers string, p *collectortest.Process, tp string, n int) []record.Record {
	t.Helper()
	e2eWait(t, fmt.Sprintf("%d records in %s", n, tp), p, func() (bool, string) {
		got := e2eEnd(t, adm, tp)
		if got > int64(n) {
			t.Fatalf("%s holds %d records, want %d\nlog:\n%s", tp, got, n, p.Stderr)
		}
		return got == int64(n), fmt.Sprint(got)
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(tp),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []record.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %d of %d records", tp, len(out), n)
		}
		fs.EachRecord(func(kr *kgo.Record) {
			r, err := record.Decode(kr.Value)
			if err != nil {
				t.Fatalf("%s: %s: %v", tp, kr.Value, err)
			}
			out = append(out, r)
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

// e2eMetric sums a metric's series (those whose labels contain match) from a /metrics page.
func e2eMetric(t *testing.T, addr, name, match string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != '{' && l[len(name)] != ' ') || !strings.Contains(l, match) {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// e2eCheckAudit checks the suffix topic's records: the kept lines, with their parsed fields.
func e2eCheckAudit(t *testing.T, got []record.Record, want []string) {
	t.Helper()
	for i, r := range got {
		if i >= len(want) || r.Message != want[i] {
			t.Errorf("logs.shop.audit record %d: message %q, want %q", i, r.Message, want[min(i, len(want)-1)])
			continue
		}
		var f map[string]any
		_ = json.Unmarshal([]byte(r.Message), &f)
		if r.Namespace != "shop" || r.Pod != "api-7d9f" || r.FieldsError != "" || fmt.Sprint(r.Fields) != fmt.Sprint(f) {
			t.Errorf("logs.shop.audit record %d: %+v, want fields %v", i, r, f)
		}
	}
}

// e2eCheckRow compares shop's LogPipeline row, as `kubectl get logpipelines -n shop` prints it
// (the server's printer columns), with want, by column name.
func e2eCheckRow(t *testing.T, cfg *rest.Config, want map[string]string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/apis/logrouter.io/v1alpha1/namespaces/shop/logpipelines", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tab metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil || len(tab.Rows) != 1 {
		t.Fatalf("kubectl get logpipelines -n shop: %d rows, %v", len(tab.Rows), err)
	}
	got := map[string]string{}
	for i, c := range tab.ColumnDefinitions {
		if i < len(tab.Rows[0].Cells) {
			got[strings.ToUpper(c.Name)] = fmt.Sprint(tab.Rows[0].Cells[i])
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("kubectl get logpipelines: %s = %q, want %q (row %v)", k, got[k], v, got)
		}
	}
}
