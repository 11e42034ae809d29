package router

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/router/loadgen"
)

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// restartableBroker returns a function that starts a broker on one port with its data in one
// directory, so a test can stop it and start it again with everything it had.
func restartableBroker(t *testing.T) (start func() *kfake.Cluster, brokers string) {
	port := freePort(t)
	dataDir := t.TempDir()
	start = func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return start, fmt.Sprintf("127.0.0.1:%d", port)
}

// TestBrokerOutage stops the broker while containers keep writing: reading pauses at the byte
// budget (memory stays flat), and when the broker is back with its data every line arrives.
func TestBrokerOutage(t *testing.T) {
	startBroker, brokers := restartableBroker(t)
	broker := startBroker()
	node, _ := loadgen.NewNode(t.TempDir())
	var ws []*loadgen.Container
	for _, ns := range []string{"out-a", "out-b"} {
		c, err := node.AddContainer(ns, "web", "app", loadgen.CRI)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, c)
	}
	cfg := testConfig(t, node, brokers)
	cfg.BufferBytes = 1 << 20
	cfg.ReadBytes = 16 << 10
	r := startCollector(t, cfg)

	stop := make(chan struct{})
	counts := make([]int, len(ws))
	var wg sync.WaitGroup
	for i, c := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 20 {
					if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage(c.Namespace, counts[i], 200)); err != nil {
						t.Error(err)
						return
					}
					counts[i]++
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	broker.Close()
	outageStart := time.Now()
	var peak int64
	readAt := func() float64 {
		return testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues("out-a")) + testutil.ToFloat64(r.c.metrics.linesRead.WithLabelValues("out-b"))
	}
	var readMid float64
	for time.Since(outageStart) < 3*time.Second {
		peak = max(peak, r.c.budget.Used())
		if time.Since(outageStart) > 1500*time.Millisecond && readMid == 0 {
			readMid = readAt()
		}
		time.Sleep(10 * time.Millisecond)
	}
	readEnd := readAt()
	broker = startBroker()
	defer broker.Close()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// A chunk may overshoot its reservation once (Force), so allow one read's worth per file.
	if limit := cfg.BufferBytes + int64(len(ws))*int64(cfg.ReadBytes)*8; peak > limit {
		t.Errorf("buffered bytes peaked at %d during the outage, budget %d", peak, cfg.BufferBytes)
	}
	if readEnd != readMid {
		t.Errorf("reading did not pause during the outage: %v lines read at 1.5s, %v at 3s", readMid, readEnd)
	}
	want := map[string]int{}
	total := 0
	for i, c := range ws {
		want[c.Namespace] = counts[i]
		total += counts[i]
	}
	got := consume(t, brokers, total, 60*time.Second)
	dups := checkSequences(t, got, want)
	t.Logf("%d lines, peak buffered %d bytes (budget %d), %d duplicates", total, peak, cfg.BufferBytes, dups)
}
