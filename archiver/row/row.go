// Package row is the archive's row: the fixed, documented schema of the Parquet objects
// (docs/archive.md), and the conversion of a Kafka record's value (record schema v1 and v2) into it
// without a general-purpose JSON decoder, which would cost more than the Parquet encoding.
package row

import (
	"encoding/json"
	"time"

	"github.com/logrouter/logrouter/internal/record"
)

// Row is one archived record. The Parquet column names are the tags; times are
// TIMESTAMP(MICROS, isAdjustedToUTC=true), which Spark, Trino, Athena and DuckDB all read.
type Row struct {
	Time           int64             `parquet:"ts,timestamp(microsecond:utc)"`
	Namespace      string            `parquet:"namespace,dict"`
	Pod            string            `parquet:"pod,dict"`
	Container      string            `parquet:"container,dict"`
	Node           string            `parquet:"node,dict"`
	Stream         string            `parquet:"stream,dict"`
	Message        string            `parquet:"message"`
	Labels         map[string]string `parquet:"labels"`
	KafkaTopic     string            `parquet:"kafka_topic,dict"`
	KafkaPartition int32             `parquet:"kafka_partition"`
	KafkaOffset    int64             `parquet:"kafka_offset"`
	KafkaTime      int64             `parquet:"kafka_timestamp,timestamp(microsecond:utc)"`
	PodUID         string            `parquet:"pod_uid,dict"`
	ContainerID    string            `parquet:"container_id,dict"`
	File           string            `parquet:"file,dict"`
	FileOffset     int64             `parquet:"file_offset"`
	// MessageBytes holds the exact original bytes when they were not valid UTF-8.
	MessageBytes []byte `parquet:"message_bytes,optional"`
	SplitIndex   *int32 `parquet:"split_index,optional"`
	SplitLast    *bool  `parquet:"split_last,optional"`
	ParseError   string `parquet:"parse_error,optional"`
	Metadata     string `parquet:"metadata,optional"`
	// Kubernetes is the record's "k8s" object as JSON (labels are also in Labels).
	Kubernetes string `parquet:"k8s,optional"`
	// Fields is the record's "fields" object as JSON (DuckDB: json_extract_string(fields, '$.level')).
	Fields string `parquet:"fields,optional"`
	// FieldsError is the record's "fields_error": a pipeline's parse step failed.
	FieldsError string `parquet:"fields_error,optional"`
	// Lines is the record's "lines": how many lines a multiline step joined (null for one).
	Lines int32 `parquet:"lines,optional"`
	// Cluster is the record's "cluster" (the collector's --cluster), null when not set.
	Cluster string `parquet:"cluster,dict,optional"`
}

// TimeOf returns the row's time.
func (r *Row) TimeOf() time.Time { return time.UnixMicro(r.Time).UTC() }

// Record converts the row back into a record. Kubernetes and Fields JSON that does not decode
// (only possible for rows not written by the archiver) is dropped from the record.
func (r *Row) Record() record.Record {
	rec := record.Record{
		V: record.SchemaVersion, Time: r.TimeOf(), Stream: r.Stream, Message: r.Message,
		MessageBase64: r.MessageBytes, Namespace: r.Namespace, Pod: r.Pod, PodUID: r.PodUID,
		Container: r.Container, ContainerID: r.ContainerID, Node: r.Node, Cluster: r.Cluster, File: r.File,
		Offset: r.FileOffset, ParseError: r.ParseError, Metadata: r.Metadata,
		FieldsError: r.FieldsError, Lines: int(r.Lines),
	}
	if r.SplitIndex != nil {
		rec.Split = &record.Split{Index: int(*r.SplitIndex), Last: r.SplitLast != nil && *r.SplitLast}
	}
	if r.Kubernetes != "" {
		var k record.Kubernetes
		if json.Unmarshal([]byte(r.Kubernetes), &k) == nil {
			rec.Kubernetes = &k
		}
	} else if len(r.Labels) > 0 {
		rec.Kubernetes = &record.Kubernetes{Labels: r.Labels}
	}
	if r.Fields != "" {
		var f map[string]any
		if json.Unmarshal([]byte(r.Fields), &f) == nil {
			rec.Fields = f
		}
	}
	return rec
}
