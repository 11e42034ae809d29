package counters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		in     string
		node   string
		k      Key
		bad    bool
		legacy bool
	}{
		{in: "node-1/team-a/web/6f1c2b3e-0000-4000-8000-000000000001", node: "node-1", k: Key{"team-a", "web", "6f1c2b3e-0000-4000-8000-000000000001"}},
		{in: "ip-10-0-0-1.ec2.internal/ns/p/u", node: "ip-10-0-0-1.ec2.internal", k: Key{"ns", "p", "u"}},
		// A --pipelines-dir pipeline: no object, no UID.
		{in: "node-1/team-a/web/-", node: "node-1", k: Key{"team-a", "web", ""}},
		// The format before UIDs: parsed, and refused as legacy.
		{in: "node-1/team-a/web", node: "node-1", k: Key{"team-a", "web", ""}, bad: true, legacy: true},
		{in: "node/ns", bad: true},
		{in: "node/ns/p/u/x", bad: true},
		{in: "/ns/p/u", bad: true},
		{in: "n//p/u", bad: true},
		{in: "n/ns/p/", bad: true},
		{in: "", bad: true},
	} {
		node, k, err := ParseKey([]byte(tt.in))
		if tt.bad {
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrLegacyKey) != tt.legacy {
				t.Errorf("ParseKey(%q) = %v, want ErrInvalid (legacy %v)", tt.in, err, tt.legacy)
			}
			if tt.legacy && (node != tt.node || k != tt.k) {
				t.Errorf("ParseKey(%q) = %q %v, want %q %v", tt.in, node, k, tt.node, tt.k)
			}
			continue
		}
		if err != nil || node != tt.node || k != tt.k {
			t.Errorf("ParseKey(%q) = %q %v %v", tt.in, node, k, err)
		}
		if got := string(RecordKey(node, k)); got != tt.in {
			t.Errorf("RecordKey = %q, want %q", got, tt.in)
		}
		if k.Dir() != (k.UID == "") {
			t.Errorf("%v: Dir() %v", k, k.Dir())
		}
	}
}

func TestDecode(t *testing.T) {
	v := Value{Counts: Counts{Selected: 3, Emitted: 2, Dropped: 1, ParseFailures: 4, Panicked: 1}, Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	got, ok, err := Decode(Encode(v))
	if err != nil || !ok || got.Counts != v.Counts || !got.Time.Equal(v.Time) {
		t.Errorf("round trip: %+v %v %v", got, ok, err)
	}
	if !strings.Contains(string(Encode(v)), `"sampledOut":0`) {
		t.Errorf("encoded %s lacks the status field names", Encode(v))
	}
	// A record of a collector older than the panicked field: zero.
	if old, ok, err := Decode([]byte(`{"selected":1,"emitted":1,"time":"2026-12-01T10:00:00Z"}`)); err != nil || !ok || old.Counts != (Counts{Selected: 1, Emitted: 1}) {
		t.Errorf("record without panicked: %+v %v %v", old, ok, err)
	}
	if _, ok, err := Decode(nil); ok || err != nil {
		t.Errorf("tombstone: %v %v", ok, err)
	}
	for _, bad := range []string{"{", "[]", `{"emitted":-1}`, `{"emitted":"x"}`, `{"panicked":-1}`} {
		if _, _, err := Decode([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("n/a/b/u"), []byte(`{"emitted":1}`))
	f.Add([]byte("n/a/b/-"), []byte(`{"panicked":1}`))
	f.Add([]byte("//"), []byte(`{`))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		if node, k, err := ParseKey(key); err == nil {
			if string(RecordKey(node, k)) != string(key) {
				t.Fatalf("key %q does not round-trip", key)
			}
		}
		if v, ok, err := Decode(val); err == nil && ok {
			if v2, _, err := Decode(Encode(v)); err != nil || v2.Counts != v.Counts {
				t.Fatalf("value %q does not round-trip: %v", val, err)
			}
		}
	})
}

// cluster starts kfake with the compacted counters topic, as the controller creates it.
func cluster(t *testing.T) []kgo.Opt {
	t.Helper()
	opts, _ := clusterAddrs(t)
	return opts
}

// clusterAddrs is cluster, also returning the broker's address.
func clusterAddrs(t *testing.T) ([]kgo.Opt, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 3, -1, map[string]*string{"cleanup.policy": &compact}, topic.CountersTopic); err != nil {
		t.Fatal(err)
	}
	return opts, c.ListenAddrs()
}

