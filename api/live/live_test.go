package live

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/internal/record"
)

// TestResolve checks every way of starting against a 2-partition topic on kfake where
// partition 0 holds offsets 0-9 with 0-3 deleted, and partition 1 holds 0-4.
func TestResolve(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "logs.a"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var rs []*kgo.Record
	for i := 0; i < 10; i++ {
		rs = append(rs, &kgo.Record{Topic: "logs.a", Partition: 0, Value: []byte("{}"), Timestamp: t0.Add(time.Duration(i) * time.Minute)})
	}
	for i := 0; i < 5; i++ {
		rs = append(rs, &kgo.Record{Topic: "logs.a", Partition: 1, Value: []byte("{}"), Timestamp: t0.Add(time.Duration(i) * time.Minute)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	del.AddOffset("logs.a", 0, 4, -1)
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	cur := func(offs ...int64) string {
		return cursor.Cursor{TopicHash: cursor.TopicHash("logs.a"), Offsets: offs}.String()
	}
	tests := []struct {
		name    string
		topic   string
		start   params.Start
		dflt    params.StartKind
		want    []int64
		skipped []Skip
		err     error
	}{
		{name: "earliest", topic: "logs.a", start: params.Start{Kind: params.StartEarliest}, want: []int64{4, 0}},
		{name: "latest", topic: "logs.a", start: params.Start{Kind: params.StartLatest}, want: []int64{10, 5}},
		{name: "default latest", topic: "logs.a", dflt: params.StartLatest, want: []int64{10, 5}},
		{name: "time", topic: "logs.a", start: params.Start{Kind: params.StartTime, Time: t0.Add(2 * time.Minute)}, want: []int64{4, 2}},
		{name: "time after all", topic: "logs.a", start: params.Start{Kind: params.StartTime, Time: t0.Add(time.Hour)}, want: []int64{10, 5}},
		{name: "cursor", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cur(6, 3)}, want: []int64{6, 3}},
		{name: "cursor before retention", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cur(1, 3)}, want: []int64{4, 3},
			skipped: []Skip{{Partition: 0, From: 1, To: 4, Count: 3}}},
		{name: "cursor missing a partition", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cur(6)}, want: []int64{6, 0}},
		{name: "cursor unknown position", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cur(-1, 2)}, want: []int64{4, 2}},
		{name: "cursor ahead", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cur(11, 0)}, err: ErrCursorAhead},
		{name: "cursor of another topic", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: cursor.Cursor{TopicHash: cursor.TopicHash("logs.b"), Offsets: []int64{0}}.String()}, err: ErrBadCursor},
		{name: "garbage cursor", topic: "logs.a", start: params.Start{Kind: params.StartCursor, Cursor: "zz"}, err: ErrBadCursor},
		{name: "no topic", topic: "logs.none", start: params.Start{Kind: params.StartEarliest}, err: ErrNoTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := r.Resolve(ctx, tt.topic, tt.start, tt.dflt)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Pos.Offsets) != len(tt.want) {
				t.Fatalf("offsets %v, want %v", st.Pos.Offsets, tt.want)
			}
			for i := range tt.want {
				if st.Pos.Offsets[i] != tt.want[i] {
					t.Fatalf("offsets %v, want %v", st.Pos.Offsets, tt.want)
				}
			}
			if len(st.Skipped) != len(tt.skipped) || len(tt.skipped) > 0 && st.Skipped[0] != tt.skipped[0] {
				t.Fatalf("skipped %+v, want %+v", st.Skipped, tt.skipped)
			}
			if st.End[0] != 10 || st.End[1] != 5 {
				t.Fatalf("end %v", st.End)
			}
		})
	}
	// Open consumes from the resolved offsets.
	st, err := r.Resolve(ctx, "logs.a", params.Start{Kind: params.StartCursor, Cursor: cur(8, 4)}, params.StartLatest)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := r.Open("logs.a", st.Pos)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[int32][]int64{}
	for n := 0; n < 3 && ctx.Err() == nil; {
		cons.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			got[rec.Partition] = append(got[rec.Partition], rec.Offset)
			n++
		})
	}
	if len(got[0]) != 2 || got[0][0] != 8 || len(got[1]) != 1 || got[1][0] != 4 {
		t.Fatalf("consumed %v", got)
	}
}

func TestFilterCheck(t *testing.T) {
	hdrs := func(ns, pod, ctr string, schema []byte) []kgo.RecordHeader {
		h := []kgo.RecordHeader{{Key: record.HeaderNamespace, Value: []byte(ns)}, {Key: record.HeaderPod, Value: []byte(pod)}, {Key: record.HeaderContainer, Value: []byte(ctr)}}
		if schema != nil {
			h = append(h, kgo.RecordHeader{Key: record.HeaderSchema, Value: schema})
		}
		return h
	}
	ok := record.SchemaHeaderValue
	tests := []struct {
		name   string
		filter Filter
		rec    kgo.Record
		want   Verdict
	}{
		{"shown", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("a", "p", "c", ok), Value: []byte(`{"message":"x"}`)}, Show},
		{"other namespace", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("b", "p", "c", ok)}, ForeignNamespace},
		{"no namespace header", Filter{Namespace: "a"}, kgo.Record{}, ForeignNamespace},
		{"no schema", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("a", "p", "c", nil)}, BadSchema},
		{"future schema", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("a", "p", "c", []byte("logrouter.v3"))}, BadSchema},
		{"schema v1 (before the upgrade)", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("a", "p", "c", []byte("logrouter.v1")), Value: []byte(`{}`)}, Show},
		{"schema v2", Filter{Namespace: "a"}, kgo.Record{Headers: hdrs("a", "p", "c", []byte("logrouter.v2")), Value: []byte(`{}`)}, Show},
		{"pod filter", Filter{Namespace: "a", Pod: "q"}, kgo.Record{Headers: hdrs("a", "p", "c", ok)}, Filtered},
		{"container filter", Filter{Namespace: "a", Container: "c"}, kgo.Record{Headers: hdrs("a", "p", "c", ok), Value: []byte(`{}`)}, Show},
		{"grep match", Filter{Namespace: "a", Grep: regexp.MustCompile("err")}, kgo.Record{Headers: hdrs("a", "p", "c", ok), Value: []byte(`{"message":"an error"}`)}, Show},
		{"grep miss", Filter{Namespace: "a", Grep: regexp.MustCompile("err")}, kgo.Record{Headers: hdrs("a", "p", "c", ok), Value: []byte(`{"message":"fine","pod":"err"}`)}, Filtered},
		{"grep bad value", Filter{Namespace: "a", Grep: regexp.MustCompile("err")}, kgo.Record{Headers: hdrs("a", "p", "c", ok), Value: []byte(`nope`)}, BadValue},
	}
	for _, tt := range tests {
		if got := tt.filter.Check(&tt.rec); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, Reasons[got], Reasons[tt.want])
		}
	}
}
