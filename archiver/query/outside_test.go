package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/internal/record"
)

// writeSkewed writes one object per Kafka hour in [first, first+hours) of n records each, whose
// own time is their Kafka time plus offset (positive: stamped ahead of Kafka time).
func writeSkewed(t *testing.T, first time.Time, hours, n int, offset time.Duration) (*Engine, []time.Time) {
	t.Helper()
	b := openBucket(t)
	var times []time.Time
	var off int64
	for h := 0; h < hours; h++ {
		hour := first.Add(time.Duration(h) * time.Hour)
		o := layout.Object{Namespace: "ns", Hour: hour, Topic: "logs.ns", Partition: 0, Start: off, End: off + int64(n) - 1, Format: layout.Parquet}
		var es []objectformat.Entry
		for i := 0; i < n; i++ {
			kt := hour.Add(time.Duration(i) * time.Hour / time.Duration(n))
			l := archivetest.Line{Namespace: "ns", Pod: "p", Container: "c", Time: kt.Add(offset), KafkaTime: kt, Message: fmt.Sprint(off)}
			es = append(es, archivetest.Entry(l, o.Topic, 0, off))
			times = append(times, l.Time)
			off++
		}
		if _, err := archivetest.WriteObject(context.Background(), b, "", o, es, true); err != nil {
			t.Fatal(err)
		}
	}
	return New(b, ""), times
}

// TestQueryRecordsOutsideTheWindow: records stamped further ahead of (or behind) their Kafka
// time than the look-behind (look-ahead) allows sit in Kafka hours a query does not read. The
// engine must say so, with the value that covers them; with that value it finds them all and
// says nothing more.
func TestQueryRecordsOutsideTheWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 21, h, m, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name         string
		first        time.Time // first Kafka hour
		hours, n     int
		offset       time.Duration
		since, until time.Time
		unread       int64
		lookbehind   time.Duration // suggested
		lookahead    time.Duration
	}{
		// The case: 1,000 lines stamped 10:00Z, written at 08:27Z (1h33m ahead), and nothing
		// else: only the hour next to the ones read shows them.
		{name: "burst 1h33m ahead", first: at(8, 0), hours: 1, n: 1000, offset: 93 * time.Minute,
			since: at(10, 0), until: at(10, 5), unread: 1, lookbehind: 2 * time.Hour},
		// A node clock 3h ahead all day: the hours read show records far ahead of their Kafka time.
		{name: "clock 3h ahead", first: at(5, 0), hours: 10, n: 120, offset: 3 * time.Hour,
			since: at(10, 0), until: at(10, 5), lookbehind: 3 * time.Hour},
		// Lines shipped 7h30m late (the look-ahead is 6h).
		{name: "lines 7h30m late", first: at(10, 0), hours: 10, n: 120, offset: -450 * time.Minute,
			since: at(4, 0), until: at(4, 5), unread: 1, lookahead: 8 * time.Hour},
		// Within the bounds: nothing to say.
		{name: "50m ahead", first: at(8, 0), hours: 4, n: 120, offset: 50 * time.Minute,
			since: at(10, 0), until: at(10, 5)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eng, times := writeSkewed(t, tt.first, tt.hours, tt.n, tt.offset)
			req := Request{Namespace: "ns", Since: tt.since, Until: tt.until}
			want := 0
			for _, ts := range times {
				if !ts.Before(req.Since) && ts.Before(req.Until) {
					want++
				}
			}
			if want == 0 {
				t.Fatal("no record in the range: the case tests nothing")
			}
			count := func(e *Engine) (int, Stats) {
				n := 0
				st, err := e.Run(context.Background(), req, func(record.Record) error { n++; return nil })
				if err != nil {
					t.Fatal(err)
				}
				return n, st
			}
			got, st := count(eng)
			if o := st.Outside; o.Unread != tt.unread || o.Lookbehind != tt.lookbehind || o.Lookahead != tt.lookahead {
				t.Fatalf("found %d of %d; Outside = %+v, want unread %d, lookbehind %v, lookahead %v", got, want, o, tt.unread, tt.lookbehind, tt.lookahead)
			}
			if !st.Outside.Any() {
				if got != want {
					t.Fatalf("found %d of %d records and said nothing", got, want)
				}
				return
			}
			// The suggested values find every record, and the warning goes away.
			e2 := *eng
			e2.lookbehind, e2.lookahead = max(eng.lookbehind, st.Outside.Lookbehind), max(eng.lookahead, st.Outside.Lookahead)
			got, st = count(&e2)
			if got != want || st.Outside.Any() {
				t.Fatalf("with lookbehind %v, lookahead %v: found %d of %d; Outside = %+v", e2.lookbehind, e2.lookahead, got, want, st.Outside)
			}
		})
	}
}
