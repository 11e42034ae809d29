package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"

	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/pipeline/source"
	"github.com/logrouter/logrouter/router"
)

// pipelineFlags choose where the collector's tenant pipelines come from (docs/pipelines.md):
// a directory of YAML files, or (collect with --kubernetes) the LogPipeline resources.
type pipelineFlags struct {
	dir      string
	interval time.Duration
	kube     bool
	delay    time.Duration
}

func registerPipelineFlags(fs *flag.FlagSet, withKube bool) *pipelineFlags {
	f := &pipelineFlags{}
	dc, kc := source.DefaultDirConfig(), source.DefaultKubeConfig()
	fs.StringVar(&f.dir, "pipelines-dir", "", "read tenant pipelines (LogPipeline and LogRouterPolicy YAML files) from this directory, watched (see docs/pipelines.md); instead of the Kubernetes API")
	fs.DurationVar(&f.interval, "pipelines-interval", dc.Interval, "how often --pipelines-dir is read (a changed file applies when two reads agree)")
	if withKube {
		fs.BoolVar(&f.kube, "pipelines-kubernetes", true, "with --kubernetes and without --pipelines-dir: watch LogPipelines and the LogRouterPolicy through the API server")
		fs.DurationVar(&f.delay, "pipelines-delay", kc.Delay, "a burst of pipeline changes within this long is applied at once")
	}
	return f
}

// source returns the Run of the configured pipeline source, or nil when there is none.
// kubernetes says the enricher is on; ecfg is its configuration (the API server to use).
func (f *pipelineFlags) source(c *router.Collector, kubernetes bool, ecfg enricher.Config, reg prometheus.Registerer, log *slog.Logger) (func(context.Context) error, error) {
	useKube := f.kube && kubernetes && f.dir == ""
	if f.dir == "" && !useKube {
		return nil, nil
	}
	log = log.With("component", "pipelines")
	a := c
	if f.dir != "" {
		cfg := source.DefaultDirConfig()
		cfg.Dir, cfg.Interval = f.dir, f.interval
		d, err := source.NewDir(cfg, a, reg, log)
		if err != nil {
			return nil, fmt.Errorf("--pipelines-dir: %w", err)
		}
		a.ExpectPipelines()
		return d.Run, nil
	}
	rc, err := enricher.RESTConfig(ecfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("pipelines: kubernetes client: %w", err)
	}
	cfg := source.DefaultKubeConfig()
	cfg.Delay = f.delay
	k, err := source.NewKube(cfg, dc, a, reg, log)
	if err != nil {
		return nil, err
	}
	a.ExpectPipelines()
	return k.Run, nil
}
