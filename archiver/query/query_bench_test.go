package query

import (
	"context"
	"testing"
	"time"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/internal/record"
)

// BenchmarkQueryOnePodOneHour30Days queries one pod over one hour of a 30-day archive (720
// hours, 2 partitions, one Parquet object per partition-hour, 200 records each) on fileblob.
//
//	go test -run XXX -bench BenchmarkQueryOnePodOneHour30Days -benchtime 20x ./archiver/query/
func BenchmarkQueryOnePodOneHour30Days(b *testing.B) {
	bk := openBucket(b)
	start := time.Date(2026, 10, 22, 0, 0, 0, 0, time.UTC)
	_, objs := generate(b, bk, "", start, 30*24, 200, []string{"team-a"}, layout.Parquet)
	eng := New(bk, "")
	req := Request{Namespace: "team-a", Pod: "p2", Since: start.Add(15*24*time.Hour + 10*time.Hour), Until: start.Add(15*24*time.Hour + 11*time.Hour)}
	var st Stats
	b.ResetTimer()
	for b.Loop() {
		var n int
		var err error
		st, err = eng.Run(context.Background(), req, func(record.Record) error { n++; return nil })
		if err != nil || n == 0 {
			b.Fatalf("%v, %d records", err, n)
		}
	}
	b.ReportMetric(float64(len(objs)), "objects_in_archive")
	b.ReportMetric(float64(st.ObjectsListed), "objects_listed")
	b.ReportMetric(float64(st.ObjectsOpened), "objects_opened")
	b.ReportMetric(float64(st.RecordsMatched), "records_matched")
}