func client(t *testing.T, opts []kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// totals is a collector's counters (a Source), changed by the test between publications.
// Pipelines in m exist; so do those in extra (existing, counting nothing on this node).
type totals struct {
	mu      sync.Mutex
	m       map[Key]Counts
	gone    map[Key]bool // deleted pipelines (their counts stay in m until forgotten)
	unknown bool         // the collector does not know yet which pipelines exist
	forgot  []Key
}

func (tt *totals) set(k Key, c Counts) {
	tt.mu.Lock()
	tt.m[k] = c
	delete(tt.gone, k)
	tt.mu.Unlock()
}

// remove deletes pipeline k (its counts stay until Forget).
func (tt *totals) remove(k Key) {
	tt.mu.Lock()
	if tt.gone == nil {
		tt.gone = map[Key]bool{}
	}
	tt.gone[k] = true
	tt.mu.Unlock()
}

func (tt *totals) Totals() map[Key]Counts {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return maps.Clone(tt.m)
}

func (tt *totals) Exists(k Key) (bool, bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return !tt.gone[k], !tt.unknown
}

func (tt *totals) Forget(k Key) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	delete(tt.m, k)
	tt.forgot = append(tt.forgot, k)
}

func (tt *totals) forgotten() []Key {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.Clone(tt.forgot)
}

