//go:build !collector

package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/enricher"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/rungroup"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

func init() {
	commands["dev"] = command{
		summary: "run the whole system on this machine: Kafka (kfake), a demo workload, collector, archiver, gateway",
		run:     runDev,
	}
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("dev", stderr)
	dir := fs.String("data-dir", filepath.Join(os.TempDir(), "logrouter-dev"), "where Kafka's data, the demo's log files, checkpoints and the archive live")
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:9092", "address of the in-process Kafka broker")
	gatewayAddr := fs.String("gateway-addr", "127.0.0.1:8080", "address of the REST gateway")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9464", "address of /metrics for all components")
	df := registerDemoFlags(fs)
	pf := registerPipelineFlags(fs, false)
	cf := registerCountersFlags(fs)
	fresh := fs.Bool("fresh", false, "delete the data directory first")
	verbose := fs.Bool("verbose", false, "log at debug level")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	if err := df.validate(); err != nil {
		return err
	}
	// The archive's file:// URL needs an absolute path (file://data/archive would name host "data").
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	*dir = abs
	if *fresh {
		os.RemoveAll(*dir)
	}
	for _, d := range []string{"kafka", "node", "checkpoints", "archive", "spool", "pipelines"} {
		if err := os.MkdirAll(filepath.Join(*dir, d), 0o755); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logFile, err := os.OpenFile(filepath.Join(*dir, "logrouter.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := cli.Logger(logFile, level)
	reg := cli.NewRegistry()

	// Kafka: kfake, a Kafka-protocol broker in this process, keeping its data on disk.
	_, port, _ := strings.Cut(*kafkaAddr, ":")
	var kport int
	fmt.Sscanf(port, "%d", &kport)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(kport), kfake.DataDir(filepath.Join(*dir, "kafka")))
	if err != nil {
		return fmt.Errorf("start Kafka on %s: %w (is something else listening there? use --kafka-addr)", *kafkaAddr, err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()[0]

	node, err := loadgen.NewNode(filepath.Join(*dir, "node"))
	if err != nil {
		return err
	}
	demo, err := df.start(node)
	if err != nil {
		return err
	}

	ccfg := router.DefaultConfig()
	ccfg.LogDir, ccfg.PodsDir = node.LogDir, node.PodsDir
	ccfg.CheckpointDir = filepath.Join(*dir, "checkpoints")
	ccfg.Node = "dev-node"
	ccfg.Sink.Kafka.Brokers = brokers
	ccfg.Sink.Partitions = 3
	collector, err := router.New(ccfg, filemeta.PathOnly{Origin: filemeta.Origin{Node: ccfg.Node, Cluster: ccfg.Cluster}}, reg, log.With("component", "collector"))
	if err != nil {
		return err
	}

	samplePipeline, err := writeDevPipeline(pf, *dir, demo.Namespaces[0])
	if err != nil {
		return err
	}
	pipelines, err := pf.source(collector, false, enricher.Config{}, reg, log)
	if err != nil {
		return err
	}
	// The collector's per-pipeline counters go to the counters topic, created compacted here as
	// the controller creates it in a cluster: a controller pointed at this Kafka folds them.
	var counterPub func(context.Context) error
	if pipelines != nil {
		if err := devCountersTopic(ctx, brokers); err != nil {
			return err
		}
		if counterPub, err = cf.publisher(ccfg.Node, ccfg.Sink.Kafka, collector.PipelineCounters(), log); err != nil {
			return err
		}
	}

	bucket := "file://" + filepath.Join(*dir, "archive") + "?create_dir=true"
	acfg := archiver.DefaultConfig()
	acfg.Kafka.Brokers = brokers
	acfg.Bucket = bucket
	acfg.SpoolDir = filepath.Join(*dir, "spool")
	acfg.MaxObjectAge = time.Minute
	acfg.TopicRefresh = 5 * time.Second
	acfg.SessionTimeout = 10 * time.Second
	arch, err := archiver.New(acfg, reg, log.With("component", "archiver"))
	if err != nil {
		return err
	}

	gcfg := api.DefaultConfig()
	gcfg.Kafka.Brokers = brokers
	gcfg.Listen = *gatewayAddr
	gcfg.Bucket = bucket
	gw, err := api.New(gcfg, reg, log.With("component", "gateway"))
	if err != nil {
		return err
	}

	// Every component, and the step that creates the dev token and prints the banner, runs in
	// one group: whichever returns first (a port already taken, a failed token) stops the others
	// and waits for them to drain before Kafka closes (the deferred cluster.Close).
	var g rungroup.Group
	g.Add("demo workload", demo.Run)
	g.Add("collector", collector.Run)
	if pipelines != nil {
		g.Add("pipelines", pipelines)
		g.Add("pipeline counters", counterPub)
	}
	g.Add("archiver", arch.Run)
	g.Add("gateway", gw.Run)
	// /readyz joins every component's readiness.
	readies := []cli.Ready{collector.Ready, arch.Ready, gw.CheckReady}
	ready := func() error {
		errs := make([]error, 0, len(readies))
		for _, r := range readies {
			errs = append(errs, r())
		}
		return errors.Join(errs...)
	}
	g.Add("metrics", func(ctx context.Context) error { return cli.ServeMetrics(ctx, *metricsAddr, reg, log, ready) })
	g.Add("dev token", func(ctx context.Context) error {
		secret, err := devToken(ctx, brokers, gcfg.TokenTopic, demo.Namespaces)
		if err != nil {
			return fmt.Errorf("create the dev token: %w", err)
		}
		ns := demo.Namespaces[0]
		// The token in a file, for `logrouter logs --token-file` (it stays out of shell history).
		tokenFile := filepath.Join(*dir, "dev.token")
		if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the dev token: %w", err)
		}
		// The gateway learns tokens from their topic, asynchronously: the banner's lines must
		// work the moment they are printed (a logs line run at once would get 401 otherwise).
		if err := waitTokenAccepted(ctx, "http://"+*gatewayAddr, secret); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting
			}
			return err
		}
		fmt.Fprintf(stdout, `logrouter dev is running (Ctrl-C stops it; state is kept in %s)

  Kafka (kfake)      %s   topics logs.<namespace>: %s
  demo workload      %d containers writing CRI logs under %s (rotated at 1 MiB)
  collector          reading them; checkpoints in %s
  archiver           Parquet objects in %s (an object per partition at least every minute)
  gateway            http://%s
  console            %s   (web console: sign in with the token below)
  metrics            http://%s/metrics
  log                %s

Look at it:
  kcat -C -b %s -t logs.%s -o -5 -e
%s  %s
  go run ./cmd/logrouter query --bucket '%s' --namespace %s --since 1h --output text   (after a minute)

Pipelines (docs/pipelines.md), read from %s:
%s
The token above may read: %s.
`, *dir, brokers, strings.Join(demo.Namespaces, ", "), len(demo.Containers()), node.PodsDir, ccfg.CheckpointDir, filepath.Join(*dir, "archive"),
			*gatewayAddr, consoleURL(*gatewayAddr), *metricsAddr, logFile.Name(), brokers, ns, gatewayCurls("http://"+*gatewayAddr, secret, ns), devLogsLine(*gatewayAddr, tokenFile, ns), bucket, ns,
			pf.dir, devPipelineHelp(samplePipeline, ns, brokers), strings.Join(demo.Namespaces, ", "))
		<-ctx.Done()
		return nil
	})
	err = g.Run(ctx)
	fmt.Fprintln(stdout, "logrouter dev stopped")
	return err
}

// consoleURL is where the gateway at addr serves the web console (docs/console.md).
func consoleURL(addr string) string { return "http://" + addr + ui.Prefix }

// devLogsLine is the `logrouter logs` command dev prints: the last hour of a namespace, then
// following it (docs/teams.md).
func devLogsLine(gatewayAddr, tokenFile, ns string) string {
	return fmt.Sprintf("go run ./cmd/logrouter logs --gateway http://%s --token-file %s -n %s --since 1h -f", gatewayAddr, tokenFile, ns)
}

//go:embed devdata/pipeline.yaml
var devPipeline string

// writeDevPipeline points the pipelines source at the data directory's pipelines/ (unless
// --pipelines-dir says otherwise) and writes the sample pipeline there for namespace ns, once:
// a restart keeps the user's edits (--fresh starts over).
func writeDevPipeline(pf *pipelineFlags, dataDir, ns string) (string, error) {
	if pf.dir != "" {
		return "", nil // the user's directory: nothing is written there
	}
	pf.dir = filepath.Join(dataDir, "pipelines")
	path := filepath.Join(pf.dir, "demo.yaml")
	content := strings.Replace(devPipeline, "namespace: shop", "namespace: "+ns, 1)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("write the sample pipeline: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return "", fmt.Errorf("write the sample pipeline: %w", err)
	}
	return path, f.Close()
}

// devPipelineHelp says how to change the sample pipeline and watch the effect.
func devPipelineHelp(path, ns, brokers string) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf(`  %s runs the sample pipeline %s (drops health checks and debug lines, parses JSON, hashes user ids).
  Change it and watch the effect live (applied within two seconds; an invalid change keeps the last good version, logrouter.log says why):
  ${EDITOR:-vi} %s
  go run ./cmd/logrouter pipeline validate -f %s
  kcat -C -b %s -t logs.%s -o end -f '%%s\n'
`, ns, path, path, path, brokers, ns)
}

// waitTokenAccepted waits until the gateway at base is listening and accepts secret.
func waitTokenAccepted(ctx context.Context, base, secret string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/namespaces", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the gateway did not accept the dev token (last answer: %s): %w", last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// devToken creates a gateway token for the demo namespaces.
func devToken(ctx context.Context, brokers, topic string, namespaces []string) (string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := token.EnsureTopic(cctx, kadm.NewClient(cl), topic); err != nil {
		return "", err
	}
	secret, _, err := token.Create(cctx, cl, topic, token.Spec{Name: "dev", Namespaces: namespaces, TTL: 7 * 24 * time.Hour}, time.Now())
	return secret, err
}

// devCountersTopic creates the compacted counters topic in dev's Kafka (the controller's
// EnsureCompacted: one definition of the topic's settings).
func devCountersTopic(ctx context.Context, brokers string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := controller.NewProvisioner(kadm.NewClient(cl), 10*time.Second).EnsureCompacted(ctx, topic.CountersTopic); err != nil {
		return fmt.Errorf("counters topic: %w", err)
	}
	return nil
}
