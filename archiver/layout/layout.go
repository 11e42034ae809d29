// Package layout names the archive's objects: the Hive-style data objects analysts read, the
// staging objects uploads go to first, and the per-partition claim objects that make each
// offset range's archiving happen exactly once (see docs/archive.md).
package layout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Format is an object format; its value is the file extension.
type Format string

// Formats.
const (
	Parquet Format = "parquet"
	NDJSON  Format = "ndjson.zst"
)

// ParseFormat accepts "parquet" and "ndjson" (or its extension).
func ParseFormat(s string) (Format, error) {
	switch s {
	case "parquet":
		return Parquet, nil
	case "ndjson", "ndjson.zst":
		return NDJSON, nil
	}
	return "", fmt.Errorf("format %q: want parquet or ndjson", s)
}

// offsetDigits zero-pads offsets so names sort in offset order.
const offsetDigits = 20

// Object identifies one data object: the records of one namespace among Kafka offsets
// [Start, End] of one topic partition, archived in the partition of hour Hour (UTC).
type Object struct {
	Namespace  string
	Hour       time.Time // truncated to the hour, UTC
	Topic      string
	Partition  int32
	Start, End int64
	Format     Format
}

// Join joins a prefix and a key ("" prefix means the bucket root).
func Join(prefix, key string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// HourDir is the partition directory of a namespace and hour, without the prefix:
// namespace=<ns>/dt=YYYY-MM-DD/hour=HH/.
func HourDir(namespace string, hour time.Time) string {
	h := hour.UTC()
	return fmt.Sprintf("namespace=%s/dt=%s/hour=%02d/", namespace, h.Format("2006-01-02"), h.Hour())
}

// NamespaceDir is namespace=<ns>/.
func NamespaceDir(namespace string) string { return "namespace=" + namespace + "/" }

// Name is the object's file name: <topic>+<partition>+<start>+<end>.<ext>, offsets zero-padded.
func (o Object) Name() string {
	return fmt.Sprintf("%s+%d+%0*d+%0*d.%s", o.Topic, o.Partition, offsetDigits, o.Start, offsetDigits, o.End, o.Format)
}

// Key is the object's key under prefix.
func (o Object) Key(prefix string) string {
	return Join(prefix, HourDir(o.Namespace, o.Hour)+o.Name())
}

// ErrNotDataKey is returned by ParseKey for keys that are not data objects (staging, claims,
// the fileblob attribute files, anything else in the bucket).
var ErrNotDataKey = errors.New("not an archive data object key")

// ParseKey parses a data object key under prefix.
func ParseKey(prefix, key string) (Object, error) {
	fail := func(why string) (Object, error) {
		return Object{}, fmt.Errorf("%w: %q: %s", ErrNotDataKey, key, why)
	}
	if p := strings.Trim(prefix, "/"); p != "" {
		if !strings.HasPrefix(key, p+"/") {
			return fail("outside prefix")
		}
		key = key[len(p)+1:]
	}
	parts := strings.Split(key, "/")
	if len(parts) != 4 {
		return fail("want namespace=/dt=/hour=/name")
	}
	ns, ok1 := strings.CutPrefix(parts[0], "namespace=")
	dt, ok2 := strings.CutPrefix(parts[1], "dt=")
	hh, ok3 := strings.CutPrefix(parts[2], "hour=")
	if !ok1 || !ok2 || !ok3 || ns == "" {
		return fail("bad partition directories")
	}
	day, err := time.Parse("2006-01-02", dt)
	if err != nil {
		return fail("bad dt")
	}
	h, err := strconv.Atoi(hh)
	if err != nil || len(hh) != 2 || h < 0 || h > 23 {
		return fail("bad hour")
	}
	o := Object{Namespace: ns, Hour: day.Add(time.Duration(h) * time.Hour)}
	name := parts[3]
	switch {
	case strings.HasSuffix(name, "."+string(Parquet)):
		o.Format, name = Parquet, strings.TrimSuffix(name, "."+string(Parquet))
	case strings.HasSuffix(name, "."+string(NDJSON)):
		o.Format, name = NDJSON, strings.TrimSuffix(name, "."+string(NDJSON))
	default:
		return fail("unknown extension")
	}
	f := strings.Split(name, "+")
	if len(f) != 4 || f[0] == "" {
		return fail("want <topic>+<partition>+<start>+<end>")
	}
	o.Topic = f[0]
	p, err := strconv.ParseInt(f[1], 10, 32)
	if err != nil || p < 0 {
		return fail("bad partition")
	}
	o.Partition = int32(p)
	if len(f[2]) != offsetDigits || len(f[3]) != offsetDigits {
		return fail("offsets must have 20 digits")
	}
	if o.Start, err = strconv.ParseInt(f[2], 10, 64); err != nil || o.Start < 0 {
		return fail("bad start offset")
	}
	if o.End, err = strconv.ParseInt(f[3], 10, 64); err != nil || o.End < o.Start {
		return fail("bad end offset")
	}
	return o, nil
}

// ClaimKey is the key of the claim for the range of topic/partition starting at start. Its
// name depends on start alone, so a writer that resumes at a range boundary finds it with one
// read, and two writers that start at the same boundary contend for the same key.
func ClaimKey(prefix, topic string, partition int32, start int64) string {
	return Join(prefix, fmt.Sprintf("_claims/%s/%d/%0*d.json", topic, partition, offsetDigits, start))
}

// StagingKey is where one upload attempt puts a data object before it is claimed. attempt makes
// concurrent attempts (a zombie and the partition's new owner) write different keys.
//
// The name is flat (no directory per attempt: fileblob would leave one empty directory behind
// per object) and is the final name with StagingExt appended, so that it never ends in a data
// extension and an analyst's glob such as <root>/**/*.parquet does not pick up an upload a
// crash left behind (DuckDB does not skip _-prefixed directories the way Hive engines do).
// Staging keys of earlier versions, _staging/<attempt>/<namespace>+<name>, are still under
// StagingDir and swept from there.
func StagingKey(prefix string, o Object, attempt string) string {
	return Join(prefix, "_staging/"+attempt+"+"+o.Namespace+"+"+o.Name()+StagingExt)
}

// StagingExt ends every staging object's name.
const StagingExt = ".staged"

// StagingDir is the prefix of every staging object (for lifecycle rules and sweeps).
func StagingDir(prefix string) string { return Join(prefix, "_staging/") }

// ValidNamespace reports whether ns is a Kubernetes namespace name (an RFC 1123 label), the
// only names that may become a partition directory.
func ValidNamespace(ns string) bool {
	if len(ns) == 0 || len(ns) > 63 {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(ns)-1:
		default:
			return false
		}
	}
	return true
}
