//go:build !collector

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/router/loadgen"
)

func init() {
	commands["demo-writer"] = command{
		summary: "write demo container logs (CRI, kubelet layout and rotation) for a collector to read, as in dev and docker-compose.yml",
		run:     runDemoWriter,
	}
}

// runDemoWriter is dev's demo workload on its own, for a collector in another process or
// container (docker-compose.yml shares the directory through a volume).
func runDemoWriter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("demo-writer", stderr)
	dir := fs.String("dir", "/var/log", "node log root: writes <dir>/pods/<ns>_<pod>_<uid>/<container>/0.log and the <dir>/containers symlinks (absolute: a collector must see them at the same path)")
	df := registerDemoFlags(fs)
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	if err := df.validate(); err != nil {
		return err
	}
	node, err := loadgen.NewNode(*dir)
	if err != nil {
		return err
	}
	demo, err := df.start(node)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo-writer: %d containers in namespaces %s writing CRI logs under %s, %s\n",
		len(demo.Containers()), strings.Join(demo.Namespaces, ", "), node.PodsDir, node.LogDir)
	return demo.Run(ctx)
}

// demoFlags configure the demo workload, of demo-writer and dev alike.
type demoFlags struct {
	namespaces *string
	pods, rate *int
	rotate     *int64
	keep       *int
}

func registerDemoFlags(fs *flag.FlagSet) *demoFlags {
	return &demoFlags{
		namespaces: fs.String("namespaces", "shop,payments,search", "demo namespaces, comma-separated"),
		pods:       fs.Int("pods-per-namespace", 2, "demo pods (one container each) per namespace"),
		rate:       fs.Int("rate", 20, "lines per second per demo container"),
		rotate:     fs.Int64("rotate-bytes", 1<<20, "rotate a demo file past this size, as kubelet's containerLogMaxSize (0: never)"),
		keep:       fs.Int("keep-rotated", 2, "rotated files kept per demo container, as kubelet's containerLogMaxFiles - 1"),
	}
}

func (d *demoFlags) names() []string {
	var nss []string
	for _, ns := range strings.Split(*d.namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			nss = append(nss, ns)
		}
	}
	return nss
}

func (d *demoFlags) validate() error {
	var errs []error
	if len(d.names()) == 0 {
		errs = append(errs, errors.New("--namespaces: give at least one namespace"))
	}
	if *d.pods < 1 {
		errs = append(errs, fmt.Errorf("--pods-per-namespace %d: must be at least 1", *d.pods))
	}
	if *d.rate < 1 {
		errs = append(errs, fmt.Errorf("--rate %d: must be at least 1", *d.rate))
	}
	if *d.rotate < 0 || *d.keep < 0 {
		errs = append(errs, fmt.Errorf("--rotate-bytes %d, --keep-rotated %d: must not be negative", *d.rotate, *d.keep))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

// start creates the demo's containers on node.
func (d *demoFlags) start(node *loadgen.Node) (*loadgen.Demo, error) {
	demo := &loadgen.Demo{Node: node, Namespaces: d.names(), PodsPerNS: *d.pods, LinesPerSec: *d.rate, RotateBytes: *d.rotate, KeepRotated: *d.keep}
	return demo, demo.Start()
}
