// Package record defines the log record that the collector produces to Kafka and that the
// archiver, gateway and tenant consumers read: its JSON value (schema version 2, documented in
// docs/record.md and docs/record.schema.json), its Kafka headers and its key.
//
// The collector encodes with AppendJSON, which copies a per-file pre-rendered Source fragment so
// that the per-line cost is one pass over the message. Readers decode with Decode.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the value of the "v" field the collector writes. It changes only on an
// incompatible change; new optional fields do not change it. Version 2 (tenant pipelines)
// defines "fields" as what a pipeline parsed and adds "fields_error" and "lines"; readers accept
// every version from MinSchemaVersion on (SupportedVersion), so topics that still hold version 1
// records are read as before.
const SchemaVersion = 2

// MinSchemaVersion is the oldest version readers accept.
const MinSchemaVersion = 1

// SupportedVersion reports whether readers understand records of version v.
func SupportedVersion(v int) bool { return v >= MinSchemaVersion && v <= SchemaVersion }

// Kafka header keys. Namespace, pod and container are copied into headers so consumers
// (the archiver, the gateway's filters, teams' own consumers) can route without parsing JSON.
const (
	HeaderNamespace = "namespace"
	HeaderPod       = "pod"
	HeaderContainer = "container"
	// HeaderSchema carries "logrouter.v<SchemaVersion>" so a consumer can reject what it does not know.
	HeaderSchema = "schema"
)

// SchemaHeaderValue is the value of HeaderSchema for this version.
var SchemaHeaderValue = schemaHeader(SchemaVersion)

func schemaHeader(v int) []byte { return []byte(fmt.Sprintf("logrouter.v%d", v)) }

// supportedHeaders are the HeaderSchema values of the supported versions.
var supportedHeaders = func() (h [][]byte) {
	for v := MinSchemaVersion; v <= SchemaVersion; v++ {
		h = append(h, schemaHeader(v))
	}
	return h
}()

// SupportedSchemaHeader reports whether h is the HeaderSchema value of a supported version.
func SupportedSchemaHeader(h []byte) bool {
	for _, s := range supportedHeaders {
		if bytes.Equal(h, s) {
			return true
		}
	}
	return false
}

// Stream values.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// Record is one log line (or one chunk of an oversized line) as read back from Kafka.
type Record struct {
	V      int       `json:"v"`
	Time   time.Time `json:"ts"`
	Stream string    `json:"stream,omitempty"`
	// Message is the line without its trailing newline. When the original bytes were not
	// valid UTF-8, Message holds them with each invalid byte replaced by U+FFFD and
	// MessageBase64 holds the exact original bytes.
	Message       string `json:"message"`
	MessageBase64 []byte `json:"message_base64,omitempty"`

	Namespace   string `json:"namespace"`
	Pod         string `json:"pod"`
	PodUID      string `json:"pod_uid,omitempty"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id,omitempty"`
	Node        string `json:"node,omitempty"`
	// Cluster is the collector's --cluster: which cluster the line comes from, when several
	// clusters share one Kafka.
	Cluster string `json:"cluster,omitempty"`

	// File and Offset say where the line starts on the node: together with Node they identify
	// a line, so a consumer can drop the duplicates a collector crash may cause.
	File   string `json:"file,omitempty"`
	Offset int64  `json:"offset"`
	// Src identifies the file on its node ("<device>:<inode>"), which the path does not once
	// kubelet has rotated it: the collector finds its own records by (node, src, offset).
	Src string `json:"src,omitempty"`

	// Split is set when a line longer than the collector's --max-line-bytes was cut into chunks.
	Split *Split `json:"split,omitempty"`
	// ParseError is set when the runtime's framing (CRI or docker json-file) could not be
	// parsed; Message then holds the raw line.
	ParseError string `json:"parse_error,omitempty"`

	// Kubernetes is filled by the enricher; nil when the collector runs on path metadata only.
	Kubernetes *Kubernetes `json:"k8s,omitempty"`
	// Metadata is "partial" when the enricher had no API metadata for the pod in time.
	Metadata string `json:"metadata,omitempty"`

	// Fields holds what a tenant pipeline's steps extracted from the message and set.
	Fields map[string]any `json:"fields,omitempty"`
	// FieldsError is set when a pipeline's parse step failed on the message, which is then
	// shipped unchanged: the step and the reason (schema version 2).
	FieldsError string `json:"fields_error,omitempty"`
	// Lines is how many lines a multiline step joined into Message; absent (0) for a single
	// line (schema version 2).
	Lines int `json:"lines,omitempty"`
}

// Split marks one chunk of an oversized line. Chunks of one line are produced in order, with
// consecutive Index values starting at 0; the last has Last set.
type Split struct {
	Index int  `json:"index"`
	Last  bool `json:"last"`
}

// Kubernetes is the API metadata the enricher adds.
type Kubernetes struct {
	Image           string            `json:"image,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	OwnerKind       string            `json:"owner_kind,omitempty"`
	OwnerName       string            `json:"owner_name,omitempty"`
	NamespaceLabels map[string]string `json:"namespace_labels,omitempty"`
}

// MetadataPartial is the Metadata value for lines shipped without API metadata.
const MetadataPartial = "partial"

// ErrUnsupportedVersion is returned by Decode for a record of a version it does not support.
var ErrUnsupportedVersion = errors.New("unsupported record schema version")

// Decode parses a record value of any supported version (SupportedVersion).
func Decode(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	if !SupportedVersion(r.V) {
		return Record{}, fmt.Errorf("decode record: %w: %d", ErrUnsupportedVersion, r.V)
	}
	if r.Time.IsZero() {
		return Record{}, errors.New(`decode record: "ts" is missing`)
	}
	return r, nil
}

// Key returns the Kafka key: records with the same key go to the same partition, so one
// container's lines keep their order. The container ID is unique per container instance; without
// it (a file path that carries none) the pod UID and container name stand in.
func Key(containerID, podUID, namespace, pod, container string) string {
	if containerID != "" {
		return containerID
	}
	if podUID != "" {
		return podUID + "/" + container
	}
	return namespace + "/" + pod + "/" + container
}
