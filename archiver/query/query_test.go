package query

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/internal/record"
)

type genRecord struct {
	l   archivetest.Line
	pos archivetest.Pos
}

type genObject struct {
	o     layout.Object
	stats *objectformat.Stats
}

// generate writes an archive of hours hours from start for namespaces, 2 partitions each, one
// object per partition-hour. Partition 0 holds pods p0 and p1, partition 1 pods p2 and p3; one
// line in ten is late (its own time 40 minutes before its Kafka time).
func generate(t testing.TB, b *blob.Bucket, prefix string, start time.Time, hours, perObject int, namespaces []string, format layout.Format) ([]genRecord, []genObject) {
	t.Helper()
	ctx := context.Background()
	var recs []genRecord
	var objs []genObject
	for _, ns := range namespaces {
		for part := int32(0); part < 2; part++ {
			offset := int64(0)
			for h := 0; h < hours; h++ {
				hour := start.Add(time.Duration(h) * time.Hour)
				o := layout.Object{Namespace: ns, Hour: hour, Topic: "logs." + ns, Partition: part, Start: offset, End: offset + int64(perObject) - 1, Format: format}
				var es []objectformat.Entry
				for i := 0; i < perObject; i++ {
					kt := hour.Add(time.Duration(i) * time.Hour / time.Duration(perObject))
					ts := kt.Add(-time.Duration(i%7) * time.Second)
					if i%10 == 3 {
						ts = kt.Add(-40 * time.Minute)
					}
					l := archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("p%d", int(part)*2+i%2), Container: []string{"app", "sidecar"}[i%3/2],
						Time: ts, KafkaTime: kt, Message: fmt.Sprintf("%s %d/%d msg %d", ns, part, offset, i)}
					es = append(es, archivetest.Entry(l, o.Topic, part, offset))
					recs = append(recs, genRecord{l, archivetest.Pos{Topic: o.Topic, Partition: part, Offset: offset}})
					offset++
				}
				st, err := archivetest.WriteObject(ctx, b, prefix, o, es, true)
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, genObject{o, st})
			}
		}
	}
	return recs, objs
}

func expected(recs []genRecord, req Request) []genRecord {
	var out []genRecord
	for _, r := range recs {
		if r.l.Namespace != req.Namespace || r.l.Time.Before(req.Since) || !r.l.Time.Before(req.Until) ||
			req.Pod != "" && r.l.Pod != req.Pod || req.Container != "" && r.l.Container != req.Container ||
			req.Grep != nil && !req.Grep.MatchString(r.l.Message) {
			continue
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b genRecord) int {
		if c := a.l.Time.Compare(b.l.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.pos.Topic, b.pos.Topic); c != 0 {
			return c
		}
		if a.pos.Partition != b.pos.Partition {
			return int(a.pos.Partition - b.pos.Partition)
		}
		return int(a.pos.Offset - b.pos.Offset)
	})
	return out
}

