package enricher

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/logrouter/logrouter/enricher/allowlist"
)

// Config configures the enricher. The zero value is not useful: start from DefaultConfig.
type Config struct {
	// Enabled turns the enricher on; when false the collector uses filemeta.PathOnly.
	Enabled bool
	// Kubeconfig is a kubeconfig file for running outside a cluster; empty means in-cluster.
	Kubeconfig string
	// NodeName is the node whose pods are watched (spec.nodeName); from the downward API.
	NodeName string
	// Cluster is put in every record (the collector's --cluster, copied like NodeName).
	Cluster string
	// PodLabels, PodAnnotations and NamespaceLabels are allow-lists (package allowlist) of the
	// keys copied into records.
	PodLabels       string
	PodAnnotations  string
	NamespaceLabels string
	// MetadataWait bounds how long a file of a pod the informer does not know yet is held back
	// before its lines ship with path metadata and a "metadata: partial" marker.
	MetadataWait time.Duration
	// DeletedPodGrace is how long a deleted pod's metadata is kept after the last of its files
	// was fully read (or after the deletion when none is open), for files that show up late.
	DeletedPodGrace time.Duration
}

// AnnotationPrefix is the prefix of the annotations logrouter reads and, by default, copies.
const AnnotationPrefix = "logrouter.io/"

// Namespace annotations the enricher acts on.
const (
	AnnotationExclude   = AnnotationPrefix + "exclude"
	AnnotationRetention = AnnotationPrefix + "retention"
)

// DefaultConfig returns the defaults: all labels, annotations under logrouter.io/.
func DefaultConfig() Config {
	return Config{
		Enabled:         true,
		PodLabels:       "*",
		PodAnnotations:  AnnotationPrefix + "*",
		NamespaceLabels: "*",
		MetadataWait:    5 * time.Second,
		DeletedPodGrace: 5 * time.Minute,
	}
}

// Register adds the enricher's flags to fs with c's values as defaults: --kubernetes,
// --kubeconfig and the --kubernetes-* flags. It does not add --node-name: the collector owns
// that flag (router.Config.Node) and copies it into NodeName.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "kubernetes", c.Enabled, "enrich records with Kubernetes API metadata (false: path metadata only)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig file for running outside the cluster (default: in-cluster config)")
	fs.StringVar(&c.PodLabels, "kubernetes-pod-labels", c.PodLabels, "allow-list of pod label keys copied into records: comma-separated globs, '!' excludes")
	fs.StringVar(&c.PodAnnotations, "kubernetes-pod-annotations", c.PodAnnotations, "allow-list of pod annotation keys copied into records")
	fs.StringVar(&c.NamespaceLabels, "kubernetes-namespace-labels", c.NamespaceLabels, "allow-list of namespace label keys copied into records and offered to the topic template")
	fs.DurationVar(&c.MetadataWait, "kubernetes-metadata-wait", c.MetadataWait, "how long a new file waits for its pod's metadata before shipping with path metadata only")
	fs.DurationVar(&c.DeletedPodGrace, "kubernetes-deleted-pod-grace", c.DeletedPodGrace, "how long a deleted pod's metadata is kept after its files were read")
}

// ErrConfig is wrapped by Validate's errors.
var ErrConfig = errors.New("invalid enricher config")

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Enabled && c.NodeName == "" {
		errs = append(errs, fmt.Errorf("%w: node name is empty: set --node-name (downward API spec.nodeName), or --kubernetes=false", ErrConfig))
	}
	for _, l := range []struct{ flag, v string }{
		{"kubernetes-pod-labels", c.PodLabels},
		{"kubernetes-pod-annotations", c.PodAnnotations},
		{"kubernetes-namespace-labels", c.NamespaceLabels},
	} {
		if _, err := allowlist.Parse(l.v); err != nil {
			errs = append(errs, fmt.Errorf("%w: --%s: %w", ErrConfig, l.flag, err))
		}
	}
	if c.MetadataWait < 0 {
		errs = append(errs, fmt.Errorf("%w: --kubernetes-metadata-wait %v is negative", ErrConfig, c.MetadataWait))
	}
	if c.DeletedPodGrace < 0 {
		errs = append(errs, fmt.Errorf("%w: --kubernetes-deleted-pod-grace %v is negative", ErrConfig, c.DeletedPodGrace))
	}
	return errors.Join(errs...)
}

// fileConfig is Config as written in a JSON file: durations as Go duration strings.
type fileConfig struct {
	Kubernetes      *bool   `json:"kubernetes"`
	Kubeconfig      *string `json:"kubeconfig"`
	NodeName        *string `json:"nodeName"`
	PodLabels       *string `json:"podLabels"`
	PodAnnotations  *string `json:"podAnnotations"`
	NamespaceLabels *string `json:"namespaceLabels"`
	MetadataWait    *string `json:"metadataWait"`
	DeletedPodGrace *string `json:"deletedPodGrace"`
}

// DecodeConfig reads a JSON object over base (normally DefaultConfig()): fields it names
// replace base's, unknown fields are errors, and the result is validated.
func DecodeConfig(r io.Reader, base Config) (Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f fileConfig
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("%w: decode: %w", ErrConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: decode: data after the JSON object", ErrConfig)
	}
	c := base
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	if f.Kubernetes != nil {
		c.Enabled = *f.Kubernetes
	}
	set(&c.Kubeconfig, f.Kubeconfig)
	set(&c.NodeName, f.NodeName)
	set(&c.PodLabels, f.PodLabels)
	set(&c.PodAnnotations, f.PodAnnotations)
	set(&c.NamespaceLabels, f.NamespaceLabels)
	var errs []error
	for _, d := range []struct {
		name string
		src  *string
		dst  *time.Duration
	}{{"metadataWait", f.MetadataWait, &c.MetadataWait}, {"deletedPodGrace", f.DeletedPodGrace, &c.DeletedPodGrace}} {
		if d.src == nil {
			continue
		}
		v, err := time.ParseDuration(*d.src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrConfig, d.name, err))
			continue
		}
		*d.dst = v
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
