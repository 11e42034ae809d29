package api

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/internal/bucketurl"
	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/topic"
)

// Config is the gateway's configuration. Every field has a flag (Register) and so a
// LOGROUTER_<FLAG> environment variable.
type Config struct {
	Kafka kafkaconn.Config `json:"-"` // flags only: it has no JSON form

	Listen      string `json:"listen"`
	TLSCertFile string `json:"tls_cert"`
	TLSKeyFile  string `json:"tls_key"`

	// TopicTemplate derives a namespace's topic; it must contain {namespace} and match the
	// collector's --topic-template.
	TopicTemplate string `json:"topic_template"`
	TokenTopic    string `json:"token_topic"`
	// TokenMaxStaleness bounds how long the token store may go without confirming that it holds
	// the whole token topic; past it every logrouter token is refused (fail closed).
	TokenMaxStaleness time.Duration `json:"token_max_staleness"`

	// Bucket is the archive's gocloud.dev/blob URL; empty disables the archive endpoint.
	Bucket        string `json:"bucket"`
	ArchivePrefix string `json:"archive_prefix"`

	KubeAuth      bool          `json:"kube_auth"`
	Kubeconfig    string        `json:"kubeconfig"`
	KubeAudiences string        `json:"kube_audiences"`
	KubeCacheTTL  time.Duration `json:"kube_cache_ttl"`
	// KubeReserved: comma-separated namespaces, besides node-system, that Kubernetes RBAC never
	// opens (the node file sources' node-<name>, whose topics hold the nodes' own files).
	KubeReserved string `json:"kube_reserved_namespaces"`
	// KubePipelines: serve GET /v1/namespaces/{ns}/pipelines from the LogPipelines in the
	// Kubernetes API, read with the gateway's own credentials (--kubeconfig or in-cluster).
	KubePipelines bool `json:"kube_pipelines"`

	// Console serves the web console at /ui/.
	Console bool `json:"console"`
	// IdentityHeader names a header an identity proxy fills with the user's bearer token; read
	// requests without Authorization take their token from it.
	IdentityHeader string `json:"identity_header"`

	MaxStreamsPerToken int           `json:"max_streams_per_token"`
	BytesPerSecond     int64         `json:"bytes_per_second_per_token"`
	Heartbeat          time.Duration `json:"heartbeat"`
	AuthRecheck        time.Duration `json:"auth_recheck"`
	PageWait           time.Duration `json:"page_wait"`
	// FirstFetchWait bounds a page's wait for its consumer's first records: until then an
	// empty page would say nothing (not "no records"), so the answer is 503 once it passes.
	FirstFetchWait time.Duration `json:"first_fetch_wait"`
	MaxPageBytes   int           `json:"max_page_bytes"`

	ReadHeaderTimeout time.Duration `json:"read_header_timeout"`
	WriteTimeout      time.Duration `json:"write_timeout"`
	IdleTimeout       time.Duration `json:"idle_timeout"`
	MaxHeaderBytes    int           `json:"max_header_bytes"`
	MaxBodyBytes      int64         `json:"max_body_bytes"`
	ShutdownGrace     time.Duration `json:"shutdown_grace"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Kafka:              kafkaconn.Config{Brokers: "localhost:9092", ClientID: "logrouter-gateway"},
		Listen:             ":8080",
		TopicTemplate:      topic.DefaultTemplate,
		TokenTopic:         token.DefaultTopic,
		TokenMaxStaleness:  token.DefaultMaxStaleness,
		KubeCacheTTL:       30 * time.Second,
		Console:            true,
		MaxStreamsPerToken: 10,
		BytesPerSecond:     16 << 20,
		Heartbeat:          15 * time.Second,
		AuthRecheck:        5 * time.Second,
		PageWait:           2 * time.Second,
		FirstFetchWait:     10 * time.Second,
		MaxPageBytes:       8 << 20,
		ReadHeaderTimeout:  5 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        2 * time.Minute,
		MaxHeaderBytes:     16 << 10,
		MaxBodyBytes:       64 << 10,
		ShutdownGrace:      10 * time.Second,
	}
}

// Register adds the gateway's flags to fs, with c's current values as defaults.
func (c *Config) Register(fs *flag.FlagSet) {
	c.Kafka.Register(fs, c.Kafka.Brokers)
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP(S) listen address")
	fs.StringVar(&c.TLSCertFile, "tls-cert", c.TLSCertFile, "PEM certificate: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKeyFile, "tls-key", c.TLSKeyFile, "PEM private key for --tls-cert")
	fs.StringVar(&c.TopicTemplate, "topic-template", c.TopicTemplate, "topic of a namespace; must contain {namespace} and match the collector's")
	fs.StringVar(&c.TokenTopic, "token-topic", c.TokenTopic, "compacted Kafka topic holding the token store (created if missing)")
	fs.DurationVar(&c.TokenMaxStaleness, "token-max-staleness", c.TokenMaxStaleness, "refuse every logrouter token once the token store has not confirmed the whole token topic for this long (Kafka down, topic deleted)")
	fs.StringVar(&c.Bucket, "bucket", c.Bucket, "archive bucket URL (gocloud.dev/blob: s3://, gs://, azblob://, file://); empty disables /archive")
	fs.StringVar(&c.ArchivePrefix, "archive-prefix", c.ArchivePrefix, "key prefix of the archive in --bucket")
	fs.BoolVar(&c.KubeAuth, "kube-auth", c.KubeAuth, "also accept Kubernetes tokens (TokenReview + SubjectAccessReview on logs.logrouter.io)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig for --kube-auth (default: in-cluster)")
	fs.StringVar(&c.KubeAudiences, "kube-audiences", c.KubeAudiences, "comma-separated TokenReview audiences (default: the API server's)")
	fs.DurationVar(&c.KubeCacheTTL, "kube-cache-ttl", c.KubeCacheTTL, "how long an allowed TokenReview/SubjectAccessReview answer is cached")
	fs.StringVar(&c.KubeReserved, "kube-reserved-namespaces", c.KubeReserved, "comma-separated namespaces, besides node-system (always), that Kubernetes RBAC never opens: the collector's node file sources, node-<name> (e.g. node-audit); a gateway token from the platform team still does")
	fs.BoolVar(&c.KubePipelines, "kube-pipelines", c.KubePipelines, "serve /v1/namespaces/{ns}/pipelines from the LogPipelines in the Kubernetes API, read with the gateway's own credentials (--kubeconfig or in-cluster; RBAC: list logpipelines.logrouter.io)")
	fs.BoolVar(&c.Console, "console", c.Console, "serve the web console at /ui/")
	fs.StringVar(&c.IdentityHeader, "identity-header", c.IdentityHeader, "header an identity proxy in front of the gateway fills with the user's bearer token (e.g. X-Forwarded-Access-Token); read requests without Authorization use it (never token management)")
	fs.IntVar(&c.MaxStreamsPerToken, "max-streams-per-token", c.MaxStreamsPerToken, "concurrent requests per token or identity (0 = unlimited)")
	fs.Int64Var(&c.BytesPerSecond, "bytes-per-second-per-token", c.BytesPerSecond, "response bytes per second per token or identity (0 = unlimited)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "idle time after which a stream sends a heartbeat")
	fs.DurationVar(&c.AuthRecheck, "auth-recheck", c.AuthRecheck, "how often open streams re-check their credentials (revocation, expiry, RBAC)")
	fs.DurationVar(&c.PageWait, "page-wait", c.PageWait, "longest a page request waits for more of the records it knows exist, once the first arrived")
	fs.DurationVar(&c.FirstFetchWait, "first-fetch-wait", c.FirstFetchWait, "longest a page request waits for the first of the records it knows exist before it answers 503 with Retry-After")
	fs.IntVar(&c.MaxPageBytes, "max-page-bytes", c.MaxPageBytes, "a page ends early once its records reach this size")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time allowed to read request headers")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "time allowed for each write to a client; slower clients are dropped")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "keep-alive idle timeout")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request header block (larger gets 431)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body (token management)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time given to in-flight requests on shutdown")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen is required"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	// The gateway knows a namespace from the path only, not its labels: a template with
	// {label:...} cannot be rendered here.
	if t, err := topic.Parse(c.TopicTemplate); err != nil {
		errs = append(errs, fmt.Errorf("--topic-template: %w", err))
	} else if strings.Count(c.TopicTemplate, "{namespace}") != 1 || t.UsesLabels() {
		errs = append(errs, fmt.Errorf("--topic-template %q: the gateway needs {namespace} exactly once and no {label:...}", c.TopicTemplate))
	} else if err := topic.Valid(c.Topic(strings.Repeat("a", 63))); err != nil {
		errs = append(errs, fmt.Errorf("--topic-template %q: renders invalid Kafka topic names: %w", c.TopicTemplate, err))
	}
	if c.Bucket != "" {
		// A misread URL would serve an empty or wrong archive without a word.
		if err := bucketurl.Check(c.Bucket); err != nil {
			errs = append(errs, fmt.Errorf("--bucket: %w", err))
		}
	}
	if topic.Valid(c.TokenTopic) != nil {
		errs = append(errs, fmt.Errorf("--token-topic %q: not a valid Kafka topic name", c.TokenTopic))
	}
	if c.IdentityHeader != "" {
		// Authorization is read first anyway; a hop-by-hop or Cookie header would mean the
		// browser's ambient credentials, which the console deliberately avoids.
		switch strings.ToLower(c.IdentityHeader) {
		case "authorization", "cookie", "host", "connection":
			errs = append(errs, fmt.Errorf("--identity-header %q: name the proxy's own header (e.g. X-Forwarded-Access-Token); Authorization is always read", c.IdentityHeader))
		default:
			if !validHeaderName(c.IdentityHeader) {
				errs = append(errs, fmt.Errorf("--identity-header %q: not a header name", c.IdentityHeader))
			}
		}
	}
	if c.KubeCacheTTL <= 0 {
		errs = append(errs, errors.New("--kube-cache-ttl must be positive"))
	}
	for _, ns := range c.reserved() {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--kube-reserved-namespaces: %q is not a namespace name: %s", ns, strings.Join(msgs, "; ")))
		}
	}
	if c.MaxStreamsPerToken < 0 {
		errs = append(errs, errors.New("--max-streams-per-token must be >= 0"))
	}
	if c.BytesPerSecond < 0 {
		errs = append(errs, errors.New("--bytes-per-second-per-token must be >= 0"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--heartbeat", c.Heartbeat}, {"--auth-recheck", c.AuthRecheck}, {"--page-wait", c.PageWait},
		{"--first-fetch-wait", c.FirstFetchWait},
		{"--read-header-timeout", c.ReadHeaderTimeout}, {"--write-timeout", c.WriteTimeout},
		{"--idle-timeout", c.IdleTimeout}, {"--shutdown-grace", c.ShutdownGrace},
		{"--token-max-staleness", c.TokenMaxStaleness}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	if c.MaxPageBytes < 1024 {
		errs = append(errs, errors.New("--max-page-bytes must be at least 1024"))
	}
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("--max-header-bytes must be at least 4096"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("--max-body-bytes must be at least 1024"))
	}
	return errors.Join(errs...)
}

// Topic is namespace ns's topic. ns must already be validated.
func (c *Config) Topic(ns string) string {
	return strings.Replace(c.TopicTemplate, "{namespace}", ns, 1)
}

// validHeaderName: RFC 9110 token characters.
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func (c *Config) audiences() []string { return splitList(c.KubeAudiences) }

func (c *Config) reserved() []string { return splitList(c.KubeReserved) }

// splitList is a comma-separated flag's non-empty, trimmed items.
func splitList(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// DecodeConfig reads a JSON configuration over the defaults; unknown fields are errors.
func DecodeConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("gateway config: %w", err)
	}
	if d.More() {
		return Config{}, errors.New("gateway config: trailing data after the JSON object")
	}
	return c, c.Validate()
}
