package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// auditPolicy logs ConfigMap requests with their bodies (large events, so the 1 MB log rotates
// often) and everything else at Metadata level.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
  - level: Metadata
`

// TestAuditLogFromKubeAPIServer ships a real kube-apiserver's audit log while it rotates: the
// API server writes it with --audit-log-maxsize 1 (MB) and --audit-log-maxbackup 2, so it
// renames the log to audit-<time>.log and deletes the oldest backups while requests run. Every
// event it wrote, by audit ID and stage, must be in Kafka with its fields.
//
// What it wrote is known from hard links the test makes to each backup as it appears (the API
// server's deletion then leaves the test's link) and from the live log at the end.
func TestAuditLogFromKubeAPIServer(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	srv := kubeapiserver.Start(t, kubeapiserver.Options{Audit: &kubeapiserver.Audit{Path: logPath, Policy: auditPolicy, MaxSizeMB: 1, MaxBackups: 2}})
	admin := srv.Client(t)
	ctx := context.Background()

	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	brokers := kc.ListenAddrs()[0]
	cfg := router.DefaultConfig()
	cfg.LogDir, cfg.PodsDir, cfg.CheckpointDir = t.TempDir(), t.TempDir(), t.TempDir()
	cfg.Node = "cp-1"
	cfg.Sink.Kafka.Brokers = brokers
	cfg.Sink.Partitions = 1
	cfg.PollInterval, cfg.ScanInterval, cfg.CheckpointInterval, cfg.RotatedIdle = 20*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	cfg.NodeFiles.Sources = []nodefiles.Source{{Name: "audit", Paths: []string{filepath.Join(dir, "audit*.log")}, Parser: nodefiles.ParserKubeAudit}}
	c, err := router.New(cfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node}}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(cctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})

	// Keep every backup the API server makes, before it deletes it.
	keep := t.TempDir()
	kept := map[string]bool{}
	var keptMu sync.Mutex
	stopLinks := make(chan struct{})
	linked := make(chan struct{})
	go func() {
		defer close(linked)
		for {
			backups, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
			keptMu.Lock()
			for _, b := range backups {
				if !kept[b] && os.Link(b, filepath.Join(keep, filepath.Base(b))) == nil {
					kept[b] = true
				}
			}
			keptMu.Unlock()
			select {
			case <-stopLinks:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audited"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"blob": strings.Repeat("x", 4096)}
	deadline := time.Now().Add(4 * time.Minute)
	for i := 0; ; i++ {
		keptMu.Lock()
		n := len(kept)
		keptMu.Unlock()
		if n >= 4 { // rotated four times: the first two backups are deleted by now
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log rotated %d times in 4 minutes", n)
		}
		name := fmt.Sprintf("cm-%d", i)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
		if _, err := admin.CoreV1().ConfigMaps("audited").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().ConfigMaps("audited").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := admin.CoreV1().Pods("audited").List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stopLinks)
	<-linked
	if left, _ := filepath.Glob(filepath.Join(dir, "audit-*.log")); len(left) > 2 {
		t.Errorf("%d backups left, want --audit-log-maxbackup 2 to have deleted older ones", len(left))
	}

	// What the API server wrote: the kept backups and the live log (growing still: the
	// collector's own requests are not audited, but the API server's controllers' are).
	type key struct{ id, stage string }
	type event struct {
		verb, user, resource, namespace string
		code                            int
	}
	written := map[key]event{}
	files, _ := filepath.Glob(filepath.Join(keep, "audit-*.log"))
	files = append(files, logPath)
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var e struct {
				AuditID string `json:"auditID"`
				Stage   string `json:"stage"`
				Verb    string `json:"verb"`
				User    struct {
					Username string `json:"username"`
				} `json:"user"`
				ObjectRef struct {
					Resource  string `json:"resource"`
					Namespace string `json:"namespace"`
				} `json:"objectRef"`
				ResponseStatus struct {
					Code int `json:"code"`
				} `json:"responseStatus"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			written[key{e.AuditID, e.Stage}] = event{e.Verb, e.User.Username, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ResponseStatus.Code}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if p := os.Getenv("LOGROUTER_AUDIT_SAMPLE_OUT"); p != "" {
		// Refreshes router/audit/testdata/apiserver-audit.log from the first backup.
		writeAuditSample(t, files[0], p, 40)
	}

	// Every one of them in Kafka, once per event, with its fields.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("logs.node-audit"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[key]int{}
	missing := func() int {
		n := 0
		for k := range written {
			if got[k] == 0 {
				n++
			}
		}
		return n
	}
	readUntil := time.Now().Add(2 * time.Minute)
	for missing() > 0 && time.Now().Before(readUntil) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := record.Decode(r.Value)
			if err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			var f struct {
				AuditID   string `json:"audit_id"`
				Stage     string `json:"stage"`
				Verb      string `json:"verb"`
				User      string `json:"user"`
				Resource  string `json:"resource"`
				Namespace string `json:"namespace"`
				Code      int    `json:"code"`
			}
			b, _ := json.Marshal(rec.Fields)
			if err := json.Unmarshal(b, &f); err != nil || rec.ParseError != "" || rec.FieldsError != "" {
				t.Fatalf("record without audit fields (%v, parse_error %q, fields_error %q): %.300s", err, rec.ParseError, rec.FieldsError, r.Value)
			}
			k := key{f.AuditID, f.Stage}
			got[k]++
			if w, ok := written[k]; ok && (w != event{f.Verb, f.User, f.Resource, f.Namespace, f.Code}) {
				t.Errorf("event %v: fields %+v, want %+v", k, f, w)
			}
			if rec.Namespace != "node-audit" || rec.Node != "cp-1" || !strings.HasPrefix(rec.File, dir) {
				t.Errorf("record namespace %q node %q file %q", rec.Namespace, rec.Node, rec.File)
			}
		})
	}
	dups := 0
	for k, n := range got {
		if n > 1 {
			dups++
			if dups <= 3 {
				t.Errorf("event %v in Kafka %d times", k, n)
			}
		}
	}
	if n := missing(); n > 0 {
		t.Errorf("%d of %d audit events not in Kafka", n, len(written))
	}
	t.Logf("%d audit events in %d files (%d rotations), %d records read", len(written), len(files), len(files)-1, len(got))
}

// writeAuditSample copies the first n events of src to dst.
func writeAuditSample(t *testing.T, src, dst string, n int) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if err := os.WriteFile(dst, []byte(strings.Join(lines[:min(n, len(lines))], "")), 0o644); err != nil {
		t.Fatal(err)
	}
}
