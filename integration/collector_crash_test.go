package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestCollectorSurvivesSIGKILL kills the collector process with SIGKILL at random points while
// containers keep writing (and rotating), restarts it each time from its checkpoints, and then
// counts every line: none may be missing, and duplicates are only lines not yet acknowledged at
// the kill (their number is reported).
func TestCollectorSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process 25 times")
	}
	bin := collectortest.Binary(t)
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	brokers := cl.ListenAddrs()[0]
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ckDir := t.TempDir()

	type writer struct {
		c   *loadgen.Container
		key string
		n   int
	}
	var ws []*writer
	for _, ns := range []string{"crash-a", "crash-b", "crash-c"} {
		for p := range 2 {
			c, err := node.AddContainer(ns, fmt.Sprintf("pod-%d", p), "app", loadgen.Format(p%2))
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, &writer{c: c, key: ns + "/" + c.Pod})
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rot := time.NewTicker(time.Duration(700+100*i) * time.Millisecond)
			defer rot.Stop()
			for {
				select {
				case <-stop:
					return
				case <-rot.C:
					if _, err := w.c.RotateRename(); err != nil {
						t.Error(err)
						return
					}
				default:
					for range 10 {
						if err := w.c.Write(time.Now(), "stdout", loadgen.SeqMessage(w.key, w.n, 150)); err != nil {
							t.Error(err)
							return
						}
						w.n++
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}

	args := []string{"collect",
		"--log-dir", node.LogDir, "--pods-dir", node.PodsDir, "--checkpoint-dir", ckDir,
		"--brokers", brokers, "--node-name", "crash-node", "--metrics-addr", "", "--kubernetes=false",
		"--compression", "none", "--topic-partitions", "2",
		"--poll-interval", "20ms", "--scan-interval", "100ms", "--checkpoint-interval", "100ms",
		"--rotated-idle", "300ms", "--shutdown-grace", "10s"}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = nil, nil
		if os.Getenv("LOGROUTER_TEST_LOG") != "" {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 25
	for i := range kills {
		cmd := start()
		time.Sleep(time.Duration(150+r.IntN(600)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		_ = cmd.Wait()
	}
	close(stop)
	wg.Wait()

	// The last run reads everything left, then stops cleanly on SIGTERM.
	cmd := start()
	want := map[string]int{}
	total := 0
	for _, w := range ws {
		want[w.key] = w.n
		total += w.n
	}
	seen, dups := readSeqs(t, brokers, want, total, 90*time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("collector exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Error("collector did not exit within 20s of SIGTERM")
	}
	missing := 0
	for key, n := range want {
		for s := range n {
			if seen[key][s] == 0 {
				missing++
				if missing <= 5 {
					t.Errorf("%s: seq %d missing", key, s)
				}
			}
		}
	}
	// Duplicates come only from restarts rewinding a file to its last saved checkpoint: per
	// container they form contiguous runs, at most one per kill and file the container had open
	// (the live file and the rotated ones still being read). Scattered duplicates would mean a
	// line was sent twice for another reason.
	runs := 0
	for key, n := range want {
		prev := -2
		for s := range n {
			if seen[key][s] > 1 {
				if s != prev+1 {
					runs++
				}
				prev = s
			}
		}
	}
	if maxRuns := kills * len(ws) * 3; runs > maxRuns {
		t.Errorf("duplicates form %d separate runs, more than rewinds explain (%d)", runs, maxRuns)
	}
	// Each restart reads back what the killed run produced after its last checkpoint and does not
	// send it again: what remains are lines whose produce request was still in flight at the kill
	// and reached the broker after that read-back. Without the read-back this test saw ~30%;
	// with it usually 0, but a -race run of the whole suite on 2 busy cores once saw 1.3% (three
	// kills whose in-flight requests landed late): the bound tells the two apart with room.
	if limit := total / 20; dups > limit {
		t.Errorf("%d duplicates, more than 5%% of %d lines: acknowledged lines were sent again", dups, total)
	}
	t.Logf("%d kills, %d lines, %d missing, %d duplicates (%.2f%%) in %d runs", kills, total, missing, dups, 100*float64(dups)/float64(total), runs)
	// After the clean stop, every live file's checkpoint is at its end.
	st, _ := checkpoint.Open(ckDir)
	entries, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		fi, _ := os.Stat(w.c.Path())
		ok := false
		for _, e := range entries {
			if e.Path == w.c.Path() && e.Offset == fi.Size() {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: no checkpoint at its end (%d bytes)", w.c.Path(), fi.Size())
		}
	}
}

// readSeqs consumes logs.* until every seq of want was seen (or timeout), and returns how
// often each was seen and the number of duplicates.
func readSeqs(t *testing.T, brokers string, want map[string]int, total int, timeout time.Duration) (map[string]map[int]int, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]map[int]int{}
	for k := range want {
		seen[k] = map[int]int{}
	}
	distinct, dups := 0, 0
	deadline := time.Now().Add(timeout)
	for distinct < total && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := record.Decode(r.Value)
			if err != nil {
				t.Errorf("undecodable record: %v", err)
				return
			}
			key, seq, ok := loadgen.ParseSeq(rec.Message)
			if !ok || seen[key] == nil {
				t.Errorf("unexpected record %q", rec.Message)
				return
			}
			seen[key][seq]++
			if seen[key][seq] == 1 {
				distinct++
			} else {
				dups++
			}
		})
	}
	return seen, dups
}
