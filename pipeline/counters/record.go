// Package counters carries per-pipeline counters from the collectors to the LogPipelines'
// status without every collector writing to the Kubernetes API server: each collector
// publishes its cumulative totals per pipeline (Publisher) to one compacted Kafka topic
// (topic.CountersTopic), keyed by node and pipeline, and the controller reads the topic from its
// start and sums each pipeline over nodes (Fold). Compaction keeps one record per node and
// pipeline, so the topic stays as small as the number of (node, pipeline) pairs.
//
// The record (one definition, here):
//
//	key:   <node>/<namespace>/<pipeline>/<uid>   a LogPipeline; uid is its metadata.uid
//	       <node>/<namespace>/<pipeline>/-       a pipeline of a --pipelines-dir collector
//	value: {"selected":N,"emitted":N,"dropped":N,"sampledOut":N,"throttled":N,
//	        "limitDropped":N,"parseFailures":N,"panicked":N,"time":"<RFC 3339>"}
//	       (an empty value, a tombstone, when the pipeline was deleted)
//
// The UID makes a LogPipeline deleted and created again under its name a new key, which starts
// at zero. Pipelines from a --pipelines-dir have no object (and no status): their key space
// ("-") is the collector's own; the controller's Fold neither sums nor tombstones it.
// A key of three parts is the format before the UID (ErrLegacyKey): the Fold tombstones such
// records, publishers ignore them.
//
// Values are the node's totals since the pipeline first ran there, across collector restarts:
// a Publisher reads its node's last records back before it publishes (Resume), so every
// pipeline's sum over nodes is monotonic. docs/controller.md#counters says why and what a
// SIGKILL loses.
package counters

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key names one pipeline.
type Key struct {
	Namespace string
	Pipeline  string
	// UID is the LogPipeline's metadata.uid; empty for a pipeline from a --pipelines-dir.
	UID string
}

// Dir reports whether k is a --pipelines-dir pipeline (no LogPipeline object).
func (k Key) Dir() bool { return k.UID == "" }

func (k Key) String() string {
	if k.Dir() {
		return k.Namespace + "/" + k.Pipeline
	}
	return k.Namespace + "/" + k.Pipeline + " (uid " + k.UID + ")"
}

// Counts are the cumulative counters of one pipeline (on one node, or summed over nodes).
// The JSON names are the ones of the LogPipeline's status.counters.
type Counts struct {
	Selected      int64 `json:"selected"`
	Emitted       int64 `json:"emitted"`
	Dropped       int64 `json:"dropped"`
	SampledOut    int64 `json:"sampledOut"`
	Throttled     int64 `json:"throttled"`
	LimitDropped  int64 `json:"limitDropped"`
	ParseFailures int64 `json:"parseFailures"`
	// Panicked: records a step panicked on (shipped raw). Absent from records of collectors
	// older than the field: zero.
	Panicked int64 `json:"panicked,omitempty"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Selected += o.Selected
	c.Emitted += o.Emitted
	c.Dropped += o.Dropped
	c.SampledOut += o.SampledOut
	c.Throttled += o.Throttled
	c.LimitDropped += o.LimitDropped
	c.ParseFailures += o.ParseFailures
	c.Panicked += o.Panicked
}

// Sub subtracts o from c.
func (c *Counts) Sub(o Counts) {
	c.Selected -= o.Selected
	c.Emitted -= o.Emitted
	c.Dropped -= o.Dropped
	c.SampledOut -= o.SampledOut
	c.Throttled -= o.Throttled
	c.LimitDropped -= o.LimitDropped
	c.ParseFailures -= o.ParseFailures
	c.Panicked -= o.Panicked
}

// Value is a record's value: a node's counts of one pipeline and when they were taken.
type Value struct {
	Counts
	Time time.Time `json:"time"`
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("invalid counters record")

// ErrLegacyKey (wrapping ErrInvalid) is ParseKey's error for a key without its fourth part, the
// format before UIDs: node and k are still returned.
var ErrLegacyKey = fmt.Errorf("%w: key without a UID (the format before UIDs)", ErrInvalid)

// dirUID is the fourth part of a --pipelines-dir pipeline's key. The API server makes UIDs
// (UUIDs): none is "-".
const dirUID = "-"

// RecordKey is the Kafka key of node's counters of pipeline k. Node, namespace and pipeline
// names are DNS names and UIDs are UUIDs: none contains a slash.
func RecordKey(node string, k Key) []byte {
	uid := k.UID
	if uid == "" {
		uid = dirUID
	}
	return []byte(node + "/" + k.Namespace + "/" + k.Pipeline + "/" + uid)
}

// ParseKey splits a record key.
func ParseKey(b []byte) (node string, k Key, err error) {
	parts := strings.Split(string(b), "/")
	if (len(parts) != 4 && len(parts) != 3) || slices.Contains(parts, "") {
		return "", Key{}, fmt.Errorf("%w: key %q is not <node>/<namespace>/<pipeline>/<uid or ->", ErrInvalid, b)
	}
	k = Key{Namespace: parts[1], Pipeline: parts[2]}
	if len(parts) == 3 {
		return parts[0], k, fmt.Errorf("%w: %q", ErrLegacyKey, b)
	}
	if parts[3] != dirUID {
		k.UID = parts[3]
	}
	return parts[0], k, nil
}

// Encode renders a record's value.
func Encode(v Value) []byte {
	b, _ := json.Marshal(v) // cannot fail: integers and a time
	return b
}

// Decode parses a record's value. An empty value is a tombstone: ok is false.
func Decode(b []byte) (v Value, ok bool, err error) {
	if len(b) == 0 {
		return Value{}, false, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Value{}, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, n := range []int64{v.Selected, v.Emitted, v.Dropped, v.SampledOut, v.Throttled, v.LimitDropped, v.ParseFailures, v.Panicked} {
		if n < 0 {
			return Value{}, false, fmt.Errorf("%w: negative counter in %s", ErrInvalid, b)
		}
	}
	return v, true, nil
}
