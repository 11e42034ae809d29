package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/rungroup"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/journal"
)

func init() {
	commands["collect"] = command{
		summary: "tail container log files into one Kafka topic per namespace (the node DaemonSet)",
		run:     runCollect,
	}
}

func runCollect(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg := router.DefaultConfig()
	cfg.Node = os.Getenv("NODE_NAME")
	fs := cli.NewFlagSet("collect", stderr)
	cfg.Register(fs)
	ecfg := enricher.DefaultConfig()
	ecfg.Register(fs)
	jcfg := journal.DefaultConfig()
	jcfg.Register(fs)
	metricsAddr := fs.String("metrics-addr", ":9464", "address of the /metrics endpoint (empty: none)")
	pf := registerPipelineFlags(fs, true)
	cf := registerCountersFlags(fs)
	memLimit := fs.Int64("memory-limit", 0, "soft memory limit of the Go runtime, bytes (0: --buffer-bytes + 28 MiB; -1: none; the GOMEMLIMIT variable wins)")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	ecfg.NodeName = cfg.Node
	ecfg.Cluster = cfg.Cluster
	jcfg.CheckpointInterval = cfg.CheckpointInterval
	if err := cfg.NodeFiles.Load(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := errors.Join(cfg.Validate(), ecfg.Validate(), jcfg.Validate()); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := cfg.CheckDirs(); err != nil {
		return err
	}
	base := cli.Logger(stderr, slog.LevelInfo)
	log := base.With("component", "collector")
	// client-go logs through klog; route it into the same JSON stream.
	klog.SetSlogLogger(base.With("component", "client-go"))
	// The budget bounds what the collector holds; the soft limit makes the garbage collector
	// return it promptly instead of letting the heap grow to twice the live data.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memLimit >= 0 {
		limit := *memLimit
		if limit == 0 {
			limit = cfg.BufferBytes + 28<<20
		}
		debug.SetMemoryLimit(limit)
	}
	reg := cli.NewRegistry()
	var meta filemeta.Provider = filemeta.PathOnly{Origin: filemeta.Origin{Node: cfg.Node, Cluster: cfg.Cluster}}
	var enr *enricher.Enricher
	if ecfg.Enabled {
		client, err := enricher.ClientFromConfig(ecfg)
		if err != nil {
			return fmt.Errorf("%w (or run with --kubernetes=false for path metadata only)", err)
		}
		if enr, err = enricher.New(ecfg, client, reg, base.With("component", "enricher")); err != nil {
			return err
		}
		meta = enr
	}
	c, err := router.New(cfg, meta, reg, log)
	if err != nil {
		return err
	}
	pipelines, err := pf.source(c, ecfg.Enabled, ecfg, reg, base)
	if err != nil {
		return err
	}
	var g rungroup.Group
	if pipelines != nil {
		g.Add("pipelines", pipelines)
		pub, err := cf.publisher(cfg.Node, cfg.Sink.Kafka, c.PipelineCounters(), base)
		if err != nil {
			return err
		}
		g.Add("pipeline counters", pub)
	}
	if enr != nil {
		// A slow or unreachable API server never holds the collector back: files ship with
		// path metadata until the informers sync (see docs/enricher.md).
		g.Add("enricher", enr.Run)
	}
	ready := c.Ready
	if jcfg.Enabled {
		src, err := newJournalSource(jcfg, cfg, c, reg, base)
		if err != nil {
			return err
		}
		done := c.Attach()
		g.Add("journal", func(ctx context.Context) error { defer done(); return src.Run(ctx) })
		ready = func() error { return errors.Join(c.Ready(), src.Ready()) }
	}
	g.Add("collector", c.Run)
	g.Add("metrics", func(ctx context.Context) error { return cli.ServeMetrics(ctx, *metricsAddr, reg, log, ready) })
	return g.Run(ctx)
}

// newJournalSource makes the journal source on the collector's producer and budget.
func newJournalSource(jcfg journal.Config, cfg router.Config, c *router.Collector, reg prometheus.Registerer, base *slog.Logger) (*journal.Source, error) {
	t := jcfg.Topic
	if t == "" {
		var err error
		if t, err = c.Topic(topic.NodeSystem); err != nil {
			return nil, fmt.Errorf("journal topic: %w (set --journal-topic when --topic-template uses namespace labels)", err)
		}
	}
	c.ReserveTopic(t, "the node journal's") // no namespace's container logs go to it
	return journal.New(jcfg, journal.Deps{Sink: c.Sink(), Budget: c.Budget(), CheckpointDir: cfg.CheckpointDir, Node: cfg.Node, Cluster: cfg.Cluster,
		Topic: t, Kafka: cfg.Sink.Kafka, MaxLineBytes: cfg.MaxLineBytes, Log: base.With("component", "journal"), StallAfter: cfg.AckTimeout}, reg)
}
