package router

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestPartialLinesCountAgainstTheBudget: many files each in the middle of a long line (runtime
// "P" parts whose final part is not written yet). What the collector holds of those lines
// counts against the byte budget: with room for all of them the budget's used bytes include
// every held part; without room, memory does not grow with the number of files: the parts held
// stay within the budget and the rest are sent on as chunks of split lines. Either way, once the
// lines end, every one arrives complete and in order and the budget is empty again.
func TestPartialLinesCountAgainstTheBudget(t *testing.T) {
	tests := []struct {
		name   string
		budget int64
		read   int
		files  int
		parts  int // 16 KiB parts per file before its line ends
	}{
		{name: "room for all", budget: 16 << 20, read: 64 << 10, files: 20, parts: 6},
		{name: "budget full", budget: 1 << 20, read: 16 << 10, files: 40, parts: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := newCluster(t)
			brokers := broker.ListenAddrs()[0]
			node, err := loadgen.NewNode(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			conts := make([]*loadgen.Container, tt.files)
			want := map[string]string{} // pod -> its whole line
			payload := 0
			for i := range conts {
				c, err := node.AddContainer(fmt.Sprintf("mem-%d", i%4), fmt.Sprintf("pod-%02d", i), "app", loadgen.CRI)
				if err != nil {
					t.Fatal(err)
				}
				conts[i] = c
				want[c.Pod] = writeParts(t, c, ts, tt.parts)
				payload += len(want[c.Pod])
			}

			var mu sync.Mutex
			var got []record.Record
			shipped := 0
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			cctx, cancel := context.WithCancel(context.Background())
			consumerDone := make(chan struct{})
			defer func() { cancel(); <-consumerDone }()
			go func() {
				defer close(consumerDone)
				for cctx.Err() == nil {
					cl.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
						rec, err := record.Decode(r.Value)
						if err != nil {
							t.Errorf("record: %v", err)
							return
						}
						mu.Lock()
						got = append(got, rec)
						shipped += len(rec.Message)
						mu.Unlock()
					})
				}
			}()
			shippedBytes := func() int { mu.Lock(); defer mu.Unlock(); return shipped }

			cfg := testConfig(t, node, brokers)
			cfg.BufferBytes = tt.budget
			cfg.ReadBytes = tt.read
			r := startCollector(t, cfg)
			var peak int64
			stopSample := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peak = max(peak, r.c.budget.Used())
					select {
					case <-stopSample:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()

			// Every part read is either held, and counted, or sent on.
			deadline := time.Now().Add(60 * time.Second)
			for {
				used, sent := r.c.budget.Used(), shippedBytes()
				if tt.budget > int64(payload) && used >= int64(payload) {
					break
				}
				if tt.budget < int64(payload) && int64(sent)+tt.budget >= int64(payload) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d bytes of partial lines read (%d files): budget %d, used %d, sent on %d", payload, tt.files, tt.budget, used, sent)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tt.budget > int64(payload) && shippedBytes() != 0 {
				t.Fatalf("%d bytes sent on although the budget had room for every line", shippedBytes())
			}

			for _, c := range conts {
				if err := c.WriteRaw(c.Line(ts, "stdout", false, "[end of "+c.Pod+"]")); err != nil {
					t.Fatal(err)
				}
				want[c.Pod] += "[end of " + c.Pod + "]"
			}
			for {
				mu.Lock()
				complete := 0
				for _, rec := range got {
					if rec.Split == nil || rec.Split.Last {
						complete++
					}
				}
				mu.Unlock()
				if complete >= tt.files {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d lines complete in Kafka", complete, tt.files)
				}
				time.Sleep(10 * time.Millisecond)
			}
			waitFor(t, 10*time.Second, func() bool { return r.c.budget.Used() == 0 })
			close(stopSample)
			<-sampled
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}

			mu.Lock()
			defer mu.Unlock()
			checkWholeLines(t, got, want, tt.budget < int64(payload))
			// Held parts stay within the budget; a read in progress and a chunk being sent may
			// add one read's worth each.
			if limit := 2 * tt.budget; tt.budget < int64(payload) && peak > limit {
				t.Fatalf("budget used peaked at %d, over %d", peak, limit)
			}
			t.Logf("payload %d, budget %d, peak used %d, records %d", payload, tt.budget, peak, len(got))
		})
	}
}

