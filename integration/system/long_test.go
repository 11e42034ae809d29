package system

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// longPlan is the fault schedule of the long version over a workload of d.
type longPlan struct {
	d      time.Duration
	kills  int           // SIGKILLs of each component
	outage time.Duration // the broker outage, in the middle of the run
	rate   int           // lines per second over all containers
	rotate time.Duration // rotation period per container
	s3     time.Duration // length of each S3 fault phase
	disk   time.Duration // how long the disks stay full
	flood  time.Duration // length of each flood phase
}

func longPlanOf(d time.Duration) longPlan {
	return longPlan{
		d:      d,
		kills:  max(20, int(d/(90*time.Second))),
		outage: min(5*time.Minute, d/6),
		// The accounting holds every line (and the archive's rows) in memory: 400 lines/s
		// for 30 minutes is 720,000 lines, 1% of them 40 KiB.
		rate: 400,
		// Slower than the short scenarios: during the 5-minute outage the collector keeps
		// every rotated file open (30 rotations x 200 containers is within its fd limit).
		rotate: 10 * time.Second,
		s3:     min(30*time.Second, d/40),
		disk:   min(30*time.Second, d/40),
		flood:  d / 10,
	}
}

// event is one step of the schedule, at an offset from the workload's start.
type event struct {
	at   time.Duration
	what string
	do   func()
}

// TestSystemLong is the long version (docs/reliability.md): one system under the workload for
// LOGROUTER_SYSTEM_LONG with every fault of the short scenarios repeated on one timeline:
// SIGKILLs of each component (at least 20 each) at random times, a 5-minute broker outage
// (no kill within it: the node keeps the files, nothing may be lost), two rounds of S3 faults
// (503, read-only, hangs), two full disks (checkpoints and spool, when a tmpfs can be mounted),
// two flood phases, and two namespaces with skewed node clocks (an hour ahead, a day behind)
// throughout. Every line must be in Kafka or counted lost, and every line in Kafka archived
// once and served to its team. RSS is reported per minute.
func TestSystemLong(t *testing.T) {
	v := os.Getenv("LOGROUTER_SYSTEM_LONG")
	if v == "" {
		t.Skip("the long version: set LOGROUTER_SYSTEM_LONG=30m (docs/reliability.md)")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute {
		t.Fatalf("LOGROUTER_SYSTEM_LONG=%q: want a duration of at least 1m (%v)", v, err)
	}
	p := longPlanOf(d)
	var ck, spool string
	diskErr := error(nil)
	s := newSystem(t, namespaces, perNS,
		func(s *system) {
			// Fewer, larger objects: 30 minutes at one object per partition per second would
			// be tens of thousands of objects to read back.
			s.archiverArgs = []string{"--max-object-age", "10s"}
		},
		prepare(func(dir string) {
			ck, spool = filepath.Join(dir, "checkpoints"), filepath.Join(dir, "spool")
			if diskErr = tryMountTmpfs(t, ck, 4<<20); diskErr == nil {
				diskErr = tryMountTmpfs(t, spool, 256<<20)
			}
		}))
	s.w.flood = s.w.namespaces[0]
	s.w.floodPaused.Store(true)
	s.w.skew = map[string]time.Duration{s.w.namespaces[18]: time.Hour, s.w.namespaces[19]: -24 * time.Hour}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var evs []event
	add := func(at time.Duration, what string, do func()) { evs = append(evs, event{at, what, do}) }
	// No kill from 5 s before the outage to 30 s after it (the node keeps the files: nothing
	// may be lost), nor while a disk is full (a start on a full checkpoint disk is its own
	// question, not this run's).
	type window struct{ from, to time.Duration }
	var quiet []window
	o0 := d/2 - p.outage/2
	add(o0, "broker down", s.stopKafka)
	add(o0+p.outage, "broker up", s.startKafka)
	quiet = append(quiet, window{o0 - 5*time.Second, o0 + p.outage + 30*time.Second})
	for _, start := range []time.Duration{d / 4, 3 * d / 4} {
		at := start
		for _, f := range []s3Fault{s3Errors, s3ReadOnly, s3Hang} {
			add(at, fmt.Sprintf("s3 fault %d", f), func() { s.s3.mode.Store(int32(f)) })
			add(at+p.s3, "s3 pass", func() { s.s3.mode.Store(int32(s3Pass)) })
			at += p.s3 + p.s3/2
		}
	}
	if diskErr == nil {
		for _, start := range []time.Duration{3 * d / 8, 7 * d / 8} {
			var fillers []string
			add(start, "disks full", func() { fillers = []string{fill(t, ck), fill(t, spool)} })
			add(start+p.disk, "disks freed", func() {
				for _, f := range fillers {
					if err := os.Remove(f); err != nil {
						t.Error(err)
					}
				}
			})
			quiet = append(quiet, window{start - 2*time.Second, start + p.disk + 5*time.Second})
		}
	} else {
		t.Logf("no full-disk fault: cannot mount a tmpfs: %v", diskErr)
	}
	for _, start := range []time.Duration{d / 8, 5 * d / 8} {
		add(start, "flood on", func() { s.w.floodPaused.Store(false) })
		add(start+p.flood, "flood off", func() { s.w.floodPaused.Store(true) })
	}
	kills := map[string]int{}
	for _, c := range s.components() {
		for range p.kills {
			var at time.Duration
			for ok := false; !ok; {
				at = 10*time.Second + time.Duration(rng.Int64N(int64(d-20*time.Second)))
				ok = !slices.ContainsFunc(quiet, func(w window) bool { return at >= w.from && at < w.to })
			}
			add(at, "kill "+c.name, func() { s.restart(c); kills[c.name]++ })
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return int(a.at - b.at) })

	stop := s.runWorkload(p.rate, p.rotate)
	t0 := time.Now()
	for _, e := range evs {
		time.Sleep(time.Until(t0.Add(e.at)))
		s.checkAlive()
		e.do()
		if !strings.HasPrefix(e.what, "kill") {
			t.Logf("%s: %s", time.Since(t0).Round(time.Second), e.what)
		}
	}
	time.Sleep(time.Until(t0.Add(d)))
	stop()
	injected := fmt.Sprintf("%s at %d lines/s, rotation every %s: SIGKILL collector x%d, archiver x%d, gateway x%d; broker down %s; S3 503/read-only/hang %s each, twice; full checkpoint and spool disks %s, twice (%v); %s floods %dx for %s, twice; %s clock +1h, %s clock -24h",
		d, p.rate, p.rotate, kills["collector"], kills["archiver"], kills["gateway"], p.outage, p.s3, p.disk, diskErr == nil,
		s.w.flood, floodFactor, p.flood, s.w.namespaces[18], s.w.namespaces[19])
	rep := s.account("long "+d.String(), injected)
	t.Logf("RSS MiB per minute: %s", s.rss.minutes())
	if rep.Archived != rep.Kafka || rep.Served != rep.Kafka {
		t.Errorf("every line in Kafka must be archived and served: %s", rep)
	}
	s.stopAll()
}
