package system

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every scenario runs 20 namespaces of 10 containers (200 containers).
const (
	namespaces = 20
	perNS      = 10
)

// runWorkload starts the workload and returns a function that stops it and waits.
func (s *system) runWorkload(rate int, rotateEvery time.Duration) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.w.run(stop, rate, rotateEvery) }()
	var once sync.Once
	f := func() { once.Do(func() { close(stop); wg.Wait() }) }
	s.t.Cleanup(f)
	return f
}

// TestSystemBaseline: no fault but two broken node clocks (skewClocks: team-00's CRI
// timestamps an hour ahead, team-01's a day behind); the workload writes, rotates and
// compresses while every component runs. Every line must be in Kafka once, archived once and
// served to its team, and the skewed lines land where checkClocks says: archived by their Kafka
// time, found by `logrouter query` by their own.
func TestSystemBaseline(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	ahead, behind, right := s.skewClocks()
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	time.Sleep(sc.Duration)
	stop()
	rep := s.account("baseline", fmt.Sprintf("none (rotation every 3s per container, gzip of older rotated files, keep 5); %s's CRI timestamps 1h ahead, %s's 24h behind", ahead, behind))
	if !rep.exact() {
		t.Errorf("without faults every line must arrive once everywhere: %s", rep)
	}
	s.checkClocks(ahead, behind, right)
	s.stopAll()
}

// TestSystemSIGKILL kills the archiver and the gateway with SIGKILL at random times (each
// sc.Kills times, interleaved) while the workload writes and rotates, restarting each at once.
// Every line must still be in Kafka once, archived exactly once and served to its team.
func TestSystemSIGKILL(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	rep := s.killRun(sc, s.archiver, s.gateway)
	if !rep.exact() {
		t.Errorf("archiver and gateway kills must cost nothing: %s", rep)
	}
	s.stopAll()
}

// TestSystemSIGKILLCollector kills the collector (with the archiver and the gateway) at random
// times, with kubelet-like compression of rotated files. Nothing may be lost unless counted, in
// order, and the count must equal what the checkpoints the runs loaded make countable
// (checkCounted); duplicates are reported. LOGROUTER_SYSTEM_NO_COMPRESS=1 keeps rotated files.
// A CI rehearsal found 3 countable files lost with nothing counted (docs/reliability.md#findings,
// finding 9), so it runs only when LOGROUTER_SYSTEM_FINDINGS is set.
func TestSystemSIGKILLCollector(t *testing.T) {
	if os.Getenv("LOGROUTER_SYSTEM_FINDINGS") == "" {
		t.Skip("finds uncounted losses (docs/reliability.md#findings, finding 9): set LOGROUTER_SYSTEM_FINDINGS=1 to run")
	}
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	s.w.noCompress = os.Getenv("LOGROUTER_SYSTEM_NO_COMPRESS") != ""
	rep := s.killRun(sc, s.collector, s.archiver, s.gateway)
	if rep.Archived != rep.Kafka || rep.Served != rep.Kafka {
		t.Errorf("every line in Kafka must be archived and served: %s", rep)
	}
	if !s.w.noCompress {
		s.checkCounted(rep)
	}
	s.stopAll()
}