// TestReadBackSkipsOnlyTheSameChunk: a chunk the previous run produced is skipped only if it is
// the same chunk: one that began at the same place with the same index but was cut elsewhere (a
// cut under memory pressure happens where the budget ran out, not at a place the bytes decide)
// is sent again. Skipping it would lose the bytes between the two cut points.
func TestReadBackSkipsOnlyTheSameChunk(t *testing.T) {
	tests := []struct {
		name     string
		inKafka  int // message length of the previous run's chunk (start 100, index 0)
		msg      int // length of this run's chunk
		wantSent bool
	}{
		{name: "same chunk", inKafka: 500, msg: 500, wantSent: false},
		{name: "previous run cut it shorter", inKafka: 300, msg: 500, wantSent: true},
		{name: "previous run cut it longer", inKafka: 700, msg: 500, wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{msgSeed: maphash.MakeSeed()}
			f := &file{c: c, inKafka: map[[2]int64]uint64{{100, 0}: maphash.String(c.msgSeed, strings.Repeat("m", tt.inKafka)), {9000, -1}: 1}}
			ch := &chunk{view: &fileView{snap: &filemeta.Snapshot{Namespace: "ns"}, topic: "logs.ns"}, pol: &nsPolicy{NamespacePolicy: pipeline.NamespacePolicy{Collected: true}}}
			v := f.line(ch, &assemble.Output{Start: 100, End: 2000, TS: []byte("2026-12-01T10:00:00Z"), Stream: "stdout",
				Msg: []byte(strings.Repeat("m", tt.msg)), Split: true, Index: 0}, assemble.State{})
			if sent := len(ch.recs) == 1; sent != tt.wantSent || (v == verdictEmit) != tt.wantSent {
				t.Fatalf("sent = %v (verdict %d), want %v", sent, v, tt.wantSent)
			}
			if !tt.wantSent && ch.counts.inKafka != 1 {
				t.Fatalf("inKafka count %d", ch.counts.inKafka)
			}
		})
	}
}

// checkWholeLines checks that every pod's line arrived complete and in order: one record, or
// (when split is allowed) chunks numbered 0, 1, ... whose messages join to the line.
func checkWholeLines(t *testing.T, got []record.Record, want map[string]string, split bool) {
	t.Helper()
	lines := map[string]*strings.Builder{}
	next := map[string]int{}
	for _, rec := range got {
		b := lines[rec.Pod]
		if b == nil {
			b = &strings.Builder{}
			lines[rec.Pod] = b
		}
		switch {
		case rec.Split == nil:
			if next[rec.Pod] != 0 || b.Len() != 0 {
				t.Fatalf("%s: unsplit record after chunks", rec.Pod)
			}
		case !split:
			t.Fatalf("%s: line split although the budget had room for it", rec.Pod)
		case rec.Split.Index != next[rec.Pod]:
			t.Fatalf("%s: chunk %d, want %d", rec.Pod, rec.Split.Index, next[rec.Pod])
		default:
			next[rec.Pod]++
		}
		b.WriteString(rec.Message)
	}
	for pod, w := range want {
		if b := lines[pod]; b == nil || b.String() != w {
			t.Fatalf("%s: line not delivered whole and in order (%d of %d bytes)", pod, len(lines[pod].String()), len(w))
		}
	}
}

