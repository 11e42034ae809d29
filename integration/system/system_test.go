package system

import (
	"math/rand/v2"
	"strconv"
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

// TestSystemBaseline: no fault; the workload writes, rotates and compresses while every
// component runs. Every line must be in Kafka once, archived once and served to its team.
func TestSystemBaseline(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	time.Sleep(sc.Duration)
	stop()
	rep := s.account("baseline", "none (rotation every 3s per container, gzip of older rotated files, keep 5)")
	if rep.LostActual != 0 || rep.KafkaDups != 0 || rep.Archived != rep.Written || rep.Served != rep.Written {
		t.Errorf("without faults every line must arrive once everywhere: %s", rep)
	}
	s.stopAll()
}

// TestSystemSIGKILL kills the collector, the archiver and the gateway with SIGKILL at random
// times (each sc.Kills times, interleaved) while the workload writes and rotates, restarting
// each at once. Nothing may be lost unless counted (rotated files compressed or deleted while
// the collector was down); duplicates are reported.
func TestSystemSIGKILL(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	order := []*component{}
	for range sc.Kills {
		order = append(order, s.collector, s.archiver, s.gateway)
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	gap := sc.Duration / time.Duration(len(order))
	kills := map[string]int{}
	for _, c := range order {
		// Random times: anywhere in the slot, so kills land during startup, catching up and
		// steady shipping.
		time.Sleep(time.Duration(rng.Int64N(int64(gap))) + 100*time.Millisecond)
		s.checkAlive()
		s.restart(c)
		kills[c.name]++
	}
	stop()
	rep := s.account("sigkill", "SIGKILL + restart: collector x"+itoa(kills["collector"])+", archiver x"+itoa(kills["archiver"])+", gateway x"+itoa(kills["gateway"]))
	if rep.Archived != rep.Kafka || rep.Served != rep.Kafka {
		t.Errorf("every line in Kafka must be archived and served: %s", rep)
	}
	s.stopAll()
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
	if rep.LostActual != 0 || rep.Archived != rep.Kafka || rep.Served != rep.Kafka {
		t.Errorf("nothing may be lost while the node keeps the files: %s", rep)
	}
	s.stopAll()
}

func itoa(n int) string { return strconv.Itoa(n) }
