// Package cli holds what every logrouter subcommand shares: flag sets whose flags can also be
// set as LOGROUTER_<FLAG> environment variables, a JSON logger, and a metrics endpoint.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewFlagSet returns a flag set that reports errors instead of exiting.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// EnvName is the environment variable for a flag: --log-dir is LOGROUTER_LOG_DIR.
func EnvName(flagName string) string {
	return "LOGROUTER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, first applying LOGROUTER_<FLAG> environment variables for flags not given
// on the command line (command-line flags win). lookup is os.LookupEnv in production.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Logger returns the JSON logger every component writes to stderr.
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Ready reports whether a component is doing its job (shipping, uploading, serving): nil when
// it is, else what is wrong, for people. It must be cheap: it answers every readiness probe.
type Ready func() error

// ServeMetrics serves /metrics, /healthz and /readyz on addr until ctx ends. An empty addr
// serves nothing.
//
// /healthz is liveness: it is about the process only, so a pod is never restarted for an
// outside fault (a broker outage) that a restart cannot cure. /readyz answers 503 with ready's
// error when ready reports one (nil ready: always ready).
func ServeMetrics(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger, ready Ready) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { serveReady(w, ready) })
	// Profiles on the metrics port (not the API port): how memory and CPU are spent in production.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving metrics", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	}
}

func serveReady(w http.ResponseWriter, ready Ready) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ready != nil {
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	io.WriteString(w, "ok\n")
}

// LookupEnv is os.LookupEnv, named for callers' readability.
var LookupEnv = os.LookupEnv
