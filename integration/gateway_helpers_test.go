package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/client-go/kubernetes"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/internal/record"
)

// gwEnv is a kfake cluster and a gateway served over real HTTP on 127.0.0.1.
type gwEnv struct {
	t       testing.TB
	cluster *kfake.Cluster
	kcl     *kgo.Client
	gw      *api.Gateway
	base    string
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
}

type gwOpt func(*api.Config, *[]api.Option)

func withKube(k kubernetes.Interface) gwOpt {
	return func(c *api.Config, o *[]api.Option) {
		c.KubeAuth = true
		*o = append(*o, api.WithKubeClient(k))
	}
}

func startGateway(t testing.TB, partitions int32, opts ...gwOpt) *gwEnv {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(partitions)), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	return startGatewayOn(t, cluster, kcl, opts...)
}

func startGatewayOn(t testing.TB, cluster *kfake.Cluster, kcl *kgo.Client, opts ...gwOpt) *gwEnv {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Kafka.Brokers = strings.Join(cluster.ListenAddrs(), ",")
	cfg.Listen = "127.0.0.1:0"
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.AuthRecheck = 200 * time.Millisecond
	cfg.ShutdownGrace = 2 * time.Second
	var aopts []api.Option
	for _, o := range opts {
		o(&cfg, &aopts)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(&testWriter{t}, nil))
	}
	gw, err := api.New(cfg, reg, log, aopts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &gwEnv{t: t, cluster: cluster, kcl: kcl, gw: gw, base: gw.URL(), reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- gw.Run(ctx) }()
	t.Cleanup(e.stop)
	select {
	case <-gw.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("gateway not ready")
	}
	return e
}

func (e *gwEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	if err := <-e.done; err != nil {
		e.t.Errorf("gateway Run: %v", err)
	}
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// token creates a logrouter token through the token topic, as `logrouter tokens create` does,
// and waits until the gateway knows it.
func (e *gwEnv) token(spec token.Spec) (string, token.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secret, rec, err := token.Create(ctx, e.kcl, token.DefaultTopic, spec, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitToken(secret)
	return secret, rec
}

// waitToken polls the API until the token authenticates (the store is eventually consistent).
func (e *gwEnv) waitToken(secret string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/v1/namespaces/x-probe/logs", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal("token never became valid")
}

// line is one test record.
type line struct {
	ns, pod, container, msg string
	partition               int32
}

func testRecord(l line, ts time.Time) *kgo.Record {
	src := record.Source{Namespace: l.ns, Pod: l.pod, Container: l.container, PodUID: "uid-" + l.pod, Node: "node-1"}
	v, _ := record.AppendJSON(nil, src.Fragment(), &record.Line{
		TS: []byte(ts.UTC().Format(time.RFC3339Nano)), Stream: record.StreamStdout, Message: []byte(l.msg),
	})
	return &kgo.Record{
		Topic: "logs." + l.ns, Partition: l.partition, Value: v,
		Key: []byte(record.Key("", src.PodUID, l.ns, l.pod, l.container)),
		Headers: []kgo.RecordHeader{
			{Key: record.HeaderNamespace, Value: []byte(l.ns)},
			{Key: record.HeaderPod, Value: []byte(l.pod)},
			{Key: record.HeaderContainer, Value: []byte(l.container)},
			{Key: record.HeaderSchema, Value: record.SchemaHeaderValue},
		},
	}
}

func (e *gwEnv) produce(lines ...line) {
	e.t.Helper()
	rs := make([]*kgo.Record, len(lines))
	now := time.Now()
	for i, l := range lines {
		rs[i] = testRecord(l, now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.kcl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *gwEnv) createTopic(topic string, partitions int32) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(e.kcl).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		e.t.Fatal(err)
	}
}

// get performs a request with an optional bearer token and extra headers.
func (e *gwEnv) get(path, secret string, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// sseEvent is one parsed SSE event.
type sseEvent struct {
	event, id, data string
}

// sseReader parses an SSE stream; id-only blocks (heartbeats) are returned with empty data.
type sseReader struct {
	sc *bufio.Scanner
}

func newSSE(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &sseReader{sc: sc}
}

func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	any := false
	for s.sc.Scan() {
		l := s.sc.Text()
		if l == "" {
			if any {
				return ev, nil
			}
			continue
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimPrefix(v, " ")
		any = true
		switch k {
		case "event":
			ev.event = v
		case "id":
			ev.id = v
		case "data":
			if ev.data != "" {
				ev.data += "\n"
			}
			ev.data += v
		}
	}
	if err := s.sc.Err(); err != nil {
		return ev, err
	}
	return ev, io.EOF
}

// problemCode decodes a problem response's code.
func problemCode(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 400 {
		return ""
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Sprintf("(content-type %q: %s)", ct, b)
	}
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Status != resp.StatusCode || p.Detail == "" {
		return fmt.Sprintf("(bad problem %s)", b)
	}
	return p.Code
}
