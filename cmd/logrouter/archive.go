//go:build !collector

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/rungroup"
)

func init() {
	commands["archive"] = command{summary: "copy namespace topics into object storage, exactly once", run: runArchive}
}

func runArchive(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := cli.NewFlagSet("archive", stderr)
	cfg := archiver.DefaultConfig()
	cfg.Register(fs)
	metricsAddr := fs.String("metrics-addr", ":9464", "address of the /metrics endpoint (empty: none)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile to this file (for benchmarks)")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	log := cli.Logger(stderr, lvl).With("component", "archiver")
	// The budget is also the Go heap's soft limit, so the GC works harder before the process
	// outgrows it (GOMEMLIMIT in the environment wins).
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(cfg.MemoryBudget)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	reg := cli.NewRegistry()
	a, err := archiver.New(cfg, reg, log)
	if err != nil {
		return err
	}
	// A metrics server that cannot start stops the archiver (which drains), and vice versa.
	// /readyz fails while uploads keep failing or Kafka cannot be reached (Archiver.Ready).
	var g rungroup.Group
	g.Add("archiver", a.Run)
	g.Add("metrics", func(ctx context.Context) error { return cli.ServeMetrics(ctx, *metricsAddr, reg, log, a.Ready) })
	err = g.Run(ctx)
	log.Info("archiver stopped", "peak_rss_bytes", peakRSS())
	return err
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, or -1 where /proc has none.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return -1
}
