package counters

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/topic"
)

// latest reads the topic back: the latest value of every key (nil: a tombstone).
func latest(t *testing.T, opts []kgo.Opt) map[string]*Counts {
	t.Helper()
	out := map[string]*Counts{}
	err := ReadToEnd(context.Background(), opts, topic.CountersTopic, func(r *kgo.Record) {
		v, live, err := Decode(r.Value)
		if err != nil {
			return
		}
		if !live {
			out[string(r.Key)] = nil
			return
		}
		out[string(r.Key)] = &v.Counts
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// monotonic records every sum a Fold writes and fails when one goes down.
type monotonic struct {
	mu   sync.Mutex
	t    *testing.T
	last map[Key]Counts
	gone map[Key]bool
}

func (m *monotonic) write(_ context.Context, k Key, c Counts, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone[k] {
		return ErrGone
	}
	if old := m.last[k]; c.Selected < old.Selected || c.Emitted < old.Emitted || c.Dropped < old.Dropped || c.ParseFailures < old.ParseFailures {
		m.t.Errorf("%s went down: %+v after %+v", k, c, old)
	}
	m.last[k] = c
	return nil
}

func (m *monotonic) get(k Key) Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[k]
}

// runFold runs a Fold writing into a new monotonic until the test ends.
func runFold(t *testing.T, opts []kgo.Opt) (*Fold, *monotonic) {
	t.Helper()
	m := &monotonic{t: t, last: map[Key]Counts{}, gone: map[Key]bool{}}
	f, err := NewFold(FoldConfig{Topic: topic.CountersTopic, Interval: 2 * time.Millisecond, Writers: 2}, opts, m.write, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return f, m
}

// TestCountersAcrossRestarts: a collector's counters start again from zero with every
// process; the published totals, and so the status, do not. Each case is a sequence of
// collector processes on node-a: each counts web's lines from zero, publishes, and ends
// either cleanly (Run's last publication) or killed (nothing after its last publication; the
// lines it counted since are not published by anyone). node-b publishes alongside. A fold
// runs throughout and fails the test if a sum ever goes down; a second fold started at the
// end (a controller restart) must write the same sums.
func TestCountersAcrossRestarts(t *testing.T) {
	web := Key{"team-a", "web", "uid-web"}
	type process struct {
		published int64 // web's count at its last publication
		after     int64 // counted after it: published at a clean stop, lost when killed
		killed    bool
	}
	for _, tt := range []struct {
		name  string
		procs []process
	}{
		{"clean restarts", []process{{published: 10, after: 2}, {published: 5, after: 1}, {published: 7}}},
		{"killed between publications", []process{{published: 10, after: 4, killed: true}, {published: 3, after: 9, killed: true}, {published: 1}}},
		{"killed before its first publication", []process{{published: 10}, {after: 6, killed: true}, {published: 2}}},
		{"restart with fewer lines than before", []process{{published: 1000, killed: true}, {published: 1}}},
		{"mixed", []process{{published: 3, after: 3}, {published: 4, after: 4, killed: true}, {published: 5, after: 5}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := cluster(t)
			_, m := runFold(t, opts)
			other := &totals{m: map[Key]Counts{web: {Selected: 100, Emitted: 100}}}
			publish(t, publisher(t, opts, "node-b", other))

			want := int64(100) // node-b's
			for i, pr := range tt.procs {
				src := &totals{m: map[Key]Counts{}}
				p, err := NewPublisher(PublisherConfig{Node: "node-a", Topic: topic.CountersTopic, Interval: time.Hour}, opts, src, discard())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- p.Run(ctx) }()
				if pr.published > 0 {
					src.set(web, Counts{Selected: pr.published, Emitted: pr.published})
					// Run resumes before its first publication; Publish fails until then.
					eventually(t, fmt.Sprintf("process %d resumed", i), func() bool { _, err := p.Publish(context.Background()); return err == nil })
					want += pr.published
					eventually(t, fmt.Sprintf("process %d's publication folded", i), func() bool { return m.get(web).Emitted == want })
				}
				src.set(web, Counts{Selected: pr.published + pr.after, Emitted: pr.published + pr.after})
				if pr.killed {
					// SIGKILL: no code runs after it, the client's connections just close.
					p.Close()
					cancel()
					<-done
					continue
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				want += pr.after
				eventually(t, fmt.Sprintf("process %d's last publication folded", i), func() bool { return m.get(web).Emitted == want })
			}
			if got := *latest(t, opts)["node-a/team-a/web/uid-web"]; got.Emitted != want-100 || got.Selected != want-100 {
				t.Errorf("node-a's record = %+v, want %d (every publication of every process added up)", got, want-100)
			}
			// A controller restart: a new fold over the compacted topic writes the same sum.
			_, m2 := runFold(t, opts)
			eventually(t, "the restarted fold's sum", func() bool { return m2.get(web).Emitted == want })
			if got := m.get(web); got.Emitted != want {
				t.Errorf("sum %+v, want %d", got, want)
			}
		})
	}
}

// TestPublisherTombstonesDeletedPipelines: a deleted pipeline gets a tombstone, and its
// series are forgotten at the next publication (not before: held lines flushed after the
// deletion are still counted); a pipeline that exists and no longer counts anything keeps its
// record; a pipeline deleted while the collector was down is tombstoned after it restarts,
// but not before it knows which pipelines exist.
func TestPublisherTombstonesDeletedPipelines(t *testing.T) {
	opts := cluster(t)
	web, api, idle := Key{"team-a", "web", "uid-web"}, Key{"team-b", "api", "uid-api"}, Key{"team-c", "idle", "uid-idle"}
	src := &totals{m: map[Key]Counts{web: {Selected: 3, Emitted: 3}, api: {Selected: 2, Emitted: 2}, idle: {Selected: 1, Emitted: 1}}}
	p := publisher(t, opts, "node-a", src)
	if n := publish(t, p); n != 3 {
		t.Fatalf("published %d", n)
	}
	src.remove(web)
	if n := publish(t, p); n != 1 {
		t.Fatalf("deletion: published %d records, want a tombstone", n)
	}
	if got := latest(t, opts); got["node-a/team-a/web/uid-web"] != nil {
		t.Errorf("web's record = %+v, want a tombstone", got["node-a/team-a/web/uid-web"])
	}
	if f := src.forgotten(); len(f) != 0 {
		t.Errorf("forgotten at the tombstone's publication already: %v", f)
	}
	publish(t, p)
	if f := src.forgotten(); len(f) != 1 || f[0] != web {
		t.Errorf("forgotten %v, want web", f)
	}

	// A pipeline that never reached the topic is forgotten at once, without a tombstone.
	brief := Key{"team-a", "brief", "uid-brief"}
	src.set(brief, Counts{Selected: 1})
	src.remove(brief)
	if n := publish(t, p); n != 0 {
		t.Errorf("a pipeline never published: %d records", n)
	}
	if f := src.forgotten(); len(f) != 2 || f[1] != brief {
		t.Errorf("forgotten %v, want web and brief", f)
	}

	// The collector is down while api is deleted; it restarts not knowing yet what exists.
	p.Close()
	src2 := &totals{m: map[Key]Counts{}, unknown: true}
	p2 := publisher(t, opts, "node-a", src2)
	src2.remove(api)
	if n := publish(t, p2); n != 0 {
		t.Errorf("published %d records before the collector knew its pipelines", n)
	}
	src2.mu.Lock()
	src2.unknown = false
	src2.mu.Unlock()
	if n := publish(t, p2); n != 1 {
		t.Errorf("published %d records, want api's tombstone", n)
	}
	got := latest(t, opts)
	if got["node-a/team-b/api/uid-api"] != nil || got["node-a/team-a/web/uid-web"] != nil {
		t.Errorf("records of deleted pipelines: api %+v, web %+v", got["node-a/team-b/api/uid-api"], got["node-a/team-a/web/uid-web"])
	}
	if c := got["node-a/team-c/idle/uid-idle"]; c == nil || c.Emitted != 1 {
		t.Errorf("idle's record = %+v, want it kept (the pipeline exists)", c)
	}
}

// TestFoldTombstonesDeletedPipelines: a pipeline the API server no longer has loses every
// node's record, also that of a node that is gone for good (its collector will never
// tombstone it); the topic keeps nothing of it. The object created again under its name (another
// UID) is summed on its own; a --pipelines-dir collector's record of that name is neither written
// nor tombstoned; a record of the key format before UIDs is tombstoned.
func TestFoldTombstonesDeletedPipelines(t *testing.T) {
	opts := cluster(t)
	web, api := Key{"team-a", "web", "uid-web"}, Key{"team-b", "api", "uid-api"}
	for _, node := range []string{"node-a", "node-dead"} {
		publish(t, publisher(t, opts, node, &totals{m: map[Key]Counts{web: {Emitted: 1}, api: {Emitted: 2}}}))
	}
	// web was deleted and created again under its name: the new object is another key.
	web2 := Key{"team-a", "web", "uid-web-2"}
	publish(t, publisher(t, opts, "node-a", &totals{m: map[Key]Counts{web2: {Emitted: 3}}}))
	// A --pipelines-dir collector's record of the same name, and one of the format before UIDs.
	dirWeb := Key{"team-a", "web", ""}
	publish(t, publisher(t, opts, "node-dir", &totals{m: map[Key]Counts{dirWeb: {Emitted: 5}}}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic.CountersTopic, Key: []byte("node-old/team-a/web"), Value: Encode(Value{Counts: Counts{Emitted: 9}})}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	w := newWrites()
	w.gone[web] = true
	reg := prometheus.NewRegistry()
	fold, err := NewFold(FoldConfig{Topic: topic.CountersTopic, Interval: 2 * time.Millisecond, Writers: 2}, opts, w.write, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fold.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	eventually(t, "web's records tombstoned", func() bool {
		got := latest(t, opts)
		a, okA := got["node-a/team-a/web/uid-web"]
		d, okD := got["node-dead/team-a/web/uid-web"]
		return okA && okD && a == nil && d == nil
	})
	eventually(t, "web gone from the fold", func() bool { _, ok := fold.Sum(web); return !ok })
	if c, _ := w.get(api); c.Emitted != 4 {
		t.Errorf("api = %+v, want 4 (untouched)", c)
	}
	if got := latest(t, opts); got["node-a/team-b/api/uid-api"] == nil || got["node-dead/team-b/api/uid-api"] == nil {
		t.Errorf("api's records were tombstoned: %v", got)
	}
	eventually(t, "the legacy record tombstoned", func() bool {
		r, ok := latest(t, opts)["node-old/team-a/web"]
		return ok && r == nil
	})
	eventually(t, "the new web written", func() bool { c, _ := w.get(web2); return c.Emitted == 3 })
	if c, n := w.get(dirWeb); n != 0 {
		t.Errorf("a --pipelines-dir record was written as status: %+v", c)
	}
	if got := latest(t, opts); got["node-dir/team-a/web/-"] == nil || got["node-a/team-a/web/uid-web-2"] == nil {
		t.Errorf("the --pipelines-dir record or the new object's was tombstoned: %v", got)
	}
	if n := testutil.ToFloat64(fold.m.tombstones); n != 2 {
		t.Errorf("tombstones = %v, want 2", n)
	}
	if n := testutil.ToFloat64(fold.m.legacy); n != 1 {
		t.Errorf("legacy records = %v, want 1", n)
	}
	if n := testutil.ToFloat64(fold.m.dirRecords); n != 1 {
		t.Errorf("dir records = %v, want 1", n)
	}
	if n := testutil.ToFloat64(fold.m.writeErrors); n != 0 {
		t.Errorf("ErrGone counted as %v write errors", n)
	}
}

// childEnv makes the test binary a collector's publisher (TestCountersChild) instead.
const childEnv = "LOGROUTER_COUNTERS_CHILD"

// TestCountersChild is a collector process for TestCountersSIGKILL: it counts web's lines
// from zero in steps of 7, publishes after every third step (printing "acked <published>
// <own>"), and after each step prints "counted <own>" and waits for a line on stdin.
func TestCountersChild(t *testing.T) {
	brokers := os.Getenv(childEnv)
	if brokers == "" {
		t.Skip("run by TestCountersSIGKILL")
	}
	src := &totals{m: map[Key]Counts{}}
	p, err := NewPublisher(PublisherConfig{Node: "node-a", Topic: topic.CountersTopic, Interval: time.Hour}, []kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...)}, src, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	web := Key{"team-a", "web", "uid-web"}
	for own := int64(7); ; own += 7 {
		src.set(web, Counts{Selected: own, Emitted: own})
		if own%21 == 0 {
			if _, err := p.Publish(context.Background()); err != nil {
				t.Fatal(err)
			}
			fmt.Printf("acked %d %d\n", p.sent[web].Emitted, own)
		}
		fmt.Printf("counted %d\n", own)
		if !in.Scan() {
			return
		}
	}
}

// TestCountersSIGKILL: collector processes publishing web's counters are killed with
// SIGKILL between publications, a new one starting each time. Every process's published
// total is exactly what earlier processes published plus what it counted itself; what a
// process counted after its last publication is lost (logged: that is what the status cannot
// count); the fold's sum never goes down.
func TestCountersSIGKILL(t *testing.T) {
	opts, addrs := clusterAddrs(t)
	_, m := runFold(t, opts)
	web := Key{"team-a", "web", "uid-web"}
	brokers := strings.Join(addrs, ",")
	published := int64(0) // in the topic before the process starts
	for proc, steps := range []int{4, 8, 3, 7} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCountersChild$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"="+brokers)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewScanner(stdout)
		var counted, lastAcked int64
		for step := 0; step < steps; {
			if !out.Scan() {
				t.Fatalf("process %d ended: %v", proc, out.Err())
			}
			f := strings.Fields(out.Text())
			switch {
			case len(f) == 3 && f[0] == "acked":
				total, _ := strconv.ParseInt(f[1], 10, 64)
				own, _ := strconv.ParseInt(f[2], 10, 64)
				if total != published+own {
					t.Errorf("process %d published %d, want %d before it + %d its own", proc, total, published, own)
				}
				lastAcked = total
			case len(f) == 2 && f[0] == "counted":
				counted, _ = strconv.ParseInt(f[1], 10, 64)
				step++
				if step < steps {
					fmt.Fprintln(stdin)
				}
			}
		}
		// The child waits on stdin after a step: kill -9 lands between publications.
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if lastAcked == 0 {
			lastAcked = published
		}
		rec := latest(t, opts)["node-a/team-a/web/uid-web"]
		if rec == nil || rec.Emitted != lastAcked {
			t.Fatalf("process %d: topic holds %+v, want its last publication %d", proc, rec, lastAcked)
		}
		lost := counted - (lastAcked - published)
		t.Logf("process %d killed: counted %d, published %d of them; the %d counted after its last publication are not in the status",
			proc, counted, lastAcked-published, lost)
		// docs/controller.md#monotonic-across-restarts quotes these.
		if want := []int64{7, 14, 0, 7}[proc]; lost != want {
			t.Errorf("process %d: %d counts lost, want %d", proc, lost, want)
		}
		published = lastAcked
		eventually(t, "the fold's sum", func() bool { return m.get(web).Emitted == published })
	}
}
