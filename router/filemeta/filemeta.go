// Package filemeta is the contract between the collector and whatever supplies metadata for a
// log file: the path-only provider here, or the Kubernetes enricher (package enricher).
//
// The collector opens a Handle when it starts tracking a file and loads the current Snapshot
// once per read chunk (an atomic load), so a provider can improve metadata at any time (an
// informer that syncs late) without the collector ever waiting on the API server.
package filemeta

import (
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

// PathMeta is what a log file's path says about it (see package router/logpath).
type PathMeta struct {
	Namespace   string
	Pod         string
	PodUID      string // empty for /var/log/containers paths whose target is unknown
	Container   string
	ContainerID string // empty when only the /var/log/pods path is known
	File        string // the path the collector reads (under /var/log/pods when known)
	Src         string // "<device>:<inode>" of File, set by the collector
}

// Snapshot is the metadata in force for a file at one moment. Snapshots are immutable.
type Snapshot struct {
	// Fragment is record.Source.Fragment() for the file: copied into every record.
	Fragment []byte
	// Namespace, Pod, Container are copied into Kafka headers.
	Namespace string
	Pod       string
	Container string
	// Key is the Kafka record key (record.Key).
	Key string
	// NamespaceLabels feed the topic template ({label:<name>}).
	NamespaceLabels map[string]string
	// Kubernetes is the API metadata (pod labels, annotations, owner, image, namespace labels)
	// as structured data, for what decides per file without decoding Fragment: pipeline
	// selectors and conditions. Nil while the file ships with path metadata only. Shared and
	// read-only, like the whole snapshot.
	Kubernetes *record.Kubernetes
	// Retention overrides the topic's retention.ms when the topic is created or updated;
	// zero means the collector's default.
	Retention time.Duration
	// Excluded means the namespace opted out: lines are read and skipped, not produced.
	Excluded bool
}

// Handle gives the current metadata of one tracked file.
type Handle interface {
	// Load returns the current snapshot, or nil while the provider is still waiting (a bounded
	// time) for metadata; the collector then holds the file's lines back and tries again.
	// Load never blocks.
	Load() *Snapshot
	// Close says the collector read the file to its end and let it go, so the provider may drop
	// the pod's metadata once no file of the pod is open (after its grace period).
	Close()
}

// Provider opens handles. Implementations must be safe for concurrent use.
type Provider interface {
	Open(p PathMeta) Handle
}

// PathOnly is the Provider used without a Kubernetes API: metadata from the path, the node name
// from configuration.
type PathOnly struct {
	Origin
}

// Origin is what the collector says of every file it reads: its node and cluster.
type Origin struct {
	Node    string
	Cluster string // empty: not set (--cluster)
}

// Open implements Provider.
func (p PathOnly) Open(m PathMeta) Handle {
	return Static(SnapshotFor(m, p.Origin, nil, false))
}

// SnapshotFor builds the snapshot for path metadata plus optional API metadata.
func SnapshotFor(m PathMeta, o Origin, k8s *record.Kubernetes, partial bool) *Snapshot {
	src := record.Source{
		Namespace: m.Namespace, Pod: m.Pod, PodUID: m.PodUID, Container: m.Container,
		ContainerID: m.ContainerID, Node: o.Node, Cluster: o.Cluster, File: m.File, Src: m.Src, Kubernetes: k8s, MetadataPartial: partial,
	}
	s := &Snapshot{
		Fragment:  src.Fragment(),
		Namespace: m.Namespace, Pod: m.Pod, Container: m.Container,
		Key: record.Key(m.ContainerID, m.PodUID, m.Namespace, m.Pod, m.Container),
	}
	if k8s != nil {
		s.NamespaceLabels = k8s.NamespaceLabels
		s.Kubernetes = k8s
	}
	return s
}

// Static is a Handle whose snapshot never changes.
func Static(s *Snapshot) Handle { return staticHandle{s} }

type staticHandle struct{ s *Snapshot }

func (h staticHandle) Load() *Snapshot { return h.s }
func (h staticHandle) Close()          {}