// TestPartialLinesDuringOutage: with the broker down, files that keep receiving parts of long
// lines fill the budget with them (counted) and then stop reading; memory does not grow with what
// they are given.
// When the broker is back every line arrives complete and in order.
func TestPartialLinesDuringOutage(t *testing.T) {
	startBroker, brokers := restartableBroker(t)
	broker := startBroker()
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const files, parts = 30, 12
	conts := make([]*loadgen.Container, files)
	want := map[string]string{}
	for i := range conts {
		if conts[i], err = node.AddContainer(fmt.Sprintf("out-%d", i%3), fmt.Sprintf("pod-%02d", i), "app", loadgen.CRI); err != nil {
			t.Fatal(err)
		}
		// One short line first, so that every topic exists before the outage.
		if err := conts[i].Write(ts, "stdout", "hello"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, node, brokers)
	cfg.BufferBytes = 1 << 20
	cfg.ReadBytes = 16 << 10
	r := startCollector(t, cfg)
	bytesRead := func() float64 {
		return testutil.ToFloat64(r.c.metrics.bytesRead.WithLabelValues("out-0")) + testutil.ToFloat64(r.c.metrics.bytesRead.WithLabelValues("out-1")) +
			testutil.ToFloat64(r.c.metrics.bytesRead.WithLabelValues("out-2"))
	}
	waitFor(t, 30*time.Second, func() bool { return bytesRead() >= float64(files*len("hello")) && r.c.budget.Used() == 0 })
	broker.Close()

	payload := 0
	for _, c := range conts {
		want[c.Pod] = writeParts(t, c, ts, parts)
		payload += len(want[c.Pod])
	}
	var peak int64
	settled := int64(-1) // the least used in the last second: what stays held while reading waits
	var readMid float64
	outage := time.Now()
	for time.Since(outage) < 3*time.Second {
		used := r.c.budget.Used()
		peak = max(peak, used)
		if time.Since(outage) > 2*time.Second && (settled < 0 || used < settled) {
			settled = used
		}
		if time.Since(outage) > 1500*time.Millisecond && readMid == 0 {
			readMid = bytesRead()
		}
		time.Sleep(5 * time.Millisecond)
	}
	readEnd := bytesRead()
	broker = startBroker()
	defer broker.Close()
	// Held parts, and the chunks some were cut into, stay within the budget; a chunk is encoded
	// (and copied by franz-go) before it can wait, so allow the budget again for those copies.
	if limit := 2 * cfg.BufferBytes; peak > limit {
		t.Errorf("budget used peaked at %d during the outage (budget %d, %d bytes of partial lines written)", peak, cfg.BufferBytes, payload)
	}
	if settled < cfg.BufferBytes/4 {
		t.Errorf("budget used fell to %d while reading waited: the parts of lines read are not counted (budget %d, %d bytes written)", settled, cfg.BufferBytes, payload)
	}
	if readEnd != readMid {
		t.Errorf("reading did not pause during the outage: %v bytes read at 1.5s, %v at 3s", readMid, readEnd)
	}
	for _, c := range conts {
		if err := c.WriteRaw(c.Line(ts, "stdout", false, "[end of "+c.Pod+"]")); err != nil {
			t.Fatal(err)
		}
		want[c.Pod] += "[end of " + c.Pod + "]"
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []record.Record
	complete := 0
	deadline := time.Now().Add(60 * time.Second)
	for complete < files && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(kr *kgo.Record) {
			rec, err := record.Decode(kr.Value)
			if err != nil {
				t.Errorf("record: %v", err)
				return
			}
			if rec.Message == "hello" {
				return
			}
			got = append(got, rec)
			if rec.Split == nil || rec.Split.Last {
				complete++
			}
		})
		cancel()
	}
	if complete < files {
		t.Fatalf("%d of %d lines complete after the outage", complete, files)
	}
	checkWholeLines(t, got, want, true)
	t.Logf("payload %d, budget %d, used during the outage: peak %d, settled %d; records %d", payload, cfg.BufferBytes, peak, settled, len(got))
}

// writeParts writes parts CRI "P" parts of 16 KiB to c (a line whose end is not written yet) and
// returns what they hold.
func writeParts(t *testing.T, c *loadgen.Container, ts time.Time, parts int) string {
	t.Helper()
	var line strings.Builder
	for j := range parts {
		head := fmt.Sprintf("[%s part %d]", c.Pod, j)
		part := head + strings.Repeat(string(rune('a'+j%26)), 16<<10-len(head))
		line.WriteString(part)
		if err := c.WriteRaw(c.Line(ts, "stdout", true, part)); err != nil {
			t.Fatal(err)
		}
	}
	return line.String()
}
