package main

import (
	"context"
	"io"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/internal/cli"
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
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	log := cli.Logger(stderr, lvl).With("component", "archiver")
	reg := cli.NewRegistry()
	a, err := archiver.New(cfg, reg, log)
	if err != nil {
		return err
	}
	// A metrics server that cannot start stops the archiver (which drains), and vice versa.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error { return cli.ServeMetrics(gctx, *metricsAddr, reg, log) })
	return g.Wait()
}
