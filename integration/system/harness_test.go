// Package system proves the whole pipeline as a user depends on it: the real logrouter
// binaries (collector, archiver, gateway) as separate processes, kfake on TCP with its data on
// disk, versitygw as the bucket, and a kubelet-like workload whose every line is accounted for
// at the end (docs/reliability.md).
package system

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/checkpoint"
)

// scale is how long and how hard a short scenario runs (the long version is TestSystemLong).
type scale struct {
	Duration time.Duration // how long the workload writes
	Kills    int           // SIGKILLs of each component in the kill scenario
	Outage   time.Duration // broker outage
	Rate     int           // lines per second over all containers
}

func scaleOf(t *testing.T) scale {
	s := scale{Duration: 12 * time.Second, Kills: 4, Outage: 10 * time.Second, Rate: 1500}
	if raceEnabled {
		// go test -race ./... (CI) keeps every fault and check at a third of the lines: the
		// figures in docs/reliability.md come from runs without -race.
		s.Rate = 500
	}
	return s
}

// proc is one run of a logrouter subcommand, with its log kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and returns the exit error (nil for status 0).
func (p *proc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// component is a subcommand that the harness starts, kills and restarts; runs keeps every
// run's log for the accounting (LOST lines) and failure messages.
type component struct {
	name string
	args []string
	env  []string

	mu     sync.Mutex
	cur    *proc
	runs   []*proc
	starts []time.Time
}

// system is one whole system under test.
type system struct {
	t       *testing.T
	bin     string
	dir     string
	brokers string
	port    int

	kmu   sync.Mutex
	kafka *kfake.Cluster
	kdir  string

	bucket    *archivetest.S3
	bucketURL string
	s3        *faultProxy
	gwAddr    string
	colAddr   string // collector's metrics address

	collector, archiver, gateway *component
	// Extra arguments of each component (a later flag wins), set by options.
	collectorArgs, archiverArgs []string
	collectorEnv                []string
	// podUID gives the UID of a workload pod (one created in an API server), or "" for a
	// random one.
	podUID func(ns, pod string) string
	// extra are components besides the three (the controller), started after them.
	extra         []*component
	w             *workload
	rss           *rssSampler
	latency       map[string][]time.Duration // by namespace, set by readKafka
	kafkaProblems []string                   // set by readKafka
	outOfOrder    int                        // set by readKafka
	disorder      map[string]*disorderAt     // first line out of order per container, set by readKafka
	arrivals      map[string][]arrival       // first record of each line per container, in Kafka order, set by readKafka
	seen          map[string]map[int]int     // records per line in Kafka, set by account
	ckAtKill      [][]checkpoint.Entry       // the collector's checkpoints after each SIGKILL
	// byDesign, when set, tells the lost lines the collector cannot count (no checkpoint a run
	// loaded saw them): account does not wait for a count of them (countable_test.go).
	byDesign func(c *wcont, q int) bool
	recs     map[pos]kafkaLine // every Kafka record, set by account
}

// ports hands out the listening ports of every system in this test process, never one twice.
// It is process-wide because ports are: scenarios run in parallel, and each restarts listeners
// on the same port (kfake after an outage, the collector's metrics and the gateway after a
// kill), which nothing else in the process may take meanwhile. The ports come from below the
// kernel's ephemeral range (32768-60999 by default), so no outgoing connection and no listener
// on port 0 takes one while its listener is down; the first is random, so test processes run
// at once (go test -count, or two packages) rarely meet.
var ports = &portPool{next: 20000 + rand.IntN(12000), used: map[int]bool{}}

type portPool struct {
	mu   sync.Mutex
	next int
	used map[int]bool
}

// freePort returns a port of 127.0.0.1 that no other system of the process was given and that
// nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for range 12768 {
		p := ports.next
		if ports.next++; ports.next >= 32768 {
			ports.next = 20000
		}
		if ports.used[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // another process's
		}
		l.Close()
		ports.used[p] = true
		return p
	}
	t.Fatal("no free port in 20000-32767")
	return 0
}

