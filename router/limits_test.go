package router

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/loadgen"
)

// Kafka's default max.message.bytes: what topics created by someone else usually have.
const kafkaDefaultLimit = 1048588

// preCreate creates topics the way a platform team does, before the collector runs: with
// Kafka's defaults, or with max.message.bytes = limit when limit > 0.
func preCreate(t testing.TB, brokers string, partitions int32, limit int, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var configs map[string]*string
	if limit > 0 {
		v := strconv.Itoa(limit)
		configs = map[string]*string{"max.message.bytes": &v}
	}
	resps, err := kadm.NewClient(cl).CreateTopics(context.Background(), partitions, 1, configs, topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func alterLimit(t testing.TB, brokers, topic string, limit int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := strconv.Itoa(limit)
	resps, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		for _, r := range resps {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// randomLine is n incompressible bytes: every byte value but newline, so it also has the
// escaping worst cases (control characters, quotes, invalid UTF-8). seed makes it reproducible.
func randomLine(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		for b[i] = byte(rng.UintN(256)); b[i] == '\n'; b[i] = byte(rng.UintN(256)) {
		}
	}
	b[0] = 0x01 // starts with a byte that escapes to six
	return string(b)
}

// writer records what it writes per container, in order.
type writer struct {
	t    testing.TB
	want map[string][]string // container ID -> messages
}

func (w *writer) line(c *loadgen.Container, msg string, onePhysical bool) {
	w.t.Helper()
	var err error
	if onePhysical {
		err = c.WriteRaw(c.Line(time.Now(), "stdout", false, msg)) // one physical line, however long
	} else {
		err = c.Write(time.Now(), "stdout", msg) // split into 16 KiB runtime partials
	}
	if err != nil {
		w.t.Fatal(err)
	}
	w.want[c.ID] = append(w.want[c.ID], msg)
}

// waitCaughtUp waits until every file's checkpoint is at its end (hang guard only).
func waitCaughtUp(t testing.TB, dir string, conts []*loadgen.Container) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		entries, _ := checkpointEntries(dir)
		done := 0
		for _, c := range conts {
			fi, err := os.Stat(c.Path())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Path == c.Path() && e.Offset == fi.Size() {
					done++
				}
			}
		}
		if done == len(conts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d files acknowledged to their end", done, len(conts))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readTopics reads topics from their start to their current end: called after the collector
// stopped, it sees every record it produced, duplicates included, with no timing involved.
func readTopics(t testing.TB, brokers string, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading back: %v (%d records so far)", ctx.Err(), len(out))
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if p := left[r.Topic]; p != nil && r.Offset+1 >= p[r.Partition] {
				delete(p, r.Partition)
				if len(p) == 0 {
					delete(left, r.Topic)
				}
			}
		})
	}
	return out
}

