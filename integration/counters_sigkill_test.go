package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/counters"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestPipelineCountersSurviveSIGKILL runs the collector binary with a pipeline from
// --pipelines-dir, publishing its counters every 100 ms, and kills it with SIGKILL while it
// collects; a new process takes over, and later stops cleanly and starts again. Every record
// of the pipeline on the counters topic, in the order published, is at least the one before
// (the status never goes down); a clean restart with nothing new to read changes nothing;
// deleting the pipeline's file tombstones its record.
func TestPipelineCountersSurviveSIGKILL(t *testing.T) {
	bin := collectortest.Binary(t)
	brokers := collectortest.Broker(t)
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	compact := "compact"
	if _, err := kadm.NewClient(kc).CreateTopic(context.Background(), 1, -1, map[string]*string{"cleanup.policy": &compact}, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := node.AddContainer("cnt-a", "web", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	pipes := t.TempDir()
	pipeFile := filepath.Join(pipes, "web.yaml")
	if err := os.WriteFile(pipeFile, []byte(`apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  namespace: cnt-a
  name: web
spec:
  steps:
  - regex:
      pattern: '"(?P<first>[a-z]+)'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	written := 0
	write := func(n int) {
		for range n {
			if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage("cnt-a/web", written, 100)); err != nil {
				t.Error(err) // also from the writing goroutine
				return
			}
			written++
		}
	}
	args := []string{"collect",
		"--log-dir", node.LogDir, "--pods-dir", node.PodsDir, "--checkpoint-dir", t.TempDir(),
		"--brokers", brokers, "--node-name", "cnt-node", "--metrics-addr", "", "--kubernetes=false",
		"--pipelines-dir", pipes, "--pipelines-interval", "50ms", "--counters-interval", "100ms",
		"--compression", "none", "--poll-interval", "20ms", "--scan-interval", "100ms", "--checkpoint-interval", "100ms"}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		if os.Getenv("LOGROUTER_TEST_LOG") != "" {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	key := string(counters.RecordKey("cnt-node", counters.Key{Namespace: "cnt-a", Pipeline: "web"}))
	// history is every record of the pipeline's key in the order published (nil: tombstone).
	history := func() []*counters.Counts {
		var out []*counters.Counts
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := counters.ReadToEnd(ctx, []kgo.Opt{kgo.SeedBrokers(brokers)}, topic.CountersTopic, func(r *kgo.Record) {
			if string(r.Key) != key {
				return
			}
			v, live, err := counters.Decode(r.Value)
			switch {
			case err != nil:
				t.Errorf("offset %d: %v", r.Offset, err)
			case live:
				out = append(out, &v.Counts)
			default:
				out = append(out, nil)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	last := func() *counters.Counts {
		h := history()
		if len(h) == 0 {
			return nil
		}
		return h[len(h)-1]
	}
	waitSelected := func(what string, cond func(int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if l := last(); l != nil && cond(l.Selected) {
				return l.Selected
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (last record %+v)", what, last())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stopClean := func(cmd *exec.Cmd) {
		t.Helper()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("collector exited with %v after SIGTERM", err)
		}
	}
	// A first process reads 200 lines and stops cleanly: its last publication has them all,
	// its checkpoint is at the end.
	write(200)
	cmd := start()
	waitSelected("the first 200 lines counted", func(n int64) bool { return n >= 200 })
	stopClean(cmd)
	first := last().Selected

	// A second process counts from zero, lines keep coming, and it is killed right after a
	// publication that counted some of them, with more read and counted since.
	cmd = start()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			write(3)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitSelected("a publication counting some of the next lines", func(n int64) bool { return n > first })
	time.Sleep(50 * time.Millisecond) // half an interval: counted, not published
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-done
	killedAt := last().Selected

	// A third process reads on from the checkpoint (again what the killed one read after it)
	// and 100 new lines, and resumes its counts from the topic.
	write(100)
	cmd = start()
	readSeqs(t, brokers, map[string]int{"cnt-a/web": written}, written, 60*time.Second)
	afterKill := waitSelected("the 100 new lines counted on top of the killed process's", func(n int64) bool { return n >= killedAt+100 })
	// Let it publish what it read, then stop it cleanly (its last publication).
	time.Sleep(300 * time.Millisecond)
	stopClean(cmd)
	final := *last()

	// A clean restart with nothing new: the record stays as it is.
	cmd = start()
	time.Sleep(time.Second) // ten publication intervals
	if got := *last(); got != final {
		t.Errorf("after a clean restart the record is %+v, want %+v unchanged", got, final)
	}

	h := history()
	for i := 1; i < len(h); i++ {
		a, b := h[i-1], h[i]
		if a == nil || b == nil {
			t.Fatalf("record %d of %d is a tombstone, and the pipeline exists", i, len(h))
		}
		if b.Selected < a.Selected || b.Emitted < a.Emitted {
			t.Errorf("record %d went down: %+v after %+v", i, *b, *a)
		}
	}

	// Deleting the pipeline tombstones its record.
	if err := os.Remove(pipeFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for last() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no tombstone after the pipeline's deletion (last record %+v)", last())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	t.Logf("%d lines written; counters: %d at the SIGKILL, %d after it, %d at the end (%+d: lines counted after the killed process's last publication are lost, lines read again from its checkpoint are counted again); %d records before the tombstone",
		written, killedAt, afterKill, final.Selected, final.Selected-int64(written), len(h))
}