// publisher returns node's resumed Publisher of src.
func publisher(t *testing.T, opts []kgo.Opt, node string, src Source) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{Node: node, Topic: topic.CountersTopic, Interval: time.Hour}, opts, src, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// publish is p.Publish, failing the test on an error.
func publish(t *testing.T, p *Publisher) int {
	t.Helper()
	n, err := p.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writes records what a Fold writes.
type writes struct {
	mu   sync.Mutex
	last map[Key]Counts
	n    map[Key]int
	all  []string
	gone map[Key]bool
}

func newWrites() *writes {
	return &writes{last: map[Key]Counts{}, n: map[Key]int{}, gone: map[Key]bool{}}
}

func (w *writes) write(_ context.Context, k Key, c Counts, _ time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone[k] {
		return ErrGone
	}
	w.last[k] = c
	w.n[k]++
	w.all = append(w.all, fmt.Sprintf("%s=%d", k, c.Emitted))
	return nil
}

func (w *writes) get(k Key) (Counts, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[k], w.n[k]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishAndFold(t *testing.T) {
	opts := cluster(t)
	ctx := context.Background()
	web, api := Key{"team-a", "web", "uid-web"}, Key{"team-b", "api", "uid-api"}

	nodeA := &totals{m: map[Key]Counts{web: {Selected: 10, Emitted: 8, Dropped: 2}}}
	nodeB := &totals{m: map[Key]Counts{web: {Selected: 5, Emitted: 5}, api: {Selected: 1, Emitted: 1, ParseFailures: 1}}}
	pubA, pubB := publisher(t, opts, "node-a", nodeA), publisher(t, opts, "node-b", nodeB)
	if n := publish(t, pubA); n != 1 {
		t.Fatalf("node-a published %d records, want 1", n)
	}
	if n := publish(t, pubB); n != 2 {
		t.Fatalf("node-b published %d records, want 2", n)
	}
	// Unchanged totals publish nothing.
	if n := publish(t, pubA); n != 0 {
		t.Errorf("unchanged totals published %d records", n)
	}
	// A bad record from someone else is skipped and counted.
	raw := client(t, opts)
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: topic.CountersTopic, Key: []byte("garbage"), Value: []byte("{")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	w := newWrites()
	fold, err := NewFold(FoldConfig{Topic: topic.CountersTopic, Interval: 5 * time.Millisecond, Writers: 2}, opts, w.write, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fold.Run(fctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	wantWeb := Counts{Selected: 15, Emitted: 13, Dropped: 2}
	eventually(t, "web's sum over both nodes", func() bool { c, _ := w.get(web); return c == wantWeb })
	eventually(t, "api's sum", func() bool { c, _ := w.get(api); return c == Counts{Selected: 1, Emitted: 1, ParseFailures: 1} })
	// Nothing changed: no more writes, however many intervals pass.
	_, n := w.get(web)
	for range 20 {
		fold.flush(ctx)
	}
	if _, n2 := w.get(web); n2 != n {
		t.Errorf("unchanged sum written %d more times", n2-n)
	}

	// A node's new totals replace its old ones (they are cumulative).
	nodeA.set(web, Counts{Selected: 20, Emitted: 18, Dropped: 2})
	publish(t, pubA)
	eventually(t, "web after node-a's new totals", func() bool { c, _ := w.get(web); return c == Counts{Selected: 25, Emitted: 23, Dropped: 2} })

	// The pipeline no longer runs on node-b (its pods moved) but exists: node-b's record
	// stays, so the sum does not go down.
	nodeB.mu.Lock()
	delete(nodeB.m, web)
	nodeB.mu.Unlock()
	if n := publish(t, pubB); n != 0 {
		t.Fatalf("a pipeline gone from a node only: published %d records, want none", n)
	}
	if c, _ := fold.Sum(web); c != (Counts{Selected: 25, Emitted: 23, Dropped: 2}) {
		t.Errorf("web = %+v after it left node-b", c)
	}

	if got := testutil.ToFloat64(fold.m.invalid); got != 1 {
		t.Errorf("invalid records = %v, want 1", got)
	}
}

// TestFoldRestartWritesNoPartialSum: a fold started over a full topic writes each pipeline's
// complete sum, never the sum of a prefix of the topic.
func TestFoldRestartWritesNoPartialSum(t *testing.T) {
	opts := cluster(t)
	ctx := context.Background()
	const nodes, pipelines = 20, 50
	want := map[Key]Counts{}
	for n := range nodes {
		tt := &totals{m: map[Key]Counts{}}
		for p := range pipelines {
			k := Key{"ns", fmt.Sprintf("p%d", p), fmt.Sprintf("uid-%d", p)}
			c := Counts{Selected: int64(n + 1), Emitted: int64(n + 1)}
			tt.set(k, c)
			s := want[k]
			s.Add(c)
			want[k] = s
		}
		pub := publisher(t, opts, fmt.Sprintf("node-%d", n), tt)
		if got := publish(t, pub); got != pipelines {
			t.Fatalf("published %d", got)
		}
	}
	w := newWrites()
	fold, err := NewFold(FoldConfig{Topic: topic.CountersTopic, Interval: time.Millisecond, Writers: 4}, append(opts, kgo.FetchMaxBytes(512), kgo.FetchMaxPartitionBytes(512)), w.write, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fold.Run(fctx) }()
	eventually(t, "every pipeline written", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.last) == pipelines
	})
	cancel()
	<-done
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, n := range w.n {
		if n != 1 || w.last[k] != want[k] {
			t.Errorf("%s written %d times, last %+v, want once with %+v (all writes: %v)", k, n, w.last[k], want[k], w.all)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (PublisherConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "node name") || !strings.Contains(err.Error(), "interval") {
		t.Errorf("empty publisher config: %v", err)
	}
	if err := (FoldConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "writers") {
		t.Errorf("empty fold config: %v", err)
	}
	if err := DefaultFoldConfig().Validate(); err != nil {
		t.Error(err)
	}
	c := DefaultPublisherConfig()
	c.Node = "n"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestCountsMatchStatus: the record's counters are the status's (package v1alpha1), field for
// field, so that the fold can copy one into the other and neither drifts.
func TestCountsMatchStatus(t *testing.T) {
	keys := func(v any) []string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "updatedAt")
		return slices.Sorted(maps.Keys(m))
	}
	// Non-zero: some fields are omitted while zero.
	if got, want := keys(Counts{Panicked: 1}), keys(v1alpha1.Counters{Panicked: 1}); !slices.Equal(got, want) {
		t.Errorf("record counters %v, status counters %v", got, want)
	}
}