// checkLines rebuilds every line from its records (chunks of a cut line joined in split order)
// and compares with what was written: each container's lines all there, in order, and no
// record twice. It also checks that no record was over the limit of its topic.
//
// With ordered false, records are put in file order first: after a produce failure, what is
// sent again can arrive after lines read later (each record carries its file offset).
func checkLines(t testing.TB, recs []*kgo.Record, want map[string][]string, limits map[string]int, ordered bool) {
	t.Helper()
	type line struct {
		offset int64
		next   int // next split index expected
		msg    []byte
		done   bool
	}
	lines := map[string][]*line{}
	seen := map[string]bool{}
	dups := 0
	decoded := make([]record.Record, 0, len(recs))
	for _, r := range recs {
		if lim := limits[r.Topic]; lim > 0 && len(r.Value) > lim {
			t.Errorf("%s: a %d-byte record over max.message.bytes %d", r.Topic, len(r.Value), lim)
		}
		rec, err := record.Decode(r.Value)
		if err != nil {
			t.Fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		decoded = append(decoded, rec)
	}
	if !ordered {
		slices.SortStableFunc(decoded, func(a, b record.Record) int {
			if c := cmp.Compare(a.Offset, b.Offset); c != 0 {
				return c
			}
			return cmp.Compare(splitIndex(a), splitIndex(b))
		})
	}
	for _, rec := range decoded {
		idx := -1
		if rec.Split != nil {
			idx = rec.Split.Index
		}
		k := fmt.Sprintf("%s@%d#%d", rec.ContainerID, rec.Offset, idx)
		if seen[k] {
			dups++
			if dups <= 3 {
				t.Logf("duplicate record: %s", k)
			}
			continue
		}
		seen[k] = true
		msg := []byte(rec.Message)
		if rec.MessageBase64 != nil {
			msg = rec.MessageBase64
		}
		ls := lines[rec.ContainerID]
		var cur *line
		if n := len(ls); n > 0 && !ls[n-1].done {
			cur = ls[n-1]
		}
		switch {
		case cur == nil && idx <= 0:
			cur = &line{offset: rec.Offset}
			lines[rec.ContainerID] = append(ls, cur)
		case cur == nil || idx != cur.next:
			t.Fatalf("%s: record at offset %d split %d out of order (open line at %v)", rec.ContainerID, rec.Offset, idx, cur)
		}
		if n := len(lines[rec.ContainerID]); n > 1 && idx <= 0 && lines[rec.ContainerID][n-2].offset >= rec.Offset {
			t.Fatalf("%s: line at offset %d after one at %d", rec.ContainerID, rec.Offset, lines[rec.ContainerID][n-2].offset)
		}
		cur.msg = append(cur.msg, msg...)
		cur.next = idx + 1
		cur.done = idx < 0 || rec.Split.Last
	}
	if dups > 0 {
		t.Errorf("%d duplicate records", dups)
	}
	for id, msgs := range want {
		got := lines[id]
		if len(got) != len(msgs) {
			t.Errorf("container %s: %d lines, want %d", id, len(got), len(msgs))
		}
		for i := range min(len(got), len(msgs)) {
			if !got[i].done || !bytes.Equal(got[i].msg, []byte(msgs[i])) {
				t.Errorf("container %s line %d: %d bytes (complete %v), want %d", id, i, len(got[i].msg), got[i].done, len(msgs[i]))
				break
			}
		}
	}
}

func splitIndex(r record.Record) int {
	if r.Split == nil {
		return -1
	}
	return r.Split.Index
}

// TestPreCreatedTopicLimits: topics created before the collector (auto-creation off, as a
// platform team runs Kafka) with Kafka's default max.message.bytes and with 256 KiB. Lines of
// 1 MiB (as runtime partials and as one physical line) and incompressible lines, uncompressed
// and zstd: every line arrives, in order, once, no record over the topic's limit, and no
// produce error at all (batches and records are sized to each topic before they are sent).
func TestPreCreatedTopicLimits(t *testing.T) {
	for _, tc := range []struct {
		compression string
	}{{"none"}, {"zstd"}} {
		t.Run(tc.compression, func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			limits := map[string]int{"logs.dflt": kafkaDefaultLimit, "logs.small": 256 << 10}
			preCreate(t, brokers, 3, 0, "logs.dflt")
			preCreate(t, brokers, 3, 256<<10, "logs.small")
			node, _ := loadgen.NewNode(t.TempDir())
			w := &writer{t: t, want: map[string][]string{}}
			var conts []*loadgen.Container
			for _, ns := range []string{"dflt", "small"} {
				for p := range 2 {
					c, err := node.AddContainer(ns, fmt.Sprintf("web-%d", p), "app", loadgen.CRI)
					if err != nil {
						t.Fatal(err)
					}
					conts = append(conts, c)
				}
			}
			big := string(bytes.Repeat([]byte("0123456789abcdef"), 1<<16)) // 1 MiB, compresses well
			for i, c := range conts {
				key := c.Namespace + "/" + c.Pod
				for s := range 400 {
					w.line(c, loadgen.SeqMessage(key, s, 200), false)
					switch s {
					case 50:
						w.line(c, big, false)
					case 100:
						w.line(c, big, true)
					case 150:
						w.line(c, randomLine(uint64(i), 1<<20), true) // incompressible 1 MiB
					case 200:
						w.line(c, randomLine(uint64(i+10), 300<<10), false)
					case 250:
						for k := range 8 { // many incompressible lines in a row fill batches
							w.line(c, randomLine(uint64(100*i+k), 100<<10), true)
						}
					}
				}
			}
			cfg := testConfig(t, node, brokers)
			cfg.Sink.Compression = tc.compression
			r := startCollector(t, cfg)
			waitCaughtUp(t, cfg.CheckpointDir, conts)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			checkLines(t, readTopics(t, brokers, "logs.dflt", "logs.small"), w.want, limits, true)
			for _, ns := range []string{"dflt", "small"} {
				m := r.c.metrics.forNamespace(ns)
				if n := testutil.ToFloat64(m.produceErrors); n != 0 {
					t.Errorf("%s: produce_errors_total = %v, want 0", ns, n)
				}
				if n := testutil.ToFloat64(m.topicErrors); n != 0 {
					t.Errorf("%s: topic_errors_total = %v, want 0", ns, n)
				}
			}
		})
	}
}

