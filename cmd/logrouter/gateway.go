//go:build !collector

package main

import (
	"context"
	"io"
	"log/slog"

	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/rungroup"
)

func init() {
	commands["gateway"] = command{summary: "serve the REST API (live and archived logs, token auth)", run: runGateway}
}

func runGateway(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := cli.NewFlagSet("gateway", stderr)
	cfg := api.DefaultConfig()
	cfg.Register(fs)
	metricsAddr := fs.String("metrics-addr", "", "also serve /metrics and /healthz on this address (the API listener serves them too)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := cli.Logger(stderr, level).With("component", "gateway")
	reg := cli.NewRegistry()
	g, err := api.New(cfg, reg, log)
	if err != nil {
		return err
	}
	var rg rungroup.Group
	rg.Add("gateway", g.Run)
	rg.Add("metrics", func(ctx context.Context) error { return cli.ServeMetrics(ctx, *metricsAddr, reg, log, g.CheckReady) })
	return rg.Run(ctx)
}
