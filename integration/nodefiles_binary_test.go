package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
)

// TestNodeFilesBinary runs `logrouter collect --node-files-config` with docs/collector.md's
// sample file (its /var/log paths moved under a temporary root): the kube-apiserver audit log
// (events a real kube-apiserver wrote, router/audit/testdata) reaches logs.node-audit as one
// record per event with the event's fields, auditd's lines reach the configured topic
// platform.auditd unchanged, and the etcd source, whose directory does not exist on this
// "node", is reported as missing while the others flow.
func TestNodeFilesBinary(t *testing.T) {
	bin := collectortest.Binary(t)
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	brokers := cl.ListenAddrs()[0]
	root := t.TempDir()

	doc, err := os.ReadFile(filepath.Join("..", "docs", "collector.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- node-files-sample -->\n```yaml\n"
	i := bytes.Index(doc, []byte(marker))
	if i < 0 {
		t.Fatal("docs/collector.md has no node-files-sample")
	}
	sample := doc[i+len(marker):]
	sample = sample[:bytes.Index(sample, []byte("```"))]
	if !bytes.Contains(sample, []byte("/var/log/kube-apiserver/audit*.log")) || !bytes.Contains(sample, []byte("/var/log/audit/audit.log")) {
		t.Fatalf("the sample no longer has the audit and auditd sources this test writes:\n%s", sample)
	}
	// Every path of the sample, moved under root (the comments keep theirs).
	lines := strings.Split(string(sample), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "paths:") {
			lines[i] = strings.ReplaceAll(l, "/var/log/", root+"/var/log/")
		}
	}
	config := filepath.Join(root, "node-files.yaml")
	if err := os.WriteFile(config, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}

	events, err := os.ReadFile(filepath.Join("..", "router", "audit", "testdata", "apiserver-audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(events)), "\n") {
		var ev struct {
			AuditID, Stage string
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.AuditID+"/"+ev.Stage)
	}
	for _, d := range []string{"var/log/kube-apiserver", "var/log/audit"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/log/kube-apiserver/audit.log"), events, 0o644); err != nil {
		t.Fatal(err)
	}
	const auditdLines = 25
	var auditd strings.Builder
	for i := range auditdLines {
		fmt.Fprintf(&auditd, "type=SYSCALL msg=audit(1764617400.%03d:%d): arch=c000003e syscall=59 success=yes\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(root, "var/log/audit/audit.log"), []byte(auditd.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	logDir := t.TempDir()
	p := collectortest.StartBinary(t, bin, nil, "collect",
		"--log-dir", logDir, "--pods-dir", logDir, "--checkpoint-dir", t.TempDir(),
		"--brokers", brokers, "--node-name", "cp-1", "--metrics-addr", "", "--kubernetes=false",
		"--node-files-config", config)

	audit := collectortest.ReadAll(t, brokers, "logs.node-audit", len(ids), 60*time.Second)
	seen := map[string]int{}
	for _, m := range audit {
		rec, err := record.Decode(m.Value)
		if err != nil {
			t.Fatalf("logs.node-audit record: %v", err)
		}
		id, _ := rec.Fields["audit_id"].(string)
		stage, _ := rec.Fields["stage"].(string)
		seen[id+"/"+stage]++
		if rec.Namespace != "node-audit" || rec.Node != "cp-1" || rec.ParseError != "" || rec.Fields["verb"] == nil {
			t.Errorf("audit record: namespace %q node %q parse_error %q fields %v", rec.Namespace, rec.Node, rec.ParseError, rec.Fields)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("audit event %s: %d records, want 1", id, seen[id])
		}
	}
	got := collectortest.ReadAll(t, brokers, "platform.auditd", auditdLines, 60*time.Second)
	for i, m := range got {
		rec, err := record.Decode(m.Value)
		if err != nil {
			t.Fatalf("platform.auditd record: %v", err)
		}
		if want := strings.Split(auditd.String(), "\n")[i]; rec.Message != want || rec.Namespace != "node-auditd" {
			t.Errorf("platform.auditd record %d: %q in namespace %q, want %q in node-auditd", i, rec.Message, rec.Namespace, want)
		}
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("collector: %v\n%s", err, p.Stderr.String())
	}
	if log := p.Stderr.String(); !strings.Contains(log, "node file directory missing") || !strings.Contains(log, filepath.Join(root, "var/log/etcd")) {
		t.Errorf("the etcd source's missing directory was not reported:\n%s", log)
	}
}