// mayMatch is the pruning the engine must achieve: objects whose statistics overlap.
func mayMatch(objs []genObject, req Request) int {
	n := 0
	for _, o := range objs {
		if o.o.Namespace != req.Namespace || o.stats.MaxTime.Before(req.Since) || !o.stats.MinTime.Before(req.Until) {
			continue
		}
		if req.Pod != "" && !slices.Contains(slices.Collect(mapsKeys(objectformat.ParseMetadata(o.stats.Metadata()).Pods)), req.Pod) {
			continue
		}
		n++
	}
	return n
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func openBucket(t testing.TB) *blob.Bucket {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestQuery(t *testing.T) {
	for _, format := range []layout.Format{layout.Parquet, layout.NDJSON} {
		t.Run(string(format), func(t *testing.T) {
			b := openBucket(t)
			start := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC) // crosses a day boundary
			recs, objs := generate(t, b, "archive", start, 30, 40, []string{"team-a", "team-b"}, format)
			eng := New(b, "archive", WithLookahead(2*time.Hour))
			at := func(h int, m int) time.Time {
				return start.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
			}
			tests := []struct {
				name string
				req  Request
			}{
				{"one hour", Request{Namespace: "team-a", Since: at(5, 0), Until: at(6, 0)}},
				{"across midnight", Request{Namespace: "team-b", Since: at(1, 30), Until: at(3, 10)}},
				{"pod", Request{Namespace: "team-a", Since: at(10, 0), Until: at(11, 0), Pod: "p2"}},
				{"container and grep", Request{Namespace: "team-a", Since: at(0, 0), Until: at(30, 0), Container: "sidecar", Grep: regexp.MustCompile(`msg 1[0-9]$`)}},
				{"before the archive", Request{Namespace: "team-a", Since: at(-10, 0), Until: at(-5, 0)}},
				{"unknown namespace", Request{Namespace: "team-z", Since: at(0, 0), Until: at(30, 0)}},
				{"late lines at the start", Request{Namespace: "team-b", Since: at(-1, 0), Until: at(0, 30)}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					want := expected(recs, tt.req)
					var got []record.Record
					st, err := eng.Run(context.Background(), tt.req, func(r record.Record) error {
						got = append(got, r)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(want) {
						t.Fatalf("%d records, want %d", len(got), len(want))
					}
					for i := range got {
						if got[i].Message != want[i].l.Message || !got[i].Time.Equal(want[i].l.Time) || got[i].Pod != want[i].l.Pod {
							t.Fatalf("record %d = %s %s %q, want %s %s %q", i, got[i].Time, got[i].Pod, got[i].Message, want[i].l.Time, want[i].l.Pod, want[i].l.Message)
						}
					}
					if st.Outside.Any() { // every record is within the bounds
						t.Errorf("false warning: %+v", st.Outside)
					}
					if st.RecordsMatched != int64(len(want)) {
						t.Errorf("RecordsMatched %d", st.RecordsMatched)
					}
					if n := mayMatch(objs, tt.req); st.ObjectsOpened != int64(n) {
						t.Errorf("opened %d objects, want %d (the ones whose statistics overlap)", st.ObjectsOpened, n)
					}
					// Path pruning: only the hours of the range (plus lookbehind/lookahead) are listed.
					if tt.name == "one hour" && (st.ObjectsListed > 2*(1+1+2) || st.ObjectsOpened > 4) {
						t.Errorf("one-hour query listed %d, opened %d of %d objects", st.ObjectsListed, st.ObjectsOpened, len(objs))
					}
				})
			}
		})
	}
}

func TestQueryReadsObjectsWithoutStats(t *testing.T) {
	b := openBucket(t)
	hour := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	o := layout.Object{Namespace: "ns", Hour: hour, Topic: "logs.ns", Partition: 0, Start: 0, End: 1, Format: layout.Parquet}
	es := []objectformat.Entry{
		archivetest.Entry(archivetest.Line{Namespace: "ns", Pod: "p", Container: "c", Time: hour.Add(time.Minute), KafkaTime: hour.Add(time.Minute), Message: "one"}, "logs.ns", 0, 0),
		archivetest.Entry(archivetest.Line{Namespace: "ns", Pod: "p", Container: "c", Time: hour.Add(-time.Minute), KafkaTime: hour.Add(time.Minute), Message: "zero"}, "logs.ns", 0, 1),
	}
	if _, err := archivetest.WriteObject(context.Background(), b, "", o, es, false); err != nil {
		t.Fatal(err)
	}
	// A stray file in the partition is not an object of the archive.
	b.WriteAll(context.Background(), layout.HourDir("ns", hour)+"README", []byte("x"), nil)
	var msgs []string
	st, err := New(b, "").Run(context.Background(), Request{Namespace: "ns", Since: hour.Add(-time.Hour), Until: hour.Add(time.Hour)}, func(r record.Record) error {
		msgs = append(msgs, r.Message)
		return nil
	})
	if err != nil || strings.Join(msgs, ",") != "zero,one" || st.ObjectsOpened != 1 || st.ObjectsListed != 1 {
		t.Fatalf("%v %v %+v", err, msgs, st)
	}
}

func TestQueryErrors(t *testing.T) {
	b := openBucket(t)
	generate(t, b, "", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), 2, 5, []string{"ns"}, layout.Parquet)
	eng := New(b, "")
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		req  Request
		want error
	}{
		{Request{Since: now, Until: now.Add(time.Hour)}, ErrNoNamespace},
		{Request{Namespace: "ns", Since: now, Until: now}, ErrBadRange},
		{Request{Namespace: "../x", Since: now, Until: now.Add(time.Hour)}, nil},
	} {
		_, err := eng.Run(context.Background(), tt.req, func(record.Record) error { return nil })
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%+v: err = %v, want %v", tt.req, err, tt.want)
		}
	}
	_, err := New(b, "", WithMaxBufferedRecords(3)).Run(context.Background(), Request{Namespace: "ns", Since: now, Until: now.Add(2 * time.Hour)}, func(record.Record) error { return nil })
	if !errors.Is(err, ErrTooManyRecords) {
		t.Errorf("buffer bound: %v", err)
	}
	stop := errors.New("client went away")
	n := 0
	_, err = eng.Run(context.Background(), Request{Namespace: "ns", Since: now, Until: now.Add(2 * time.Hour)}, func(record.Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("emit error: %v after %d", err, n)
	}
}

// TestBefore: Request.Before keeps only the records below a Kafka position, partition by
// partition, gives each its position, and does not open the objects wholly at or after it.
func TestBefore(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	recs, _ := generate(t, b, "", start, 6, 20, []string{"ns"}, layout.Parquet)
	e := New(b, "")
	for _, before := range [][]int64{{0, 0}, {25, 90}, {120, 120}, {45}} {
		req := Request{Namespace: "ns", Topic: "logs.ns", Since: start.Add(-time.Hour), Until: start.Add(8 * time.Hour), Before: before}
		var got []Position
		st, err := e.RunPositioned(context.Background(), req, func(r record.Record, p Position) error {
			got = append(got, p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, r := range recs {
			if int(r.pos.Partition) < len(before) && r.pos.Offset < before[r.pos.Partition] {
				want++
			}
		}
		for _, p := range got {
			if int(p.Partition) >= len(before) || p.Offset >= before[p.Partition] || p.Topic != "logs.ns" {
				t.Fatalf("before %v: got %+v", before, p)
			}
		}
		// Objects hold 20 offsets each: the ones starting at or after the position stay shut.
		opened := int64(0)
		for _, o := range before {
			opened += min((o+19)/20, 6)
		}
		if len(got) != want || st.ObjectsOpened != opened {
			t.Fatalf("before %v: %d records (want %d), %d objects opened (want %d)", before, len(got), want, st.ObjectsOpened, opened)
		}
	}
	if _, err := e.Run(context.Background(), Request{Namespace: "ns", Since: start, Until: start.Add(time.Hour), Before: []int64{1}}, func(record.Record) error { return nil }); err == nil {
		t.Fatal("Before without Topic: no error")
	}
}
