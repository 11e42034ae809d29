package query

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/internal/record"
)

// claimChain writes a claim chain for partition 0 of logs.team-a over ranges (each [start,
// end]), as the archiver does: one object per namespace present, records whose own times run
// against their offsets, every third range shared with team-b (a topic several namespaces
// write), the fourth claimed but not published. Records are "team-a offset N" messages of pods
// p0/p1.
func claimChain(t *testing.T, b *blob.Bucket, format layout.Format, ranges [][2]int64) {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i, rg := range ranges {
		c := layout.Claim{Topic: "logs.team-a", Partition: 0, Start: rg[0], End: rg[1]}
		byNS := map[string][]objectformat.Entry{}
		for off := rg[0]; off <= rg[1]; off++ {
			ns := "team-a"
			if i%3 == 2 && off%2 == 1 {
				ns = "team-b"
			}
			kt := base.Add(time.Duration(off) * time.Second)
			l := archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("p%d", off%2), Container: "app",
				Time: kt.Add(-time.Duration(off%5) * time.Hour), KafkaTime: kt, Message: fmt.Sprintf("%s offset %d", ns, off)}
			byNS[ns] = append(byNS[ns], archivetest.Entry(l, c.Topic, 0, off))
		}
		for _, ns := range []string{"team-a", "team-b"} {
			es := byNS[ns]
			if es == nil {
				continue
			}
			slices.Reverse(es) // the engine orders by offset, not by the object's row order
			o := layout.Object{Namespace: ns, Hour: base.Add(time.Duration(rg[0]) * time.Second).Truncate(time.Hour), Topic: c.Topic, Partition: 0, Start: rg[0], End: rg[1], Format: format}
			if _, err := archivetest.WriteObject(ctx, b, "arch", o, es, true); err != nil {
				t.Fatal(err)
			}
			co := layout.ClaimObject{Key: o.Key("arch"), Staging: layout.StagingKey("arch", o, fmt.Sprint("attempt-", i)), Namespace: ns, Records: int64(len(es))}
			if i == 3 {
				// Claimed, not yet published (the writer died in between): only the staged copy.
				data, err := b.ReadAll(ctx, co.Key)
				if err != nil {
					t.Fatal(err)
				}
				attrs, err := b.Attributes(ctx, co.Key)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.WriteAll(ctx, co.Staging, data, &blob.WriterOptions{Metadata: attrs.Metadata}); err != nil {
					t.Fatal(err)
				}
				if err := b.Delete(ctx, co.Key); err != nil {
					t.Fatal(err)
				}
			}
			c.Objects = append(c.Objects, co)
		}
		if err := b.WriteAll(ctx, layout.ClaimKey("arch", c.Topic, 0, c.Start), c.Encode(), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunOffsets: a range of offsets is served from the claim chain in offset order, exactly
// the records of the namespace in it, with the filters; where the archive starts later or ends
// earlier, First and Next say so. The ranges cross decimal boundaries (9/10, 99/100, 999/1000),
// where the claim search changes digits.
func TestRunOffsets(t *testing.T) {
	ranges := [][2]int64{{5, 9}, {10, 10}, {11, 98}, {99, 101}, {102, 998}, {999, 1003}, {1004, 1200}}
	for _, format := range []layout.Format{layout.Parquet, layout.NDJSON} {
		b := openBucket(t)
		claimChain(t, b, format, ranges)
		e := New(b, "arch")
		shared := func(off int64) bool { // team-b's offsets: odd ones of every third range
			for i, rg := range ranges {
				if off >= rg[0] && off <= rg[1] {
					return i%3 == 2 && off%2 == 1
				}
			}
			return false
		}
		tests := []struct {
			name            string
			req             OffsetRequest
			first, next     int64
			podEven, grep5s bool
		}{
			{name: "inside one claim", req: OffsetRequest{From: 20, To: 40}, first: 20, next: 40},
			{name: "across claims and boundaries", req: OffsetRequest{From: 8, To: 1100}, first: 8, next: 1100},
			{name: "starts at a claim", req: OffsetRequest{From: 999, To: 1004}, first: 999, next: 1004},
			{name: "single offset claim", req: OffsetRequest{From: 10, To: 11}, first: 10, next: 11},
			{name: "archive starts later", req: OffsetRequest{From: 0, To: 12}, first: 5, next: 12},
			{name: "archive ends earlier", req: OffsetRequest{From: 1150, To: 1300}, first: 1150, next: 1201},
			{name: "beyond the archive", req: OffsetRequest{From: 1201, To: 1300}, first: 1201, next: 1201},
			{name: "before the archive", req: OffsetRequest{From: 0, To: 5}, first: 0, next: 0},
			{name: "pod filter", req: OffsetRequest{From: 90, To: 110, Pod: "p0"}, first: 90, next: 110, podEven: true},
			{name: "grep", req: OffsetRequest{From: 0, To: 1201, Grep: regexp.MustCompile(`offset \d*5$`)}, first: 5, next: 1201, grep5s: true},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprint(format, "/", tt.name), func(t *testing.T) {
				req := tt.req
				req.Namespace, req.Topic = "team-a", "logs.team-a"
				var got []int64
				st, err := e.RunOffsets(context.Background(), req, func(r record.Record, at Position) error {
					if r.Message != fmt.Sprintf("team-a offset %d", at.Offset) || at.Partition != 0 || at.Topic != "logs.team-a" {
						t.Errorf("record %q at %+v", r.Message, at)
					}
					got = append(got, at.Offset)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var want []int64
				for off := tt.first; off < tt.next; off++ {
					if !shared(off) && (!tt.podEven || off%2 == 0) && (!tt.grep5s || off%10 == 5) {
						want = append(want, off)
					}
				}
				if st.First != tt.first || st.Next != tt.next || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("First %d Next %d, got %v; want %d %d %v", st.First, st.Next, got, tt.first, tt.next, want)
				}
			})
		}
	}
}

// TestNearestClaim checks the digit walk against a scan of the claim starts.
func TestNearestClaim(t *testing.T) {
	b := openBucket(t)
	starts := []int64{0, 7, 10, 19, 90, 100, 109, 990, 1000, 1001, 10000, 99999, 100000}
	ctx := context.Background()
	for _, s := range starts {
		if err := b.WriteAll(ctx, layout.ClaimKey("", "logs.x", 3, s), []byte("{}"), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Not claims: another partition's, and a temporary file beside them.
	if err := b.WriteAll(ctx, layout.ClaimKey("", "logs.x", 30, 50), []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, "_claims/logs.x/3/00000000000000000050.json.tmp", []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	e := New(b, "")
	dir := "_claims/logs.x/3/"
	// Every offset up to 120, and those around each claim and each power of ten (where the
	// walk changes digits), checked against a scan of the starts.
	offs := map[int64]bool{}
	for off := int64(0); off <= 120; off++ {
		offs[off] = true
	}
	around := slices.Clone(starts)
	for p := int64(1); p <= 1e6; p *= 10 {
		around = append(around, p)
	}
	for _, x := range around {
		for d := int64(-3); d <= 3; d++ {
			offs[max(x+d, 0)] = true
		}
	}
	for _, off := range slices.Sorted(maps.Keys(offs)) {
		wantDown, wantUp := int64(-1), int64(-1)
		for _, s := range starts {
			if s <= off {
				wantDown = s
			}
			if s >= off && wantUp < 0 {
				wantUp = s
			}
		}
		for _, down := range []bool{true, false} {
			got, ok, err := e.nearestClaim(ctx, dir, off, down)
			want := map[bool]int64{true: wantDown, false: wantUp}[down]
			if err != nil || ok != (want >= 0) || ok && got != want {
				t.Fatalf("nearest(%d, down=%v) = %d %v %v, want %d", off, down, got, ok, err, want)
			}
		}
	}
	if _, err := e.RunOffsets(ctx, OffsetRequest{Namespace: "x", Topic: "logs.x", From: 5, To: 5}, nil); err != ErrBadOffsets {
		t.Fatalf("empty range: %v", err)
	}
}
