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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/loadgen"
)

func init() {
	commands["bench"] = command{
		summary: "measure a component: 'bench collect' runs the collector against kfake and reports lines/s, CPU and RSS",
		run:     runBench,
		actions: []string{"collect"},
	}
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
	lines := fs.Int("lines", 1_000_000, "lines in the backlog")
	files := fs.Int("files", 100, "container log files (open files)")
	namespaces := fs.Int("namespaces", 10, "namespaces the files are spread over")
	lineBytes := fs.Int("line-bytes", 160, "size of each application log line (a JSON object)")
	liveSeconds := fs.Int("live-seconds", 5, "seconds of steady writing after the backlog, for write-to-consume latency")
	liveRate := fs.Int("live-rate", 20000, "lines per second written during the live phase")
	compression := fs.String("compression", "none", "Kafka compression for the collector")
	dir := fs.String("dir", "", "work directory (default: a temporary one, removed after)")
	extra := fs.String("collector-flags", "", "extra flags for the collector, space-separated")
	topicLimit := fs.Int("precreate-max-message-bytes", 0, "create each namespace's topic before the collector starts (6 partitions, as a platform team would) with this max.message.bytes (1048588 is Kafka's default); 0: the collector creates them")
	heapProfile := fs.String("heap-profile", "", "save the collector's heap profile, taken half way through the backlog, to this file")
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
	node, err := loadgen.NewNode(root)
	if err != nil {
		return err
	}
	conts := make([]*loadgen.Container, *files)
	for i := range conts {
		ns := fmt.Sprintf("bench-%d", i%*namespaces)
		if conts[i], err = node.AddContainer(ns, fmt.Sprintf("pod-%d", i), "app", loadgen.CRI); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "writing %d lines of %d bytes over %d files in %d namespaces...\n", *lines, *lineBytes, *files, *namespaces)
	var payload int64
	ts := time.Now()
	for i, c := range conts {
		n := *lines / *files
		if i < *lines%*files {
			n++
		}
		f, err := os.OpenFile(c.Path(), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for s := range n {
			msg := loadgen.SeqMessage(c.Namespace+"/"+c.Pod, s, *lineBytes)
			payload += int64(len(msg))
			w.Write(c.Line(ts, "stdout", false, msg))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		f.Close()
	}

	port, err := freeTCPPort()
	if err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(filepath.Join(root, "kafka")))
	if err != nil {
		return err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()[0]
	if *topicLimit > 0 {
		if err := precreateTopics(ctx, brokers, *namespaces, *topicLimit); err != nil {
			return err
		}
	}
	mport, err := freeTCPPort()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cargs := []string{"collect", "--log-dir", node.LogDir, "--pods-dir", node.PodsDir,
		"--checkpoint-dir", filepath.Join(root, "checkpoints"), "--brokers", brokers,
		"--compression", *compression, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport), "--node-name", "bench-node", "--kubernetes=false"}
	if *extra != "" {
		cargs = append(cargs, strings.Fields(*extra)...)
	}
	cmd := exec.Command(self, cargs...)
	logf, err := os.Create(filepath.Join(root, "collector.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stderr = logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	fmt.Fprintf(stdout, "collector pid %d reading the backlog into kfake at %s...\n", cmd.Process.Pid, brokers)
	// Peak anonymous memory is sampled: VmHWM includes the binary's file-backed pages, which are
	// shared and evictable and depend on what else the one binary links.
	var peakAnon int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if a, err := procStatus(cmd.Process.Pid, "RssAnon:"); err == nil {
				peakAnon = max(peakAnon, a)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var acked float64
	for acked < float64(*lines) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
		acked, _ = scrapeSum(metricsURL, "logrouter_collector_lines_acked_total")
		if *heapProfile != "" && acked >= float64(*lines)/2 {
			if err := saveURL(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", mport), *heapProfile); err != nil {
				return err
			}
			*heapProfile = ""
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("backlog not acknowledged after 30 minutes (%v of %d)", acked, *lines)
		}
	}
	backlogWall := time.Since(start)
	backlogCPU, _ := procCPU(cmd.Process.Pid)
	backlogRSS, _ := procStatus(cmd.Process.Pid, "VmRSS:")

	// Live phase: steady writing, each line carrying its write time; a consumer measures when it
	// arrives (write -> collector -> Kafka ack -> consumer).
	lat, err := liveLatency(ctx, conts, brokers, *liveSeconds, *liveRate, *lineBytes)
	if err != nil {
		return err
	}
	close(stopSample)
	<-sampled
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("collector: %w (log: %s)", err, logf.Name())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpuTotal := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	gb := float64(payload) / 1e9
	fmt.Fprintf(stdout, "\nbacklog: %d lines (%.1f MB of messages) over %d files, %d namespaces, compression %s\n", *lines, float64(payload)/1e6, *files, *namespaces, *compression)
	fmt.Fprintf(stdout, "  wall                      %.2fs\n", backlogWall.Seconds())
	fmt.Fprintf(stdout, "  lines/s                   %.0f\n", float64(*lines)/backlogWall.Seconds())
	fmt.Fprintf(stdout, "  collector CPU             %.2fs\n", backlogCPU.Seconds())
	fmt.Fprintf(stdout, "  lines per CPU-second      %.0f\n", float64(*lines)/backlogCPU.Seconds())
	fmt.Fprintf(stdout, "  CPU-seconds per GB        %.1f\n", backlogCPU.Seconds()/gb)
	fmt.Fprintf(stdout, "  RSS after backlog         %.1f MiB\n", float64(backlogRSS)/(1<<20))
	fmt.Fprintf(stdout, "live: %d lines/s for %ds\n", *liveRate, *liveSeconds)
	fmt.Fprintf(stdout, "  write-to-consume latency  p50 %s  p99 %s  max %s  (%d samples)\n", lat.p50, lat.p99, lat.max, lat.n)
	fmt.Fprintf(stdout, "whole run: collector CPU %.2fs, peak RSS %.1f MiB, peak anonymous RSS %.1f MiB\n", cpuTotal.Seconds(), float64(ru.Maxrss)/1024, float64(peakAnon)/(1<<20))
	return nil
}

type latencies struct {
	p50, p99, max time.Duration
	n             int
}

func liveLatency(ctx context.Context, conts []*loadgen.Container, brokers string, seconds, rate, size int) (latencies, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		return latencies{}, err
	}
	defer cl.Close()
	// Let the consumer join every partition at its end before writing.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cl.PollFetches(pctx)
	cancel()
	var lats []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Duration(seconds)*time.Second + 5*time.Second)
		for time.Now().Before(deadline) && len(lats) < seconds*rate {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				rec, err := record.Decode(r.Value)
				if err != nil {
					return
				}
				if i := strings.Index(rec.Message, `"wt":`); i >= 0 {
					j := strings.IndexByte(rec.Message[i+5:], ',')
					if ns, err := strconv.ParseInt(rec.Message[i+5:i+5+j], 10, 64); err == nil {
						lats = append(lats, now.Sub(time.Unix(0, ns)))
					}
				}
			})
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	i := 0
	for time.Now().Before(end) {
		<-tick.C
		for range perTick {
			c := conts[i%len(conts)]
			now := time.Now()
			msg := fmt.Sprintf(`{"wt":%d,"seq":%d,"pad":"%s"}`, now.UnixNano(), i, strings.Repeat("x", max(0, size-40)))
			if err := c.Write(now, "stdout", msg); err != nil {
				return latencies{}, err
			}
			i++
		}
	}
	<-done
	if len(lats) == 0 {
		return latencies{}, errors.New("no live line arrived")
	}
	sort.Slice(lats, func(a, b int) bool { return lats[a] < lats[b] })
	return latencies{p50: lats[len(lats)/2].Round(time.Millisecond), p99: lats[len(lats)*99/100].Round(time.Millisecond), max: lats[len(lats)-1].Round(time.Millisecond), n: len(lats)}, nil
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

// procCPU reads a process's user+system CPU time from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
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
