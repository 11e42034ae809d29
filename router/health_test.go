package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/loadgen"
)

// metricValue is the value of the series of metric name (without the logrouter_collector_
// prefix) whose labels include labels; ok is false when there is none.
func gathered(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "logrouter_collector_"+name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, want := range labels {
				if have[k] != want {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

// scans waits until the collector has finished n more scans.
func scans(t *testing.T, c *Collector, n uint64) {
	t.Helper()
	gen := func() uint64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.scanGen
	}
	start := gen()
	waitFor(t, 30*time.Second, func() bool { return gen() >= start+n+1 })
}

// unprivilegedEnv marks a test binary re-run as an unprivileged user (see runUnprivileged).
const unprivilegedEnv = "LOGROUTER_TEST_UNPRIVILEGED"

// runUnprivileged re-runs the current (sub)test in a copy of the test binary as user and group
// 65534 (nobody), for what root is exempt from (file permissions), and fails unless it passed.
func runUnprivileged(t *testing.T) {
	t.Helper()
	if os.Getenv(unprivilegedEnv) != "" {
		t.Fatal("still root after dropping privileges")
	}
	dir, err := os.MkdirTemp("", "logrouter-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "router.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		err = errors.Join(err, dst.Close())
	}
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1", "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("as user 65534: %v\n%s", err, out)
	}
}

// TestUnreadableFiles stages every kind of log file the collector cannot read, with kubelet's
// names: each is counted once (per namespace and reason) while it stays so and shown in the
// unreadable_files gauge, and another namespace's file keeps shipping.
func TestUnreadableFiles(t *testing.T) {
	tests := []struct {
		name, reason string
		stage        func(t *testing.T, path string)
		unprivileged bool // root reads anything: run as another user
	}{
		{name: "permission", reason: "permission", unprivileged: true, stage: func(t *testing.T, p string) {
			if err := os.Chmod(p, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fifo", reason: "not_regular", stage: func(t *testing.T, p string) {
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "directory", reason: "not_regular", stage: func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlink loop", reason: "symlink_loop", stage: func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Symlink(filepath.Base(p), p); err != nil {
				t.Fatal(err)
			}
		}},
		// docker's json-file logs, with /var/lib/docker/containers not mounted.
		{name: "dangling symlink", reason: "dangling_symlink", stage: func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Symlink("/var/lib/docker/containers/0123/0123-json.log", p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unprivileged && os.Geteuid() == 0 {
				runUnprivileged(t)
				return
			}
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			node, err := loadgen.NewNode(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			good, _ := node.AddContainer("readable", "web", "app", loadgen.CRI)
			bad, _ := node.AddContainer("unreadable", "web", "app", loadgen.CRI)
			for s := range 50 {
				good.Write(time.Now(), "stdout", loadgen.SeqMessage("readable", s, 100))
				bad.Write(time.Now(), "stdout", loadgen.SeqMessage("unreadable", s, 100))
			}
			bad.Close()
			tt.stage(t, bad.Path())
			r := startCollector(t, testConfig(t, node, brokers))

			got := consume(t, brokers, 50, 30*time.Second)
			checkSequences(t, got, map[string]int{"readable": 50})
			labels := map[string]string{"namespace": "unreadable", "reason": tt.reason}
			waitFor(t, 30*time.Second, func() bool {
				v, _ := gathered(t, r.reg, "unreadable_files_total", labels)
				return v > 0
			})
			scans(t, r.c, 3)
			if v, _ := gathered(t, r.reg, "unreadable_files_total", labels); v != 1 {
				t.Errorf("unreadable_files_total%v = %v after more scans, want 1 (counted once while it stays unreadable)", labels, v)
			}
			if v, _ := gathered(t, r.reg, "unreadable_files", map[string]string{"namespace": "unreadable"}); v != 1 {
				t.Errorf("unreadable_files{namespace=unreadable} = %v, want 1", v)
			}
			if v, ok := gathered(t, r.reg, "unreadable_files", map[string]string{"namespace": "readable"}); ok {
				t.Errorf("unreadable_files{namespace=readable} = %v, want no series", v)
			}
		})
	}
}

// TestScanErrorsCounted stages directories that cannot be listed and a read-back that cannot
// be done: each is counted (and logged), and the readable files still ship.
func TestScanErrorsCounted(t *testing.T) {
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		stage  func(t *testing.T, node *loadgen.Node, cfg *Config)
	}{
		{name: "log dir", metric: "scan_errors_total", labels: map[string]string{"dir": "containers"}, stage: func(t *testing.T, node *loadgen.Node, cfg *Config) {
			cfg.LogDir = filepath.Join(t.TempDir(), "containers") // made a file below
			if err := os.WriteFile(cfg.LogDir, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "pod dir", metric: "scan_errors_total", labels: map[string]string{"dir": "pods"}, stage: func(t *testing.T, node *loadgen.Node, cfg *Config) {
			if err := os.WriteFile(filepath.Join(node.PodsDir, "broken_pod_0000"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "container dir", metric: "scan_errors_total", labels: map[string]string{"dir": "pods"}, stage: func(t *testing.T, node *loadgen.Node, cfg *Config) {
			d := filepath.Join(node.PodsDir, "broken_pod_0000")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "app"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		// The read-back needs each file's topic; a template on namespace labels cannot be
		// rendered without the enricher.
		{name: "read-back", metric: "readback_errors_total", stage: func(t *testing.T, node *loadgen.Node, cfg *Config) {
			cfg.TopicTemplate = "logs.{namespace}.{label:tier}"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			node, _ := loadgen.NewNode(t.TempDir())
			c, _ := node.AddContainer("fine", "web", "app", loadgen.CRI)
			for s := range 20 {
				c.Write(time.Now(), "stdout", loadgen.SeqMessage("fine", s, 100))
			}
			cfg := testConfig(t, node, brokers)
			tt.stage(t, node, &cfg)
			r := startCollector(t, cfg)
			waitFor(t, 30*time.Second, func() bool {
				v, _ := gathered(t, r.reg, tt.metric, tt.labels)
				return v > 0
			})
			if tt.name != "read-back" {
				got := consume(t, brokers, 20, 30*time.Second)
				checkSequences(t, got, map[string]int{"fine": 20})
			}
		})
	}
}

// TestBrokerOutageVisible stops the broker while a container writes: the stall is counted,
// the oldest unacknowledged line's age grows, Ready says the collector is not shipping, and all
// of it clears once the broker is back, with every line delivered.
func TestBrokerOutageVisible(t *testing.T) {
	startBroker, brokers := restartableBroker(t)
	broker := startBroker()
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("outage", "web", "app", loadgen.CRI)
	cfg := testConfig(t, node, brokers)
	cfg.AckTimeout = 300 * time.Millisecond
	r := startCollector(t, cfg)

	var mu sync.Mutex
	written := 0
	write := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		for range n {
			if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage("outage", written, 100)); err != nil {
				t.Fatal(err)
			}
			written++
		}
	}
	write(100)
	consume(t, brokers, 100, 30*time.Second)
	waitFor(t, 30*time.Second, func() bool { return r.c.Ready() == nil })
	if v, _ := gathered(t, r.reg, "oldest_unacked_line_age_seconds", nil); v >= cfg.AckTimeout.Seconds() {
		t.Errorf("oldest_unacked_line_age_seconds = %v with everything acknowledged", v)
	}

	broker.Close()
	write(100) // lines that cannot be acknowledged now
	unreachable := map[string]string{"reason": "unreachable"}
	waitFor(t, 30*time.Second, func() bool {
		v, _ := gathered(t, r.reg, "kafka_errors_total", unreachable)
		return v > 0
	})
	err := r.c.Ready()
	if !errors.Is(err, ErrNotShipping) {
		t.Fatalf("Ready() during the outage = %v, want ErrNotShipping", err)
	}
	t.Logf("Ready() during the outage: %v", err)
	age1, _ := gathered(t, r.reg, "oldest_unacked_line_age_seconds", nil)
	if age1 < cfg.AckTimeout.Seconds() {
		t.Errorf("oldest_unacked_line_age_seconds = %v during the outage, want at least %v", age1, cfg.AckTimeout.Seconds())
	}
	errs1, _ := gathered(t, r.reg, "kafka_errors_total", unreachable)
	waitFor(t, 30*time.Second, func() bool {
		age, _ := gathered(t, r.reg, "oldest_unacked_line_age_seconds", nil)
		errs, _ := gathered(t, r.reg, "kafka_errors_total", unreachable)
		return age > age1+0.5 && errs > errs1
	})

	broker = startBroker()
	defer broker.Close()
	waitFor(t, 60*time.Second, func() bool { return r.c.Ready() == nil })
	write(100)
	got := consume(t, brokers, 300, 60*time.Second)
	checkSequences(t, got, map[string]int{"outage": 300})
	waitFor(t, 30*time.Second, func() bool {
		age, _ := gathered(t, r.reg, "oldest_unacked_line_age_seconds", nil)
		return age < cfg.AckTimeout.Seconds()
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestCheckpointDirUnwritable makes the checkpoint directory unwritable while the collector
// runs (replaced by a file: root writes through permissions). Ready reports it, Run returns an
// error at shutdown, and a restart where no checkpoint was ever saved sends nothing Kafka
// already has.
func TestCheckpointDirUnwritable(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	nss := []string{"ck-a", "ck-b"}
	var conts []*loadgen.Container
	for i, ns := range nss {
		c, _ := node.AddContainer(ns, "web", "app", loadgen.Format(i%2))
		conts = append(conts, c)
		for s := range 500 {
			c.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, s, 100))
		}
	}
	cfg := testConfig(t, node, brokers)
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "checkpoints")
	var logged syncbuf.Buffer
	r := startCollectorWith(t, cfg, func(c *Collector) {
		c.checkpointLog = newErrLog(slog.New(slog.NewTextHandler(&logged, nil)), slog.LevelError, 30*time.Second)
	})
	consume(t, brokers, 1000, 30*time.Second)
	waitFor(t, 30*time.Second, func() bool { return r.c.Ready() == nil })

	// Renamed away, not removed: a save may be creating a file in it right now.
	if err := os.Rename(cfg.CheckpointDir, cfg.CheckpointDir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.CheckpointDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return errors.Is(r.c.Ready(), ErrCheckpoints) })
	t.Logf("Ready(): %v", r.c.Ready())
	if v, _ := gathered(t, r.reg, "checkpoint_errors_total", nil); v == 0 {
		t.Error("checkpoint_errors_total = 0")
	}
	// A save fails every --checkpoint-interval (50 ms here): the log says so at a bounded rate.
	waitFor(t, 30*time.Second, func() bool { v, _ := gathered(t, r.reg, "checkpoint_errors_total", nil); return v >= 20 })
	if n := strings.Count(logged.String(), "saving checkpoints failed"); n == 0 || n > 6 {
		t.Errorf("%d log lines for 20 or more failed saves, want 1 to 6 (a burst of 5, then one per 30 s)", n)
	}
	err := r.stop()
	if err == nil {
		t.Fatal("Run returned nil although the final checkpoint save failed")
	}
	t.Logf("Run: %v", err)

	// The restart finds no checkpoint (the directory could never be written), as after a run
	// whose saves all failed. What the first run sent is in Kafka and is not sent again.
	for i, c := range conts {
		for s := 500; s < 600; s++ {
			c.Write(time.Now(), "stdout", loadgen.SeqMessage(nss[i], s, 100))
		}
	}
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "never-written")
	r2 := startCollector(t, cfg)
	got := consume(t, brokers, 1200, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"ck-a": 600, "ck-b": 600}); dups != 0 {
		t.Errorf("%d lines sent again although Kafka had them", dups)
	}
	for _, ns := range nss {
		if v, _ := gathered(t, r2.reg, "lines_already_in_kafka_total", map[string]string{"namespace": ns}); v != 500 {
			t.Errorf("%s: lines_already_in_kafka_total = %v, want 500", ns, v)
		}
	}
}

// TestReadBackMatchesMessages puts records in Kafka that look like this node's records of a
// file (same node, src and offsets) but are of another file that had its inode before: the
// read-back of a file without a checkpoint must not take them for its lines.
func TestReadBackMatchesMessages(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	c, _ := node.AddContainer("reuse", "web", "app", loadgen.CRI)
	var offsets []int64
	var off int64
	for s := range 50 {
		b := c.Line(time.Now(), "stdout", false, loadgen.SeqMessage("reuse", s, 100))
		if err := c.WriteRaw(b); err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, off)
		off += int64(len(b))
	}
	fi, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	id, err := fileid.Of(fi)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(context.Background(), 3, 1, nil, "logs.reuse"); err != nil {
		t.Fatal(err)
	}
	for _, o := range offsets {
		v := fmt.Sprintf(`{"v":1,"ts":"2026-01-01T00:00:00.000000000Z","message":"an older file's line","namespace":"reuse","pod":"web","container":"app","node":"node-1","offset":%d,"src":"%d:%d"}`, o, id.Dev, id.Inode)
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: "logs.reuse", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r := startCollector(t, testConfig(t, node, brokers))
	got := consume(t, brokers, 50+len(offsets), 30*time.Second)
	checkSequences(t, got, map[string]int{"reuse": 50})
	if v, _ := gathered(t, r.reg, "lines_already_in_kafka_total", map[string]string{"namespace": "reuse"}); v != 0 {
		t.Errorf("lines_already_in_kafka_total = %v, want 0: another file's records were taken for this one's", v)
	}
}
