// Package api is the gateway: a stateless REST API that lets teams read their own namespace's
// logs (live from Kafka, archived through the archiver's query engine) with a bearer token,
// without Kafka clients or credentials. See docs/api.md and openapi.json.
package api

import (
	"context"
	"crypto/tls"
	_ "embed" // openapi.json
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/logrouter/logrouter/api/authz"
	"github.com/logrouter/logrouter/api/kubeauth"
	"github.com/logrouter/logrouter/api/limits"
	"github.com/logrouter/logrouter/api/live"
	"github.com/logrouter/logrouter/api/problem"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/archiver/query"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the embedded OpenAPI 3 document served at /openapi.json.
func OpenAPI() []byte { return openAPI }

// Option adjusts New for embedding and tests.
type Option func(*options)

type options struct {
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	bucket *blob.Bucket
	now    func() time.Time
}

// WithKubeClient supplies the Kubernetes client for --kube-auth instead of building one from
// the kubeconfig (tests pass a fake clientset).
func WithKubeClient(k kubernetes.Interface) Option { return func(o *options) { o.kube = k } }

// WithDynamicClient supplies the client --kube-pipelines reads LogPipelines with instead of
// building one from the kubeconfig (tests pass a fake or a real API server's client).
func WithDynamicClient(d dynamic.Interface) Option { return func(o *options) { o.dyn = d } }

// WithBucket supplies the archive bucket instead of opening Config.Bucket. The caller keeps
// ownership (it is not closed).
func WithBucket(b *blob.Bucket) Option { return func(o *options) { o.bucket = b } }

// Gateway serves the API. Create it with New and run it with Run.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	gatherer prometheus.Gatherer
	now      func() time.Time

	ln      net.Listener
	srv     *http.Server
	tls     *tls.Config // nil: plain HTTP
	store   *token.Store
	reader  *live.Reader
	admin   *kgo.Client // writes token records
	auth    *authz.Authenticator
	topics  *topicNamespaces // candidates of Kubernetes identities' namespace lists
	limiter *limits.Limiter
	engine  *query.Engine
	dyn     dynamic.Interface // nil: no /pipelines
	console *ui.Handler       // nil: no /ui/
	bucket  *blob.Bucket
	ownBkt  bool

	stopping chan struct{}
	stopOnce sync.Once
	ready    chan struct{}

	m metrics
}

// New builds a gateway and binds its listener (so Addr is known before Run). reg receives the
// gateway's metrics; if it is also a prometheus.Gatherer, /metrics serves it.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (g *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	g = &Gateway{cfg: cfg, log: log, now: o.now, stopping: make(chan struct{}), ready: make(chan struct{})}
	if gt, ok := reg.(prometheus.Gatherer); ok {
		g.gatherer = gt
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if g.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	kopts, err := cfg.Kafka.Options()
	if err != nil {
		return nil, fmt.Errorf("gateway kafka: %w", err)
	}
	if g.store, err = token.NewStore(kopts, cfg.TokenTopic, reg, log, token.WithMaxStaleness(cfg.TokenMaxStaleness)); err != nil {
		return nil, err
	}
	if g.reader, err = live.NewReader(kopts); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, g.reader.Close)
	if g.admin, err = kgo.NewClient(append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))...); err != nil {
		return nil, fmt.Errorf("gateway kafka: %w", err)
	}
	cleanup = append(cleanup, g.admin.Close)
	g.auth = &authz.Authenticator{Tokens: g.store, Now: g.now, ProxyHeader: cfg.IdentityHeader}
	if cfg.Console {
		g.console = ui.New()
	}
	if cfg.KubePipelines {
		g.dyn = o.dyn
		if g.dyn == nil {
			rc, err := kubeRESTConfig(cfg.Kubeconfig, "--kube-pipelines")
			if err != nil {
				return nil, err
			}
			if g.dyn, err = dynamic.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("kubernetes client for --kube-pipelines: %w", err)
			}
		}
	}
	if cfg.KubeAuth {
		kc := o.kube
		if kc == nil {
			if kc, err = kubeClient(cfg.Kubeconfig); err != nil {
				return nil, err
			}
		}
		kcfg := kubeauth.DefaultConfig()
		kcfg.TTL, kcfg.Audiences, kcfg.Reserved = cfg.KubeCacheTTL, cfg.audiences(), cfg.reserved()
		if g.auth.Kube, err = kubeauth.New(kc, kcfg, reg); err != nil {
			return nil, err
		}
		g.topics = newTopicNamespaces(kadm.NewClient(g.admin), cfg.TopicTemplate, cfg.KubeCacheTTL, g.now)
	}
	g.limiter = limits.New(limits.Config{MaxStreams: cfg.MaxStreamsPerToken, BytesPerSec: float64(cfg.BytesPerSecond)})
	g.bucket = o.bucket
	if g.bucket == nil && cfg.Bucket != "" {
		if g.bucket, err = blob.OpenBucket(context.Background(), cfg.Bucket); err != nil {
			return nil, fmt.Errorf("open --bucket: %w", err)
		}
		g.ownBkt = true
		b := g.bucket
		cleanup = append(cleanup, func() { _ = b.Close() })
	}
	if g.bucket != nil {
		g.engine = query.New(g.bucket, cfg.ArchivePrefix, query.WithLogger(log))
	}
	if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("gateway listen %s: %w", cfg.Listen, err)
	}
	g.srv = &http.Server{
		Handler:           g,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout + 10*time.Second, // bodies are small (token management)
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No WriteTimeout: streams are long. Each write gets its own deadline instead.
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			_ = g.ln.Close()
			return nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		g.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		// TLS is terminated by problemListener, below net/http, so that net/http's own
		// refusals pass through problemConn; HTTP/2 (ALPN h2) then reaches net/http as
		// prior-knowledge HTTP/2 on the decrypted stream.
		protos.SetUnencryptedHTTP2(true)
	}
	g.srv.Protocols = &protos
	g.ln = &problemListener{Listener: g.ln, g: g, tls: g.tls}
	return g, nil
}