// TestPartialFailureResendsOnlyWhatFailed: Kafka refuses one produce request in the middle of a
// read (the records before it in the same chunk were acknowledged). Only what was not
// acknowledged is sent again: every line once (in file order once sorted by offset: what is sent
// again can land after lines read later). Small batches and large reads make one read's records
// span several batches, on a pre-created topic with a small limit and on a topic the collector
// creates.
func TestPartialFailureResendsOnlyWhatFailed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		preLimit  int // pre-create the topic with this max.message.bytes; 0: the collector creates it
		maxLine   int
		batchMax  int
		recordMax int
	}{
		{name: "pre-created 64KiB", preLimit: 64 << 10, maxLine: 1 << 20, batchMax: 1 << 20, recordMax: 64 << 10},
		{name: "collector-created", maxLine: 4096, batchMax: 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			brokers := cl.ListenAddrs()[0]
			if tc.preLimit > 0 {
				preCreate(t, brokers, 1, tc.preLimit, "logs.part")
			}
			var produces atomic.Int32
			fault := cl.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "logs.part", Err: kerr.MessageTooLarge,
				When: func(kmsg.Request) bool { return produces.Add(1) == 3 }})
			node, _ := loadgen.NewNode(t.TempDir())
			w := &writer{t: t, want: map[string][]string{}}
			c, _ := node.AddContainer("part", "web", "app", loadgen.CRI)
			for s := range 3000 {
				w.line(c, loadgen.SeqMessage("part", s, 1000), false)
			}
			cfg := testConfig(t, node, brokers)
			cfg.Sink.Partitions = 1
			cfg.MaxLineBytes = tc.maxLine
			cfg.Sink.BatchMaxBytes = tc.batchMax
			cfg.ReadBytes = 1 << 20
			cfg.BufferBytes = 64 << 20
			r := startCollector(t, cfg)
			waitCaughtUp(t, cfg.CheckpointDir, []*loadgen.Container{c})
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			if fault.Hits() != 1 {
				t.Fatalf("fault answered %d produce requests, want 1", fault.Hits())
			}
			checkLines(t, readTopics(t, brokers, "logs.part"), w.want, map[string]int{"logs.part": tc.recordMax}, false)
			if n := testutil.ToFloat64(r.c.metrics.forNamespace("part").produceErrors); n == 0 {
				t.Errorf("produce_errors_total = 0: the failure was not seen")
			}
		})
	}
}

// TestLimitLoweredWhileRunning: the platform team lowers a topic's max.message.bytes while the
// collector ships to it. Kafka refuses the batches sized for the old limit; the collector reads
// the limit again, resizes batches and cuts, and sends only what was refused.
func TestLimitLoweredWhileRunning(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	preCreate(t, brokers, 1, 0, "logs.lower")
	node, _ := loadgen.NewNode(t.TempDir())
	w := &writer{t: t, want: map[string][]string{}}
	c, _ := node.AddContainer("lower", "web", "app", loadgen.CRI)
	for s := range 100 {
		w.line(c, loadgen.SeqMessage("lower", s, 500), false)
	}
	cfg := testConfig(t, node, brokers)
	cfg.ReadBytes = 1 << 20
	cfg.BufferBytes = 16 << 20 // at least 8 reads
	r := startCollector(t, cfg)
	waitCaughtUp(t, cfg.CheckpointDir, []*loadgen.Container{c})
	const lowered = 48 << 10
	alterLimit(t, brokers, "logs.lower", lowered)
	for s := 100; s < 3000; s++ {
		w.line(c, loadgen.SeqMessage("lower", s, 500), false)
		if s == 2000 {
			w.line(c, randomLine(3, 200<<10), true)
		}
	}
	waitCaughtUp(t, cfg.CheckpointDir, []*loadgen.Container{c})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkLines(t, readTopics(t, brokers, "logs.lower"), w.want, nil, false)
	var over int
	for _, rec := range readTopics(t, brokers, "logs.lower") {
		if rec.Offset > 100 && len(rec.Value) > lowered {
			over++
		}
	}
	if over > 0 {
		t.Errorf("%d records over the lowered limit", over)
	}
}

// TestLimitTooSmallForOneRecord: a topic whose max.message.bytes cannot hold even one record
// is a counted error for its namespace alone; the lines wait in the file (none lost), the other
// namespace flows, and once the limit is raised they arrive.
func TestLimitTooSmallForOneRecord(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	preCreate(t, brokers, 1, 1024, "logs.tiny")
	preCreate(t, brokers, 1, 0, "logs.fine")
	node, _ := loadgen.NewNode(t.TempDir())
	w := &writer{t: t, want: map[string][]string{}}
	tiny, _ := node.AddContainer("tiny", "web", "app", loadgen.CRI)
	fine, _ := node.AddContainer("fine", "web", "app", loadgen.CRI)
	for s := range 50 {
		w.line(tiny, loadgen.SeqMessage("tiny", s, 100), false)
		w.line(fine, loadgen.SeqMessage("fine", s, 100), false)
	}
	cfg := testConfig(t, node, brokers)
	cfg.Sink.LimitRefresh = 100 * time.Millisecond
	r := startCollector(t, cfg)
	waitCaughtUp(t, cfg.CheckpointDir, []*loadgen.Container{fine})
	waitFor(t, 30*time.Second, func() bool { return testutil.ToFloat64(r.c.metrics.forNamespace("tiny").topicErrors) > 0 })
	alterLimit(t, brokers, "logs.tiny", kafkaDefaultLimit)
	waitCaughtUp(t, cfg.CheckpointDir, []*loadgen.Container{tiny, fine})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkLines(t, readTopics(t, brokers, "logs.tiny", "logs.fine"), w.want, nil, true)
	if n := testutil.ToFloat64(r.c.metrics.forNamespace("fine").topicErrors); n != 0 {
		t.Errorf("fine: topic_errors_total = %v", n)
	}
	if n := testutil.ToFloat64(r.c.metrics.forNamespace("tiny").produceErrors); n != 0 {
		t.Errorf("tiny: produce_errors_total = %v: a record over the known limit was sent", n)
	}
}
