package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/filemeta"
)

// aclKafka is a kfake that enforces SASL and ACLs: an admin superuser, and one SCRAM user per
// component with exactly the ACLs `logrouter kafka acls` grants (internal/kafkaacl).
type aclKafka struct {
	brokers string
	admin   *kgo.Client
	acls    map[string][]kafkaacl.Binding
}

func startACLKafka(t *testing.T) *aclKafka {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-pw")}
	for _, c := range kafkaacl.ComponentNames {
		opts = append(opts, kfake.User("SCRAM-SHA-512", "logrouter-"+c, c+"-pw"))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := &aclKafka{brokers: strings.Join(c.ListenAddrs(), ",")}
	k.admin, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.admin.Close)
	k.acls = kafkaacl.Components{
		Collector: "User:logrouter-collector", Archiver: "User:logrouter-archiver", Gateway: "User:logrouter-gateway",
		Controller: "User:logrouter-controller", KafkaAccess: true,
		TopicPrefix: "logs.", ArchiverGroup: archiver.DefaultConfig().Group, TokenTopic: token.DefaultTopic, CountersTopic: topic.CountersTopic,
	}.Bindings()
	for _, bs := range k.acls {
		if err := kafkaacl.Create(context.Background(), k.admin, bs); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// conn is a component's connection with its own user.
func (k *aclKafka) conn(component string) kafkaconn.Config {
	return kafkaconn.Config{Brokers: k.brokers, SASLMechanism: "SCRAM-SHA-512", SASLUser: "logrouter-" + component, SASLPassword: component + "-pw"}
}

// revoke deletes one of a component's ACLs.
func (k *aclKafka) revoke(t *testing.T, component string, match func(kafkaacl.Binding) bool) kafkaacl.Binding {
	t.Helper()
	for _, b := range k.acls[component] {
		if match(b) {
			if err := kafkaacl.Delete(context.Background(), k.admin, []kafkaacl.Binding{b}); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%s has no such ACL", component)
	return kafkaacl.Binding{}
}

// background runs a component until the returned stop, which waits for it to return.
func background(ctx context.Context, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return func() {
		cancel()
		<-done
	}
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == label && l.GetValue() == value)
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitLog waits until a component's log, after its first `from` bytes, names what went wrong.
func waitLog(t *testing.T, what string, log *syncbuf.Buffer, from int, want ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := log.String()[from:]
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the log does not say %q:\n%s", what, want, tail(s, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestComponentsUnderACLs runs the collector, the archiver and the gateway, each as its own
// principal with only the ACLs docs/kafka-access.md lists, against a Kafka that enforces them:
// lines go from files to Kafka, to the archive and out of the gateway. Then one ACL of each is
// removed, and that component's log and metrics name the failure.
func TestComponentsUnderACLs(t *testing.T) {
	k := startACLKafka(t)
	ctx := context.Background()
	adm := kadm.NewClient(k.admin)

	// Collector: creates logs.team-a and writes into it.
	w := collectortest.NewWorkload(t, []string{"team-a"}, 1, []string{"app"})
	w.Write(t, 40, 100)
	ccfg := collectortest.Config(t, w.Node, k.brokers, 1)
	ccfg.Sink.Kafka = k.conn("collector")
	var clog syncbuf.Buffer
	creg := prometheus.NewRegistry()
	col, err := router.New(ccfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: ccfg.Node}}, creg, slog.New(slog.NewTextHandler(&clog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer background(ctx, col.Run)()
	collectortest.WaitForRecords(t, adm, w.Want(), 45*time.Second)

	// Archiver: reads logs.team-a in its group into a bucket.
	bucketDir := t.TempDir()
	acfg := archiver.DefaultConfig()
	acfg.Kafka = k.conn("archiver")
	acfg.Bucket = "file://" + bucketDir
	acfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
	acfg.MaxObjectAge = time.Second
	acfg.TopicRefresh = 200 * time.Millisecond
	acfg.MemoryBudget = 64 << 20
	var alog syncbuf.Buffer
	areg := prometheus.NewRegistry()
	arc, err := archiver.New(acfg, areg, slog.New(slog.NewTextHandler(&alog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer background(ctx, arc.Run)()
	bk, err := blob.OpenBucket(ctx, "file://"+bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	if err := archivetest.WaitArchived(ctx, bk, "", map[archivetest.Pos]int64{{Topic: "logs.team-a", Partition: 0}: w.Want()["logs.team-a"]}, 60*time.Second); err != nil {
		t.Fatalf("archive: %v\n%s", err, tail(alog.String(), 4000))
	}

	// Gateway: serves logs.team-a to a team-a token (tokens written as the platform team does,
	// with its own principal: here the admin).
	gcfg := api.DefaultConfig()
	gcfg.Kafka = k.conn("gateway")
	gcfg.Listen = "127.0.0.1:0"
	gcfg.Heartbeat = 200 * time.Millisecond
	gcfg.ShutdownGrace = 2 * time.Second
	var glog syncbuf.Buffer
	greg := prometheus.NewRegistry()
	gw, err := api.New(gcfg, greg, slog.New(slog.NewTextHandler(&glog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer background(ctx, gw.Run)()
	select {
	case <-gw.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway not ready:\n%s", tail(glog.String(), 4000))
	}
	secret, _, err := token.Create(ctx, k.admin, token.DefaultTopic, token.Spec{Namespaces: []string{"team-a"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read := func() (int, int, string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, gw.URL()+"/v1/namespaces/team-a/logs?from=earliest&limit=40", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Accept", "application/x-ndjson")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusUnauthorized && time.Now().Before(deadline) { // the token store catches up
				resp.Body.Close()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			records, end := 0, ""
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var ln struct{ Type, Reason string }
				_ = json.Unmarshal(sc.Bytes(), &ln)
				switch ln.Type {
				case "record":
					records++
				case "end", "error":
					end = ln.Type + ":" + ln.Reason + " " + sc.Text()
				}
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, records, end + string(body)
		}
	}
	if status, n, end := read(); status != http.StatusOK || n != 40 {
		t.Fatalf("gateway: status %d, %d records (%s)\n%s", status, n, end, tail(glog.String(), 4000))
	}

	t.Run("collector without WRITE", func(t *testing.T) {
		before := counterSum(t, creg, "logrouter_collector_produce_errors_total", "namespace", "team-a")
		mark := len(clog.String())
		k.revoke(t, "collector", func(b kafkaacl.Binding) bool { return b.Operation.String() == "WRITE" && b.Prefixed })
		w.Write(t, 5, 100)
		waitLog(t, "collector", &clog, mark, "TOPIC_AUTHORIZATION_FAILED", "namespace=team-a")
		if after := counterSum(t, creg, "logrouter_collector_produce_errors_total", "namespace", "team-a"); after <= before {
			t.Errorf("logrouter_collector_produce_errors_total{namespace=team-a}: %v, was %v", after, before)
		}
	})
	t.Run("archiver without READ on its group", func(t *testing.T) {
		before := counterSum(t, areg, "logrouter_archiver_errors_total", "", "")
		mark := len(alog.String())
		k.revoke(t, "archiver", func(b kafkaacl.Binding) bool { return b.Resource.String() == "GROUP" })
		waitLog(t, "archiver", &alog, mark, "GROUP_AUTHORIZATION_FAILED")
		if after := counterSum(t, areg, "logrouter_archiver_errors_total", "", ""); after <= before {
			t.Errorf("logrouter_archiver_errors_total: %v, was %v", after, before)
		}
	})
	t.Run("gateway without READ on the namespace topics", func(t *testing.T) {
		mark := len(glog.String())
		k.revoke(t, "gateway", func(b kafkaacl.Binding) bool { return b.Operation.String() == "READ" && b.Prefixed })
		status, n, end := read()
		if status == http.StatusOK && n == 40 {
			t.Fatalf("the gateway still reads logs.team-a without READ")
		}
		waitLog(t, "gateway", &glog, mark, "TOPIC_AUTHORIZATION_FAILED")
		t.Logf("gateway answer: %d, %d records, %s", status, n, end)
		if c := counterSum(t, greg, "logrouter_gateway_requests_total", "status", fmt.Sprint(status)); c == 0 {
			t.Errorf("logrouter_gateway_requests_total{status=%d} is 0", status)
		}
	})
}

// TestCountersUnderACLs: the pipeline counters path with only the documented ACLs. The
// controller's principal creates the compacted counters topic (and compacts one created with
// Kafka's defaults); a collector's principal, running a pipeline, reads its node's records
// back and publishes its counts; the controller's fold reads them and tombstones the records
// of a deleted pipeline. Without READ on the counters topic the collector cannot read its
// records back, and says which ACL it lacks.
func TestCountersUnderACLs(t *testing.T) {
	k := startACLKafka(t)
	ctx := context.Background()
	clientOf := func(component string) (*kgo.Client, []kgo.Opt) {
		t.Helper()
		kc := k.conn(component)
		opts, err := kc.Options()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl, opts
	}
	ctrlCl, ctrlOpts := clientOf("controller")
	_, colOpts := clientOf("collector")
	prov := controller.NewProvisioner(kadm.NewClient(ctrlCl), 10*time.Second)
	policy := func() string {
		t.Helper()
		rc, err := kadm.NewClient(k.admin).DescribeTopicConfigs(ctx, topic.CountersTopic)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rc.On(topic.CountersTopic, nil)
		if err != nil || r.Err != nil {
			t.Fatalf("describe %s: %v %v", topic.CountersTopic, err, r.Err)
		}
		for _, c := range r.Configs {
			if c.Key == "cleanup.policy" {
				return c.MaybeValue()
			}
		}
		return ""
	}
	// Created (CREATE), then, as if someone had made it with the defaults, compacted again
	// (DESCRIBE_CONFIGS, ALTER_CONFIGS).
	if err := prov.EnsureCompacted(ctx, topic.CountersTopic); err != nil {
		t.Fatalf("controller creates the counters topic: %v", err)
	}
	del := "delete"
	if _, err := kadm.NewClient(k.admin).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &del}}, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	if err := prov.EnsureCompacted(ctx, topic.CountersTopic); err != nil || policy() != "compact" {
		t.Fatalf("controller compacts the counters topic: %v (cleanup.policy=%s)", err, policy())
	}

	// A collector with a pipeline in team-a.
	const lines = 30
	w := collectortest.NewWorkload(t, []string{"team-a"}, 1, []string{"app"})
	w.Write(t, lines, 100)
	ccfg := collectortest.Config(t, w.Node, k.brokers, 1)
	ccfg.Sink.Kafka = k.conn("collector")
	var clog syncbuf.Buffer
	col, err := router.New(ccfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: ccfg.Node}}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&clog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	col.ExpectPipelines()
	// A LogPipeline's (with a UID): the fold sums only those, not --pipelines-dir ones.
	const uid = "5f0c7a9e-0d1b-4c2a-9e8f-1a2b3c4d5e6f"
	p, err := pipeline.Compile("team-a", "parse", 1, &v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{JSON: &v1alpha1.JSONStep{}}}}, nil, pipeline.WithUID(uid))
	if err != nil {
		t.Fatal(err)
	}
	col.Apply(&pipeline.State{Namespaces: map[string]*pipeline.Set{"team-a": pipeline.NewSet("team-a", []*pipeline.Pipeline{p})}})
	defer background(ctx, col.Run)()
	collectortest.WaitForRecords(t, kadm.NewClient(k.admin), w.Want(), 45*time.Second)
	key := counters.Key{Namespace: "team-a", Pipeline: "parse", UID: uid}
	var clogger = slog.New(slog.NewTextHandler(&clog, nil))
	publish := func() error {
		t.Helper()
		pub, err := counters.NewPublisher(counters.PublisherConfig{Node: ccfg.Node, Topic: topic.CountersTopic, Interval: time.Hour}, colOpts, col.PipelineCounters(), clogger)
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := pub.Resume(rctx); err != nil {
			return err
		}
		n, err := pub.Publish(rctx)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d records acknowledged, want 1 (team-a/parse)", n)
		}
		return err
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the collector's counts", func() bool { return col.PipelineCounters().Totals()[key].Selected == lines })
	if err := publish(); err != nil {
		t.Fatalf("collector publishes its counters: %v", err)
	}

	// The controller's fold: reads the sums, then (the pipeline is deleted) tombstones them.
	var (
		mu      sync.Mutex
		written counters.Counts
		deleted bool
	)
	write := func(_ context.Context, wk counters.Key, c counters.Counts, _ time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		if wk != key {
			return fmt.Errorf("unexpected key %v", wk)
		}
		written = c
		if deleted {
			return counters.ErrGone
		}
		return nil
	}
	freg := prometheus.NewRegistry()
	var flog syncbuf.Buffer
	fold, err := counters.NewFold(counters.FoldConfig{Topic: topic.CountersTopic, Interval: 20 * time.Millisecond, Writers: 1}, ctrlOpts, write, freg, slog.New(slog.NewTextHandler(&flog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer background(ctx, fold.Run)()
	waitFor("the fold's sums", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return written.Selected == lines
	})
	mu.Lock()
	deleted = true
	mu.Unlock()
	// A new record makes the fold write again; the write says the pipeline is gone.
	w.Write(t, 1, 100)
	waitFor("the collector's new count", func() bool { return col.PipelineCounters().Totals()[key].Selected == lines+1 })
	if err := publish(); err != nil {
		t.Fatalf("collector publishes its counters again: %v", err)
	}
	waitFor("the fold's tombstone", func() bool {
		return counterSum(t, freg, "logrouter_controller_counter_tombstones_total", "", "") >= 1
	})
	if s := flog.String(); strings.Contains(s, "AUTHORIZATION_FAILED") {
		t.Errorf("the fold was refused something:\n%s", s)
	}

	t.Run("collector without READ on the counters topic", func(t *testing.T) {
		b := k.revoke(t, "collector", func(b kafkaacl.Binding) bool {
			return b.Name == topic.CountersTopic && b.Operation == kmsg.ACLOperationRead
		})
		err := publish()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), topic.CountersTopic) {
			t.Fatalf("publishing without %s: %v, want TOPIC_AUTHORIZATION_FAILED naming the topic", b, err)
		}
	})
}