// option adjusts a system before its components start.
type option func(s *system)

// prepare runs f with the system's directory before the components start.
func prepare(f func(dir string)) option { return func(s *system) { f(s.dir) } }

// newSystem starts kfake, versitygw, and the three components over a fresh workload of
// namespaces x containersPerNS containers (not yet writing), after applying opts.
//
// Every system runs in parallel with the other scenarios' (t.Parallel, first): it shares
// nothing with them but the test process and the binary. Its ports come from freePort, its
// files are under the test's temporary directory (tmpfs mounts included), and the bucket's
// credentials go to the child processes' environment, never the test process's (the
// accounting opens the bucket with them explicitly). A scenario must not change the process's
// environment or other process-wide state (t.Setenv panics after t.Parallel).
func newSystem(t *testing.T, namespaces, containersPerNS int, opts ...option) *system {
	t.Helper()
	if testing.Short() {
		t.Skip("system test: real binaries, broker and S3 server")
	}
	t.Parallel()
	bin := collectortest.Binary(t)
	bucket := archivetest.StartS3Server(t, "archive") // skips without versitygw
	s := &system{t: t, bin: bin, dir: t.TempDir(), bucket: bucket, bucketURL: bucket.URL}
	// The archiver reaches the bucket through a proxy the S3 fault scenario switches; the
	// accounting reads it directly.
	var archiverBucket string
	s.s3, archiverBucket = startFaultProxy(t, bucket.URL)
	s.port = freePort(t)
	s.brokers = fmt.Sprintf("127.0.0.1:%d", s.port)
	s.kdir = filepath.Join(s.dir, "kafka")
	s.startKafka()
	t.Cleanup(s.stopKafka)
	s.rss = newRSSSampler()
	t.Cleanup(s.rss.stop)
	for _, o := range opts {
		o(s)
	}
	s.w = newWorkload(t, filepath.Join(s.dir, "node"), namespaces, containersPerNS, s.podUID)
	s.colAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.gwAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.collector = &component{name: "collector", env: []string{"NODE_NAME=node-1"}, args: []string{"collect",
		"--kubernetes=false", "--brokers", s.brokers, "--node-name", "node-1",
		"--log-dir", s.w.node.LogDir, "--pods-dir", s.w.node.PodsDir,
		"--checkpoint-dir", filepath.Join(s.dir, "checkpoints"), "--metrics-addr", s.colAddr,
		"--poll-interval", "20ms", "--scan-interval", "100ms", "--checkpoint-interval", "100ms",
		"--rotated-idle", "300ms", "--shutdown-grace", "10s"}}
	s.collector.args = append(s.collector.args, s.collectorArgs...)
	s.collector.env = append(s.collector.env, s.collectorEnv...)
	s.archiver = &component{name: "archiver", args: []string{"archive",
		"--brokers", s.brokers, "--bucket", archiverBucket, "--spool-dir", filepath.Join(s.dir, "spool"),
		"--metrics-addr", "", "--instance-id", "archiver-0", "--session-timeout", "6s",
		"--max-object-age", "1s", "--topic-refresh", "500ms"}}
	s.archiver.args = append(s.archiver.args, s.archiverArgs...)
	s.gateway = &component{name: "gateway", env: []string{"LOGROUTER_AUTH_RECHECK=1s"}, args: []string{"gateway",
		"--brokers", s.brokers, "--listen", s.gwAddr, "--metrics-addr", ""}}
	for _, c := range s.components() {
		s.start(c)
	}
	t.Cleanup(func() {
		for _, c := range s.components() {
			c.mu.Lock()
			if c.cur != nil && !c.cur.exited() {
				c.cur.kill()
			}
			c.mu.Unlock()
		}
	})
	// The workload starts once the collector has done its start-up scan: on a loaded machine
	// (scenarios run in parallel) a start takes seconds, and the kubelet-like rotation would
	// delete files no collector run ever saw, a loss nothing can count (docs/collector.md).
	s.waitFor("collector ready", 2*time.Minute, s.collectorReady)
	return s
}

