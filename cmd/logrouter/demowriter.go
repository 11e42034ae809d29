//go:build !collector

package main

import (
	"context"
	"errors"
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
	namespaces := fs.String("namespaces", "shop,payments,search", "demo namespaces, comma-separated")
	pods := fs.Int("pods-per-namespace", 2, "pods (one container each) per namespace")
	rate := fs.Int("rate", 20, "lines per second per container")
	rotate := fs.Int64("rotate-bytes", 1<<20, "rotate a file past this size, as kubelet's containerLogMaxSize (0: never)")
	keep := fs.Int("keep-rotated", 2, "rotated files kept per container, as kubelet's containerLogMaxFiles - 1")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	var errs []error
	var nss []string
	for _, ns := range strings.Split(*namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			nss = append(nss, ns)
		}
	}
	if len(nss) == 0 {
		errs = append(errs, errors.New("--namespaces: give at least one namespace"))
	}
	if *pods < 1 {
		errs = append(errs, fmt.Errorf("--pods-per-namespace %d: must be at least 1", *pods))
	}
	if *rate < 1 {
		errs = append(errs, fmt.Errorf("--rate %d: must be at least 1", *rate))
	}
	if *rotate < 0 || *keep < 0 {
		errs = append(errs, fmt.Errorf("--rotate-bytes %d, --keep-rotated %d: must not be negative", *rotate, *keep))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	node, err := loadgen.NewNode(*dir)
	if err != nil {
		return err
	}
	demo := &loadgen.Demo{Node: node, Namespaces: nss, PodsPerNS: *pods, LinesPerSec: *rate, RotateBytes: *rotate, KeepRotated: *keep}
	if err := demo.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo-writer: %d containers in namespaces %s writing CRI logs under %s, %s\n",
		len(demo.Containers()), strings.Join(nss, ", "), node.PodsDir, node.LogDir)
	return demo.Run(ctx)
}
