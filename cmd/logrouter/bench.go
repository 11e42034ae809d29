package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/loadgen"
)

func init() {
	commands["bench"] = command{
		summary: "measure a component: 'bench collect' runs the collector against kfake and reports lines per CPU-second, RSS and latency",
		run:     runBench,
		actions: []string{"collect"},
	}
}

// benchOpts are the workload of 'bench collect'.
type benchOpts struct {
	lines, files, namespaces, lineBytes int
	liveSeconds, liveRate               int
	topicLimit                          int // pre-create the topics with this max.message.bytes (0: no)
	heapProfile                         string
	pipelines                           string // "typical": every namespace runs benchTypicalPipeline
}

// benchResult is what one configuration measured.
type benchResult struct {
	payload            int64
	consumable         time.Duration // collector start -> every line readable from Kafka
	cpu                time.Duration // the collector process's user+system time, start to exit
	peakRSS, peakAnon  int64
	lat                loadgen.Latencies
	livePeakRSS        int64
	liveLines          int
	recordsPerLine     int
	configuration, log string
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stderr, "usage: logrouter bench collect [flags]\n\nRun 'logrouter bench collect -h' for its flags.")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "collect" {
		return errors.New("usage: logrouter bench collect [flags]")
	}
	fs := cli.NewFlagSet("bench collect", stderr)
	var o benchOpts
	fs.IntVar(&o.lines, "lines", 1_000_000, "lines in the backlog")
	fs.IntVar(&o.files, "files", 100, "container log files (open files)")
	fs.IntVar(&o.namespaces, "namespaces", 10, "namespaces the files are spread over")
	fs.IntVar(&o.lineBytes, "line-bytes", 160, "size of each application log line (a JSON object)")
	fs.IntVar(&o.liveSeconds, "live-seconds", 5, "seconds of steady writing for write-to-consume latency (0: none)")
	fs.IntVar(&o.liveRate, "live-rate", 20000, "lines per second written during the live phase")
	compression := fs.String("compression", "", "Kafka compression for the collector (empty: the collector's default)")
	dir := fs.String("dir", "", "work directory (default: a temporary one, removed after)")
	extra := fs.String("collector-flags", "", "extra flags for the collector, space-separated")
	fs.IntVar(&o.topicLimit, "precreate-max-message-bytes", 0, "create each namespace's topic before the collector starts (6 partitions, as a platform team would) with this max.message.bytes (1048588 is Kafka's default); 0: the collector creates them")
	fs.StringVar(&o.heapProfile, "heap-profile", "", "save the collector's heap profile, taken half way through the backlog, to this file")
	fs.StringVar(&o.pipelines, "pipelines", "", "tenant pipelines every namespace runs: empty for none, typical for json, one regex, one CEL keep and one redact on every line (loaded with --pipelines-dir)")
	if err := cli.Parse(fs, args[1:], cli.LookupEnv); err != nil {
		return err
	}
	root := *dir
	if root == "" {
		d, err := os.MkdirTemp("", "logrouter-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		root = d
	}
	// Defaults are the product: the collector's default configuration is always measured, and
	// first; a configuration with other flags is reported after it.
	configs := [][]string{nil}
	var variant []string
	if *compression != "" {
		variant = append(variant, "--compression", *compression)
	}
	variant = append(variant, strings.Fields(*extra)...)
	if len(variant) > 0 {
		configs = append(configs, variant)
	}
	def := router.DefaultConfig()
	fmt.Fprintf(stdout, "workload: %d lines of %d bytes over %d files in %d namespaces; collector defaults: --buffer-bytes %d, --compression %s, --read-bytes %d, --max-line-bytes %d\n",
		o.lines, o.lineBytes, o.files, o.namespaces, def.BufferBytes, def.Sink.Compression, def.ReadBytes, def.MaxLineBytes)
	for i, flags := range configs {
		sub := filepath.Join(root, fmt.Sprintf("run-%d", i))
		res, err := benchCollect(ctx, o, sub, flags, stdout)
		if err != nil {
			return err
		}
		res.report(stdout, o)
		if *dir == "" {
			os.RemoveAll(sub) // the next configuration writes its own backlog
		}
	}
	return nil
}