// collectorReady returns "" once the collector's /readyz answers 200, else why not.
func (s *system) collectorReady() string {
	resp, err := http.Get("http://" + s.colAddr + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("/readyz %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return ""
}

func (s *system) components() []*component {
	return append([]*component{s.collector, s.archiver, s.gateway}, s.extra...)
}

func (s *system) startKafka() {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	var err error
	// The port is released by the previous cluster's Close; retry briefly while it lingers.
	for i := 0; ; i++ {
		s.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(s.port), kfake.DataDir(s.kdir))
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("kfake: %v", err)
	}
}

func (s *system) stopKafka() {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if s.kafka != nil {
		s.kafka.Close()
		s.kafka = nil
	}
}

// start runs a new instance of c (which must not be running).
func (s *system) start(c *component) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := s.command(c.args...)
	cmd.Env = append(cmd.Env, c.env...)
	p := &proc{name: c.name, cmd: cmd, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", c.name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	c.cur = p
	c.runs = append(c.runs, p)
	c.starts = append(c.starts, time.Now())
	s.rss.watch(c.name, cmd.Process.Pid)
	return p
}

// command is a logrouter subcommand with the system's environment: the process's, and the
// bucket's credentials (every subcommand that reads the archive finds them).
func (s *system) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.bucket.Env()...)
	return cmd
}

