//go:build !collector

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/rungroup"
)

func init() {
	commands["controller"] = command{summary: "reconcile LogPipelines: validation, status, topics, counters (leader-elected)", run: runController}
}

func runController(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := cli.NewFlagSet("controller", stderr)
	cfg := controller.DefaultConfig()
	cfg.Register(fs)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file for running outside the cluster (default: in-cluster config)")
	metricsAddr := fs.String("metrics-addr", ":9464", "address of the /metrics endpoint, with /healthz and /readyz (empty: none)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := cli.Logger(stderr, level).With("component", "controller")
	// controller-runtime's packages log through its global logger too.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	rc, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	reg := cli.NewRegistry()
	c, err := controller.New(cfg, rc, reg, log)
	if err != nil {
		return err
	}
	var rg rungroup.Group
	rg.Add("controller", c.Run)
	rg.Add("metrics", func(ctx context.Context) error { return cli.ServeMetrics(ctx, *metricsAddr, reg, log, nil) })
	return rg.Run(ctx)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config (use --kubeconfig outside a cluster): %w", err)
	}
	return rc, nil
}
