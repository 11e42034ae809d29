// Package objectformat encodes archived records into the two object formats (Parquet with
// zstd, NDJSON with zstd) and decodes them back into rows for the query engine.
package objectformat

import (
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/row"
)

// Entry is one Kafka record as the archiver hands it over. Namespace, Pod and Container come
// from the Kafka headers (the archiver routes without decoding the value).
type Entry struct {
	Topic     string
	Partition int32
	Offset    int64
	KafkaTime time.Time
	Namespace string
	Pod       string
	Container string
	Value     []byte
}

// Encoder writes one object.
type Encoder interface {
	// Add appends a record. A value that is not a valid record is still archived, as a row
	// whose message is the raw value and whose parse_error says why; Add reports that through
	// Options.OnInvalid and returns an error only when writing fails.
	Add(e *Entry) error
	// Close finishes the object (footer, zstd frame) without closing the underlying writer.
	Close() error
	// Stats describes what was added so far.
	Stats() *Stats
}

// Options tune an encoder.
type Options struct {
	// RowGroupBytes ends a Parquet row group once this much input is buffered (memory bound).
	RowGroupBytes int64
	// OnInvalid is called for each value that is not a valid record.
	OnInvalid func(e *Entry, err error)
	// TempDir, if set, holds the Parquet writer's page buffers on disk instead of the heap.
	TempDir string
}

// New returns the encoder for a format.
func New(f layout.Format, w io.Writer, o Options) (Encoder, error) {
	switch f {
	case layout.Parquet:
		return newParquetEncoder(w, o), nil
	case layout.NDJSON:
		return newNDJSONEncoder(w, o)
	}
	return nil, fmt.Errorf("objectformat: unknown format %q", f)
}

// maxStatPods bounds the pod names kept in an object's metadata (S3 allows 2 KiB of it).
const (
	maxStatPods      = 64
	maxStatPodsBytes = 1200
)

// Stats are the per-object statistics the query engine prunes with. They travel as the
// object's metadata (blob attributes).
type Stats struct {
	Records    int64
	InputBytes int64
	MinTime    time.Time // of the records' own time (ts)
	MaxTime    time.Time
	pods       map[string]struct{}
	podBytes   int
	// PodsOverflow means the object holds too many pods to list; it cannot be pruned by pod.
	PodsOverflow bool
}

func (s *Stats) add(ts time.Time, pod string, n int) {
	if s.Records == 0 || ts.Before(s.MinTime) {
		s.MinTime = ts
	}
	if s.Records == 0 || ts.After(s.MaxTime) {
		s.MaxTime = ts
	}
	s.Records++
	s.InputBytes += int64(n)
	if s.PodsOverflow {
		return
	}
	if s.pods == nil {
		s.pods = map[string]struct{}{}
	}
	if _, ok := s.pods[pod]; !ok {
		s.pods[pod] = struct{}{}
		s.podBytes += len(pod) + 1
		if len(s.pods) > maxStatPods || s.podBytes > maxStatPodsBytes || strings.Contains(pod, ",") {
			s.PodsOverflow, s.pods = true, nil
		}
	}
}

// Metadata keys (lower case: S3 folds them).
const (
	MetaMinTime = "logrouter-min-ts"
	MetaMaxTime = "logrouter-max-ts"
	MetaRecords = "logrouter-records"
	MetaPods    = "logrouter-pods"
)

// Metadata renders the stats as blob metadata.
func (s *Stats) Metadata() map[string]string {
	m := map[string]string{
		MetaMinTime: strconv.FormatInt(s.MinTime.UnixMicro(), 10),
		MetaMaxTime: strconv.FormatInt(s.MaxTime.UnixMicro(), 10),
		MetaRecords: strconv.FormatInt(s.Records, 10),
	}
	if !s.PodsOverflow {
		pods := make([]string, 0, len(s.pods))
		for p := range s.pods {
			pods = append(pods, p)
		}
		slices.Sort(pods)
		m[MetaPods] = strings.Join(pods, ",")
	}
	return m
}

// ObjectStats is what metadata says about an object; zero Known means nothing (objects not
// written by the archiver): the object must be read.
type ObjectStats struct {
	Known            bool
	MinTime, MaxTime time.Time
	Records          int64
	Pods             map[string]bool // nil: any pod may be inside
}

// ParseMetadata reads Stats.Metadata back.
func ParseMetadata(m map[string]string) ObjectStats {
	var st ObjectStats
	lo, err1 := strconv.ParseInt(m[MetaMinTime], 10, 64)
	hi, err2 := strconv.ParseInt(m[MetaMaxTime], 10, 64)
	n, err3 := strconv.ParseInt(m[MetaRecords], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || lo > hi {
		return st
	}
	st.Known, st.MinTime, st.MaxTime, st.Records = true, time.UnixMicro(lo).UTC(), time.UnixMicro(hi).UTC(), n
	if p, ok := m[MetaPods]; ok {
		st.Pods = map[string]bool{}
		if p != "" {
			for _, name := range strings.Split(p, ",") {
				st.Pods[name] = true
			}
		}
	}
	return st
}

// invalidRow is the row that stands for a value that is not a valid record: nothing is lost.
func invalidRow(r *row.Row, e *Entry, err error) {
	*r = row.Row{
		Time: e.KafkaTime.UnixMicro(), Namespace: e.Namespace, Pod: e.Pod, Container: e.Container,
		ParseError: "archiver: " + err.Error(),
	}
	msg := string(e.Value)
	if !isValidUTF8(e.Value) {
		r.MessageBytes = append([]byte(nil), e.Value...)
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	r.Message = msg
}

func appendBase64(b, src []byte) []byte { return base64.StdEncoding.AppendEncode(b, src) }