// openBucket opens the bucket directly (not through the fault proxy), with its credentials.
func (s *system) openBucket(ctx context.Context) *blob.Bucket {
	s.t.Helper()
	b, err := s.bucket.OpenBucket(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// restart SIGKILLs c's current run and starts a new one. A collector's checkpoints as the kill
// left them (what the next run loads) are kept for the loss accounting (countable_test.go).
func (s *system) restart(c *component) {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	p.kill()
	if c == s.collector {
		s.keepCheckpoints()
	}
	s.start(c)
}

// stopAll stops every component with SIGTERM, failing on an unclean exit.
func (s *system) stopAll() {
	for _, c := range s.components() {
		c.mu.Lock()
		p := c.cur
		c.mu.Unlock()
		if err := p.stop(30 * time.Second); err != nil {
			s.t.Errorf("%s exit after SIGTERM: %v\n%s", c.name, err, tail(p.stderr.String(), 3000))
		}
	}
}

// checkAlive fails the test if a component's current run has exited on its own.
func (s *system) checkAlive() {
	s.t.Helper()
	for _, c := range s.components() {
		c.mu.Lock()
		p := c.cur
		c.mu.Unlock()
		if p.exited() {
			s.t.Fatalf("%s exited on its own: %v\n%s", c.name, p.err, tail(p.stderr.String(), 3000))
		}
	}
}

// lostLine is one per-file "LOST:" log line of the collector.
type lostLine struct {
	Path      string `json:"path"`
	Namespace string `json:"namespace"`
	Inode     uint64 `json:"inode"`
	Offset    int64  `json:"checkpoint_offset"`
	Size      int64  `json:"size_at_checkpoint"`
	Bytes     int64  `json:"bytes_lost"`
	run       int
}

// lostLines returns every per-file LOST: line of every collector run.
func (s *system) lostLines() []lostLine {
	var out []lostLine
	s.collector.mu.Lock()
	defer s.collector.mu.Unlock()
	for i, p := range s.collector.runs {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l lostLine
			if bytes.Contains(sc.Bytes(), []byte(`"LOST:`)) && json.Unmarshal(sc.Bytes(), &l) == nil && l.Path != "" {
				l.run = i
				out = append(out, l)
			}
		}
	}
	return out
}

// lostLogged sums the bytes of every per-file "LOST:" log line of every collector run, by
// namespace.
func (s *system) lostLogged() map[string]int64 {
	out := map[string]int64{}
	for _, l := range s.lostLines() {
		if l.Namespace != "" {
			out[l.Namespace] += l.Bytes
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// rssSampler samples the resident set size of every process it watches (and of the test
// process, which runs kfake) and keeps each component's peak.
type rssSampler struct {
	mu   sync.Mutex
	pids map[int]string
	peak map[string]int64
	// perMinute is each component's peak in every minute since the sampler started (the long
	// version reports it: memory must stay flat).
	perMinute map[string][]int64
	start     time.Time
	stopc     chan struct{}
	done      chan struct{}
}

func newRSSSampler() *rssSampler {
	r := &rssSampler{pids: map[int]string{os.Getpid(): "kfake+test"}, peak: map[string]int64{},
		perMinute: map[string][]int64{}, start: time.Now(), stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			r.sample()
			select {
			case <-r.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func (r *rssSampler) watch(name string, pid int) {
	r.mu.Lock()
	r.pids[pid] = name
	r.mu.Unlock()
}

func (r *rssSampler) sample() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, name := range r.pids {
		n, ok := rssOf(pid)
		if !ok {
			delete(r.pids, pid)
			continue
		}
		r.peak[name] = max(r.peak[name], n)
		m := int(time.Since(r.start) / time.Minute)
		for len(r.perMinute[name]) <= m {
			r.perMinute[name] = append(r.perMinute[name], 0)
		}
		r.perMinute[name][m] = max(r.perMinute[name][m], n)
	}
}

// minutes returns each component's peak RSS in MiB per minute, as "name: a b c ...".
func (r *rssSampler) minutes() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name, ms := range r.perMinute {
		var b strings.Builder
		b.WriteString(name + ":")
		for _, v := range ms {
			fmt.Fprintf(&b, " %d", v>>20)
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func (r *rssSampler) stop() {
	select {
	case <-r.stopc:
	default:
		close(r.stopc)
		<-r.done
	}
}

// peaks returns each component's peak RSS in MiB.
func (r *rssSampler) peaks() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for k, v := range r.peak {
		out[k] = v >> 20
	}
	return out
}

// rssOf reads VmRSS of pid from /proc (bytes); ok is false once the process is gone.
func rssOf(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	if bytes.Contains(b, []byte("State:\tZ")) {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, true
		}
	}
	return 0, false
}

// waitFor polls cond every 200 ms until it returns "" (done) or the timeout passes; it fails
// with the last reason, and at once when a component exits on its own.
func (s *system) waitFor(what string, timeout time.Duration, cond func() string) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reason := cond()
		if reason == "" {
			return
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not done after %s: %s", what, timeout, reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// explainMissing describes where a line that never reached Kafka was written and what the
// collector's runs logged about its container, for the failure message.
func (s *system) explainMissing(c *wcont, seq int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seq %d: written at %s into %s after %d rotations (%d rotations by the end)\n",
		c.key, seq, c.at[seq].Format("15:04:05.000"), c.c.Path(), c.rot[seq], c.nrot)
	s.collector.mu.Lock()
	defer s.collector.mu.Unlock()
	dir := filepath.Dir(c.c.Path())
	for i, p := range s.collector.runs {
		fmt.Fprintf(&b, "collector run %d started %s:\n", i, s.collector.starts[i].Format("15:04:05.000"))
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, dir) {
				fmt.Fprintf(&b, "  %s\n", tail(l, 400))
			}
		}
	}
	return b.String()
}

// problemsLogged returns the last n WARN and ERROR lines of c's runs.
func (s *system) problemsLogged(c *component, n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, p := range c.runs {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				out = append(out, fmt.Sprintf("run %d: %s", i, tail(l, 600)))
			}
		}
	}
	if len(out) > n {
		out = append([]string{fmt.Sprintf("(%d more)", len(out)-n)}, out[len(out)-n:]...)
	}
	return strings.Join(out, "\n")
}
