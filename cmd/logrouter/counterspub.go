package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// countersFlags configure the collector's publication of its per-pipeline counters to the
// compacted counters topic, which the controller folds into each LogPipeline's
// status.counters (package pipeline/counters).
type countersFlags struct{ cfg counters.PublisherConfig }

func registerCountersFlags(fs *flag.FlagSet) *countersFlags {
	f := &countersFlags{cfg: counters.DefaultPublisherConfig()}
	fs.DurationVar(&f.cfg.Interval, "counters-interval", f.cfg.Interval, "how often the per-pipeline counters are published for the controller's status.counters (only those that changed)")
	return f
}

// publisher returns the Run of a counters.Publisher of src through its own Kafka client
// (the sink's connection settings), or nil when no pipeline source runs. An empty node name
// (collect outside Kubernetes without --node-name) falls back to the host name: the key needs
// one, and one collector per host is what the record sums over.
func (f *countersFlags) publisher(node string, kc kafkaconn.Config, src counters.Source, log *slog.Logger) (func(context.Context) error, error) {
	cfg := f.cfg
	cfg.Node = node
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	opts, err := kc.Options()
	if err != nil {
		return nil, fmt.Errorf("pipeline counters: %w", err)
	}
	p, err := counters.NewPublisher(cfg, opts, src, log.With("component", "pipeline-counters"))
	if err != nil {
		return nil, err
	}
	return p.Run, nil
}