// killRun SIGKILLs and restarts each of cs sc.Kills times at random moments while the workload
// writes, then accounts for every line.
func (s *system) killRun(sc scale, cs ...*component) report {
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var order []*component
	for range sc.Kills {
		order = append(order, cs...)
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	gap := sc.Duration / time.Duration(len(order))
	kills := map[string]int{}
	for _, c := range order {
		// Anywhere in the slot: kills land during startup, catching up and steady work.
		time.Sleep(time.Duration(rng.Int64N(int64(gap))) + 100*time.Millisecond)
		s.checkAlive()
		s.restart(c)
		kills[c.name]++
	}
	stop()
	if kills[s.collector.name] > 0 && !s.w.noCompress {
		s.byDesign = s.uncountableByDesign()
	}
	var what []string
	for _, c := range cs {
		what = append(what, c.name+" x"+strconv.Itoa(kills[c.name]))
	}
	return s.account("sigkill "+strings.Join(what, ", "), "SIGKILL at random times + restart: "+strings.Join(what, ", "))
}

// TestSystemBrokerOutage stops the broker under load for sc.Outage and starts it again from
// its data directory. The node keeps the files (rotation continues, within keepFiles), so
// nothing may be lost; every process's RSS is sampled and reported.
func TestSystemBrokerOutage(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	stop := s.runWorkload(sc.Rate, 5*time.Second)
	time.Sleep(sc.Duration / 3)
	s.stopKafka()
	time.Sleep(sc.Outage)
	s.checkAlive()
	s.startKafka()
	time.Sleep(sc.Duration / 3)
	stop()
	rep := s.account("broker-outage", "kfake stopped for "+sc.Outage.String()+" under load, restarted from its data dir")
	if !rep.complete() {
		t.Errorf("nothing may be lost while the node keeps the files: %s", rep)
	}
	s.stopAll()
}

// TestSystemRotationStorm rotates every container every 2 s (of the writer's ticks),
// alternating rename and copytruncate, with older rotated files compressed and the oldest
// deleted beyond keepFiles while every component runs, until every container has rotated
// stormRotations times (so each has had rotated files deleted): nothing may be lost, lines
// stay in order per container, and the collector's rotation counters match what the workload
// did.
func TestSystemRotationStorm(t *testing.T) {
	if os.Getenv("LOGROUTER_SYSTEM_FINDINGS") == "" {
		t.Skip("under heavy load still finds lines out of order, and losses (counted) when the collector is more than a rotation behind (docs/reliability.md#findings, finding 2): set LOGROUTER_SYSTEM_FINDINGS=1 to run")
	}
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	s.w.copyTruncate = true
	const every = 2 * time.Second
	start := time.Now()
	stop := s.runWorkload(sc.Rate, every)
	// Not a time limit on the collector: the workload's own progress, which a loaded machine
	// slows (docs/reliability.md); the bound only ends a run that cannot make any.
	s.waitFor("every container rotated "+strconv.Itoa(stormRotations)+" times", 10*time.Minute, func() string {
		if n := s.w.minRotations(); n < stormRotations {
			return fmt.Sprintf("fewest rotations %d", n)
		}
		return ""
	})
	stop()
	took := time.Since(start)
	s.w.mu.Lock()
	rotations, deleted := s.w.rotations, s.w.deleted
	s.w.mu.Unlock()
	perCont := float64(rotations) / float64(len(s.w.conts))
	t.Logf("STORM: %d rotations in %s, %.1f per container: one every %.2fs per container (nominal %s)",
		rotations, took.Round(100*time.Millisecond), perCont, took.Seconds()/perCont, every)
	rep := s.account("rotation-storm", fmt.Sprintf("rotation every %s per container (achieved %.2fs), rename and copytruncate alternating, gzip, keep %d", every, took.Seconds()/perCont, keepFiles))
	if !rep.complete() {
		t.Errorf("a rotation storm with the collector running must lose nothing: %s", rep)
	}
	if rep.OutOfOrder > 0 {
		t.Errorf("%d lines out of order in a rotation storm", rep.OutOfOrder)
	}
	if deleted == 0 {
		t.Errorf("no rotated file was deleted: the keep-%d policy was not exercised", keepFiles)
	}
	s.checkRotationCounts()
	s.stopAll()
}

// stormRotations is how often TestSystemRotationStorm rotates each container: past keepFiles,
// so the oldest rotated files are deleted.
const stormRotations = keepFiles + 3

// TestSystemFlood: one namespace writes floodFactor times as much as each other one; the
// others' latency (write to Kafka append, p99) is reported next to the flood's and the
// baseline's, and every line of every namespace must arrive.
func TestSystemFlood(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	s.w.flood = s.w.namespaces[0]
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	time.Sleep(sc.Duration)
	stop()
	rep := s.account("flood", s.w.flood+" writes "+strconv.Itoa(floodFactor)+"x each other namespace")
	if !rep.exact() {
		t.Errorf("a flood must not cost other namespaces (or itself) lines: %s", rep)
	}
	s.stopAll()
}

// TestSystemS3Faults puts the bucket behind a proxy that answers every request 503 SlowDown,
// then refuses writes (a read-only bucket: 403 AccessDenied), then holds requests 30 s without
// an answer, each for a while with normal service in between, under load. The archiver must
// ride it out and archive every line exactly once when the bucket is back.
func TestSystemS3Faults(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	phase := max(4*time.Second, sc.Duration/6)
	for _, f := range []s3Fault{s3Errors, s3ReadOnly, s3Hang} {
		time.Sleep(phase / 2)
		s.s3.mode.Store(int32(f))
		time.Sleep(phase)
		s.s3.mode.Store(int32(s3Pass))
		s.checkAlive()
	}
	stop()
	rep := s.account("s3-faults", fmt.Sprintf("S3 503 SlowDown, then read-only (403 on writes), then 30s hangs, %s each under load; %d requests refused", phase, s.s3.refused.Load()))
	if !rep.exact() {
		t.Errorf("S3 faults must cost no line: %s", rep)
	}
	s.stopAll()
}

// checkRotationCounts compares the collector's logrouter_collector_rotations_total with what
// the workload did: a rename rotation makes one live file a rotated one, counted once (a file
// renamed before any scan saw it live is not counted), and each copytruncate is one truncation.
func (s *system) checkRotationCounts() {
	got := s.collectorCounter("logrouter_collector_rotations_total", "kind")
	want := map[string]int64{}
	s.w.mu.Lock()
	for _, c := range s.w.conts {
		for r := 1; r <= c.nrot; r++ {
			want[s.w.rotationKind(r)]++
		}
	}
	s.w.mu.Unlock()
	s.t.Logf("ROTATIONS: workload renamed %d and copytruncated %d files; collector counted %v", want["rename"], want["copytruncate"], got)
	if got["rename"] > want["rename"] {
		s.t.Errorf("logrouter_collector_rotations_total{kind=\"rename\"} %d: more than the workload's %d renames", got["rename"], want["rename"])
	}
	if got["truncate"] > want["copytruncate"] {
		s.t.Errorf("logrouter_collector_rotations_total{kind=\"truncate\"} %d: more than the workload's %d copytruncates", got["truncate"], want["copytruncate"])
	}
}