// benchCollect measures the collector with flags (nil: its defaults) on a fresh backlog: one
// process reads the backlog until every line can be consumed from Kafka and is stopped (its
// whole CPU time, start to exit, is the cost); a second one, started at the files' end, serves
// the live phase.
func benchCollect(ctx context.Context, o benchOpts, root string, flags []string, stdout io.Writer) (*benchResult, error) {
	res := &benchResult{configuration: "default configuration (no collector flags)"}
	if len(flags) > 0 {
		res.configuration = "collector flags: " + strings.Join(flags, " ")
	}
	fmt.Fprintf(stdout, "\n== %s\n", res.configuration)
	node, err := loadgen.NewNode(root)
	if err != nil {
		return nil, err
	}
	conts := make([]*loadgen.Container, o.files)
	for i := range conts {
		ns := fmt.Sprintf("bench-%d", i%o.namespaces)
		if conts[i], err = node.AddContainer(ns, fmt.Sprintf("pod-%d", i), "app", loadgen.CRI); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(stdout, "writing the backlog...\n")
	ts := time.Now()
	for i, c := range conts {
		n := o.lines / o.files
		if i < o.lines%o.files {
			n++
		}
		f, err := os.OpenFile(c.Path(), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for s := range n {
			msg := loadgen.SeqMessage(c.Namespace+"/"+c.Pod, s, o.lineBytes)
			res.payload += int64(len(msg))
			w.Write(c.Line(ts, "stdout", false, msg))
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		f.Close()
	}
	// Each line is one physical line; one longer than --max-line-bytes becomes several records.
	maxLine := int64(router.DefaultConfig().MaxLineBytes)
	for i, f := range flags {
		if v, ok := strings.CutPrefix(f, "--max-line-bytes="); ok {
			maxLine, _ = strconv.ParseInt(v, 10, 64)
		} else if f == "--max-line-bytes" && i+1 < len(flags) {
			maxLine, _ = strconv.ParseInt(flags[i+1], 10, 64)
		}
	}
	res.recordsPerLine = int((int64(len(loadgen.SeqMessage("x", 0, o.lineBytes))) + maxLine - 1) / max(1, maxLine))
	records := int64(o.lines * res.recordsPerLine)

	port, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(filepath.Join(root, "kafka")))
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()[0]
	if o.topicLimit > 0 {
		if err := precreateTopics(ctx, brokers, o.namespaces, o.topicLimit); err != nil {
			return nil, err
		}
	}
	// Short metadata ages: the topics appear while the clock runs.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.MetadataMinAge(10*time.Millisecond), kgo.MetadataMaxAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	switch o.pipelines {
	case "":
	case "typical":
		pf, err := writeBenchPipelines(filepath.Join(root, "pipelines"), o.namespaces)
		if err != nil {
			return nil, err
		}
		flags = append(append([]string(nil), flags...), pf...)
	default:
		return nil, fmt.Errorf("--pipelines %q: want typical or nothing", o.pipelines)
	}
	start := time.Now()
	p, err := startBenchCollector(root, brokers, "checkpoints", flags)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	res.log = p.logPath
	fmt.Fprintf(stdout, "collector pid %d reading the backlog into kfake at %s...\n", p.cmd.Process.Pid, brokers)
	// The clock stops when Kafka's high watermarks cover every line: a consumer can read them.
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
		n, _ := endOffsets(ctx, adm)
		if n >= records {
			break
		}
		if o.heapProfile != "" && n >= records/2 {
			if err := saveURL(p.url("/debug/pprof/heap"), o.heapProfile); err != nil {
				return nil, err
			}
			o.heapProfile = ""
		}
		if p.exited() {
			return nil, fmt.Errorf("collector exited with %d of %d records in Kafka (log: %s)", n, records, p.logPath)
		}
		if time.Since(start) > 30*time.Minute {
			return nil, fmt.Errorf("backlog not in Kafka after 30 minutes (%d of %d records)", n, records)
		}
	}
	res.consumable = time.Since(start)
	ru, err := p.stop()
	if err != nil {
		return nil, err
	}
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res.peakRSS, res.peakAnon = p.peakRSS, p.peakAnon

	if o.liveSeconds <= 0 {
		return res, nil
	}
	// Live phase: a collector started at the files' end; steady writing, each line carrying its
	// write time; a consumer measures when it arrives (write -> collector -> Kafka -> consumer).
	lp, err := startBenchCollector(root, brokers, "checkpoints-live", append([]string{"--start-at-end"}, flags...))
	if err != nil {
		return nil, err
	}
	defer lp.kill()
	for {
		n, _ := scrapeSum(lp.url("/metrics"), "logrouter_collector_open_files")
		if int(n) >= o.files {
			break
		}
		if lp.exited() {
			return nil, fmt.Errorf("live collector exited (log: %s)", lp.logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.lat, err = loadgen.LiveLatency(ctx, brokers, `^logs\.`, conts, o.liveSeconds, o.liveRate, o.lineBytes)
	if err != nil {
		return nil, err
	}
	res.liveLines = o.liveSeconds * o.liveRate
	if _, err := lp.stop(); err != nil {
		return nil, err
	}
	res.livePeakRSS = lp.peakRSS
	return res, nil
}

func (r *benchResult) report(w io.Writer, o benchOpts) {
	gb := float64(r.payload) / 1e9
	fmt.Fprintf(w, "backlog: %d lines (%.1f MB of messages, %d record(s) per line) over %d files, %d namespaces\n", o.lines, float64(r.payload)/1e6, r.recordsPerLine, o.files, o.namespaces)
	fmt.Fprintf(w, "  wall, start to all lines consumable  %.2fs\n", r.consumable.Seconds())
	fmt.Fprintf(w, "  lines/s                              %.0f\n", float64(o.lines)/r.consumable.Seconds())
	fmt.Fprintf(w, "  collector CPU, start to exit         %.2fs\n", r.cpu.Seconds())
	fmt.Fprintf(w, "  lines per CPU-second                 %.0f\n", float64(o.lines)/r.cpu.Seconds())
	fmt.Fprintf(w, "  CPU-seconds per GB                   %.1f\n", r.cpu.Seconds()/gb)
	fmt.Fprintf(w, "  peak RSS                             %.1f MiB\n", float64(r.peakRSS)/(1<<20))
	fmt.Fprintf(w, "  peak anonymous RSS                   %.1f MiB\n", float64(r.peakAnon)/(1<<20))
	if r.liveLines > 0 {
		fmt.Fprintf(w, "live: %d lines/s for %ds (collector started at the files' end)\n", o.liveRate, o.liveSeconds)
		fmt.Fprintf(w, "  write-to-consume latency  p50 %s  p99 %s  max %s  (%d samples)\n", r.lat.P50, r.lat.P99, r.lat.Max, r.lat.N)
		fmt.Fprintf(w, "  peak RSS                  %.1f MiB\n", float64(r.livePeakRSS)/(1<<20))
	}
}

// benchProc is one collector process of the benchmark.
type benchProc struct {
	cmd     *exec.Cmd
	mport   int
	logPath string
	logf    *os.File
	done    chan struct{} // closed when the process has exited
	sampled chan struct{} // closed when peakAnon is final
	waitErr error
	// Sampled every 20 ms from /proc/<pid>/status: VmHWM (peak RSS, file-backed pages of the
	// binary included) and RssAnon. Not rusage's maxrss: Go starts a child with vfork, and the
	// child's maxrss then includes this process's RSS at the time of the exec.
	peakRSS, peakAnon int64
}

func startBenchCollector(root, brokers, ckDir string, flags []string) (*benchProc, error) {
	mport, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	node := loadgen.Node{LogDir: filepath.Join(root, "containers"), PodsDir: filepath.Join(root, "pods")}
	args := []string{"collect", "--log-dir", node.LogDir, "--pods-dir", node.PodsDir,
		"--checkpoint-dir", filepath.Join(root, ckDir), "--brokers", brokers,
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport), "--node-name", "bench-node", "--kubernetes=false"}
	args = append(args, flags...)
	p := &benchProc{cmd: exec.Command(self, args...), mport: mport, done: make(chan struct{}), sampled: make(chan struct{})}
	p.logPath = filepath.Join(root, ckDir+".log")
	if p.logf, err = os.Create(p.logPath); err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.logf
	if err := p.cmd.Start(); err != nil {
		p.logf.Close()
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	// Peak anonymous memory is sampled too: VmHWM includes the binary's file-backed pages, which
	// are shared and evictable and depend on what else the one binary links.
	go func() {
		defer close(p.sampled)
		for {
			if a, err := procStatus(p.cmd.Process.Pid, "RssAnon:"); err == nil {
				p.peakAnon = max(p.peakAnon, a)
			}
			if h, err := procStatus(p.cmd.Process.Pid, "VmHWM:"); err == nil {
				p.peakRSS = max(p.peakRSS, h)
			}
			select {
			case <-p.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p, nil
}

func (p *benchProc) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.mport, path)
}

func (p *benchProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits for the exit and returns the process's resource usage.
func (p *benchProc) stop() (*syscall.Rusage, error) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	<-p.sampled
	p.logf.Close()
	if p.waitErr != nil {
		return nil, fmt.Errorf("collector: %w (log: %s)", p.waitErr, p.logPath)
	}
	return p.cmd.ProcessState.SysUsage().(*syscall.Rusage), nil
}

func (p *benchProc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.logf.Close()
}

// endOffsets sums the high watermarks of every partition of every topic.
func endOffsets(ctx context.Context, adm *kadm.Client) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(lctx)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			n += o.Offset
		}
	})
	return n, nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// scrapeSum adds up every series of a metric on a Prometheus text endpoint.
func scrapeSum(url, metric string) (float64, error) {
	resp, err := http.Get(url) //nolint:gosec // loopback URL built here
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, metric) {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, err := strconv.ParseFloat(l[i+1:], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

func saveURL(url, path string) error {
	resp, err := http.Get(url) //nolint:gosec // loopback URL built here
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// procStatus reads a size field (kB) of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