func kubeRESTConfig(kubeconfig, flag string) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", flag, err)
	}
	return rc, nil
}

func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := kubeRESTConfig(kubeconfig, "--kube-auth")
	if err != nil {
		return nil, err
	}
	// Reviews are cached, but a burst of new identities must not queue behind client-go's
	// default 5 QPS.
	rc.QPS, rc.Burst = 50, 100
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for --kube-auth: %w", err)
	}
	return kc, nil
}

// Addr is the listener's address.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// URL is the base URL clients use.
func (g *Gateway) URL() string {
	scheme := "http"
	if g.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + g.ln.Addr().String()
}

// Ready is closed once the token store has caught up and the gateway accepts requests.
func (g *Gateway) Ready() <-chan struct{} { return g.store.Ready() }

// Run serves until ctx ends, then stops accepting, ends open streams with an "end" event (so
// clients reconnect elsewhere with their cursor) and waits up to ShutdownGrace for them.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.reader.Close()
	defer g.admin.Close()
	if g.ownBkt {
		defer g.bucket.Close()
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	defer stopStore()
	eg, egCtx := errgroup.WithContext(ctx)
	storeErr := make(chan error, 1)
	go func() { storeErr <- g.store.Run(storeCtx) }()
	useTLS := g.tls != nil
	eg.Go(func() error {
		err := g.srv.Serve(g.ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("gateway serve: %w", err)
	})
	eg.Go(func() error {
		select {
		case <-egCtx.Done():
		case err := <-storeErr:
			storeErr <- err
			if err != nil {
				return fmt.Errorf("token store: %w", err)
			}
		}
		g.stopOnce.Do(func() { close(g.stopping) })
		sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace)
		defer cancel()
		if err := g.srv.Shutdown(sctx); err != nil {
			g.log.Warn("gateway shutdown", "err", err)
			_ = g.srv.Close()
		}
		return nil
	})
	g.log.Info("gateway serving", "addr", g.ln.Addr().String(), "tls", useTLS, "archive", g.engine != nil, "kube_auth", g.auth.Kube != nil)
	err := eg.Wait()
	stopStore()
	if serr := <-storeErr; serr != nil && err == nil && ctx.Err() == nil {
		err = fmt.Errorf("token store: %w", serr)
	}
	return err
}

// serveReady answers from the token store's last probe of Kafka (a real round trip every
// probe interval, not cached metadata), so it turns false while Kafka or the token topic cannot
// be read and answers at once either way.
func (g *Gateway) serveReady(q *request) {
	if err := g.CheckReady(); err != nil {
		q.fail(&problem.Error{Status: http.StatusServiceUnavailable, Code: problem.CodeUnavailable, Detail: "not ready: " + err.Error(), RetryAfter: 1})
		return
	}
	_, _ = q.w.Write([]byte("ok\n"))
}

// errShuttingDown is CheckReady's answer once the gateway drains.
var errShuttingDown = errors.New("shutting down")

// CheckReady is the gateway's readiness (cli.Ready): nil while it can serve, else why not. The
// API listener's /readyz and the metrics server's answer the same.
func (g *Gateway) CheckReady() error {
	select {
	case <-g.stopping:
		return errShuttingDown
	default:
	}
	return g.store.Health()
}

func (g *Gateway) serveMetrics(q *request) {
	if g.gatherer == nil {
		q.fail(problem.New(http.StatusNotFound, problem.CodeNotFound, "no metrics registry"))
		return
	}
	promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{}).ServeHTTP(q.w, q.r)
}

// splitPath splits an escaped path into its segments; ok is false for an empty segment
// (a double or trailing slash).
func splitPath(p string) ([]string, bool) {
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		if s == "" {
			return nil, false
		}
	}
	return segs, true
}
