package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
)

// lockedBuffer collects log output written by the archiver's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (%s)", what, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func produceSeq(t *testing.T, cl *kgo.Client, ns string, from, n int) {
	t.Helper()
	var rs []*kgo.Record
	now := time.Now()
	for i := from; i < from+n; i++ {
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: ns, Pod: "p", Container: "c", Time: now, KafkaTime: now, Message: archivetest.Seq(ns, i), Partition: 0}))
	}
	if err := archivetest.Produce(context.Background(), cl, rs); err != nil {
		t.Fatal(err)
	}
}

// startRun runs a in the background until stop (or the test's end); stop returns Run's error.
func startRun(t *testing.T, a *Archiver) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// openTestBucket opens url for the test's own reads.
func openTestBucket(t *testing.T, url string) *blob.Bucket {
	b, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// breakDir replaces a file:// bucket's directory by a regular file (unlike chmod, this stops
// root too) and returns the function that puts it back.
func breakDir(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir+".away", dir); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnwritableBucket: while every upload fails, readiness turns false with the reason, the
// consecutive-failure and oldest-record gauges show it, and it turns true again once the bucket
// works. A shutdown that must abandon uploads returns an error saying how many records are left;
// nothing of them is committed, and the next run archives every record exactly once.
func TestUnwritableBucket(t *testing.T) {
	kc, cl := newCluster(t, 1, "logs.unw")
	dir := t.TempDir() + "/bucket"
	bucket := "file://" + dir
	cfg := testConfig(t, kc.ListenAddrs(), bucket)
	cfg.MaxObjectAge = 200 * time.Millisecond
	cfg.DrainTimeout = time.Second
	var logs lockedBuffer
	a, err := New(cfg, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	b := openTestBucket(t, bucket)
	part := archivetest.Pos{Topic: "logs.unw", Partition: 0}

	produceSeq(t, cl, "unw", 0, 20)
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: 20}, 20*time.Second)

	restore := breakDir(t, dir)
	produceSeq(t, cl, "unw", 20, 30)
	eventually(t, "not ready after upload failures", 30*time.Second, func() (bool, string) {
		err := a.Ready()
		return err != nil && strings.Contains(err.Error(), "consecutive upload failures") && strings.Contains(err.Error(), "not a directory"), fmt.Sprint(err)
	})
	if n := testutil.ToFloat64(a.m.uploadFailures); n < unreadyUploadFailures {
		t.Errorf("consecutive failures gauge %v while not ready", n)
	}
	eventually(t, "oldest unarchived record ages", 10*time.Second, func() (bool, string) {
		age := a.oldestUnarchivedAge()
		return age >= 0.5, fmt.Sprint(age)
	})

	// The bucket comes back: the records are archived and readiness returns.
	restore()
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: 50}, 30*time.Second)
	eventually(t, "ready again", 10*time.Second, func() (bool, string) {
		err := a.Ready()
		return err == nil && testutil.ToFloat64(a.m.uploadFailures) == 0 && a.oldestUnarchivedAge() == 0, fmt.Sprint(err)
	})

	// Broken again at shutdown: the drain gives up and says so.
	restore = breakDir(t, dir)
	produceSeq(t, cl, "unw", 50, 25)
	eventually(t, "records spooled", 20*time.Second, func() (bool, string) {
		// Not records_total: a range re-read after a claim race counts again.
		a.mu.Lock()
		defer a.mu.Unlock()
		p := a.parts[tp{"logs.unw", 0}]
		if p == nil {
			return false, "no partition"
		}
		return p.next == 75, fmt.Sprint("next ", p.next)
	})
	err = stop()
	if !errors.Is(err, ErrDrainTimeout) || !strings.Contains(err.Error(), "25 records") {
		t.Fatalf("Run = %v, want ErrDrainTimeout for 25 records", err)
	}
	if !strings.Contains(logs.String(), `"records_left":25`) {
		t.Errorf("no drain log line with records_left 25:\n%s", logs.String())
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("logs.unw", 0); o.At != 50 {
		t.Fatalf("committed offset %d, want 50 (the abandoned records uncommitted)", o.At)
	}

	// The next run archives what was left, exactly once.
	restore()
	a2, err := New(testConfig(t, kc.ListenAddrs(), bucket), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := startRun(t, a2)
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: 75}, 30*time.Second)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	audit, err := archivetest.Read(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < 75; off++ {
		if n := audit.Count[archivetest.Pos{Topic: "logs.unw", Partition: 0, Offset: off}]; n != 1 {
			t.Errorf("offset %d archived %d times", off, n)
		}
	}
}

// TestBrokerOutageReadiness: readiness turns false while no broker answers, naming the outage,
// and true again when Kafka is back; the archiver carries on by itself.
func TestBrokerOutageReadiness(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	kdir := t.TempDir()
	start := func() *kfake.Cluster {
		t.Helper()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(kdir), kfake.SeedTopics(1, "logs.out"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	kc := start()
	stopped := false
	defer func() {
		if !stopped {
			kc.Close()
		}
	}()
	produce := func(from, n int) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		produceSeq(t, cl, "out", from, n)
	}
	dir := t.TempDir()
	bucket := "file://" + dir
	cfg := testConfig(t, kc.ListenAddrs(), bucket)
	cfg.SessionTimeout = 10 * time.Second
	reg := prometheus.NewRegistry()
	a, err := New(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.health.kafkaGrace = 2 * time.Second
	stop := startRun(t, a)
	b := openTestBucket(t, bucket)
	part := archivetest.Pos{Topic: "logs.out", Partition: 0}

	produce(0, 10)
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: 10}, 20*time.Second)

	kc.Close()
	stopped = true
	eventually(t, "not ready during the outage", 30*time.Second, func() (bool, string) {
		err := a.Ready()
		return err != nil && strings.Contains(err.Error(), "cannot reach Kafka for"), fmt.Sprint(err)
	})
	if age := a.health.kafkaContactAge(); age < 2 {
		t.Errorf("kafka contact age %v while unreachable", age)
	}

	kc = start()
	stopped = false
	produce(10, 10)
	waitArchived(t, b, "", map[archivetest.Pos]int64{part: 20}, 60*time.Second)
	eventually(t, "ready after the outage", 20*time.Second, func() (bool, string) {
		err := a.Ready()
		return err == nil, fmt.Sprint(err)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
