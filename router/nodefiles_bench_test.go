package router

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/nodefiles"
)

const (
	benchAuditEvents     = 30_000
	benchContainerLines  = 200_000 // over 4 namespaces, 2 files each
	benchContainerLineSz = 160
)

// benchAuditEvent is a kube-apiserver Metadata-level event of the size such events have (~700
// bytes), numbered.
func benchAuditEvent(i int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%08x-1f2e-4d3c-9b8a-%012x","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-%d/pods?limit=500","verb":"list","user":{"username":"system:serviceaccount:team-%d:ci","uid":"3b1c0f4e-2d6a-4e8f-9c7b-5a4d3c2b1a09","groups":["system:serviceaccounts","system:serviceaccounts:team-%d","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["ci-7d9f8b6c5-x2x9z"]}},"sourceIPs":["10.244.1.17"],"userAgent":"kubectl/v1.34.4 (linux/amd64) kubernetes/abcdef0","objectRef":{"resource":"pods","namespace":"team-%d","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-01T19:40:00.123456Z","stageTimestamp":"2026-12-01T19:40:00.125000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"ci/team-%d\""}}`, i, i, i%8, i%8, i%8, i%8, i%8)
}

// BenchmarkAuditAlongsideContainers measures the audit-log path alongside container logs: a
// backlog of 30,000 audit events (kube-audit parser) and one of 200,000 container lines (4
// namespaces, 2 files each, 160-byte lines) read by one collector into kfake, against each
// alone. Reported: each path's rate (items until Kafka acknowledged the last), and the process's
// CPU per run (collector, kfake and nothing else: the files are written before it starts).
//
//	go test -run '^$' -bench BenchmarkAuditAlongsideContainers -benchtime 1x -count 3 ./router/
func BenchmarkAuditAlongsideContainers(b *testing.B) {
	for range b.N {
		for _, run := range []struct {
			name              string
			audit, containers bool
		}{{"audit alone", true, false}, {"containers alone", false, true}, {"together", true, true}} {
			r := auditBenchRun(b, run.audit, run.containers)
			b.Logf("%s: %s", run.name, r)
		}
	}
}

type auditBenchResult struct {
	auditRate, containerRate float64 // per second, until the last was acknowledged
	cpu                      time.Duration
}

func (r auditBenchResult) String() string {
	return fmt.Sprintf("audit %.0f events/s, containers %.0f lines/s, process CPU %.2fs", r.auditRate, r.containerRate, r.cpu.Seconds())
}

func auditBenchRun(b *testing.B, withAudit, withContainers bool) auditBenchResult {
	b.Helper()
	cl := newCluster(b)
	node, err := loadgen.NewNode(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(b, node, cl.ListenAddrs()[0])
	cfg.PollInterval, cfg.ScanInterval, cfg.CheckpointInterval = DefaultConfig().PollInterval, DefaultConfig().ScanInterval, DefaultConfig().CheckpointInterval
	dir := b.TempDir()
	cfg.NodeFiles.Sources = []nodefiles.Source{{Name: "audit", Paths: []string{filepath.Join(dir, "audit*.log")}, Parser: nodefiles.ParserKubeAudit}}
	if withAudit {
		var buf bytes.Buffer
		for i := range benchAuditEvents {
			buf.WriteString(benchAuditEvent(i))
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, "audit.log"), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var nss []string
	if withContainers {
		for ns := range 4 {
			name := fmt.Sprintf("bench-%d", ns)
			nss = append(nss, name)
			for p := range 2 {
				c, err := node.AddContainer(name, fmt.Sprintf("pod-%d", p), "app", loadgen.CRI)
				if err != nil {
					b.Fatal(err)
				}
				key := name + "/" + c.Pod
				for i := range benchContainerLines / 8 {
					if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage(key, i, benchContainerLineSz)); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	cpu0, start := processCPU(b), time.Now()
	r := startCollector(b, cfg)
	acked := func(ns string) float64 { return testutil.ToFloat64(r.c.metrics.linesAcked.WithLabelValues(ns)) }
	var res auditBenchResult
	auditDone, containersDone := !withAudit, !withContainers
	for deadline := time.Now().Add(5 * time.Minute); !auditDone || !containersDone; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("not all acknowledged in 5 minutes")
		}
		if !auditDone && acked("node-file:audit") >= benchAuditEvents {
			auditDone, res.auditRate = true, benchAuditEvents/time.Since(start).Seconds()
		}
		if !containersDone {
			var n float64
			for _, ns := range nss {
				n += acked(ns)
			}
			if n >= benchContainerLines {
				containersDone, res.containerRate = true, benchContainerLines/time.Since(start).Seconds()
			}
		}
	}
	res.cpu = processCPU(b) - cpu0
	if err := r.stop(); err != nil {
		b.Fatal(err)
	}
	return res
}
