package journal_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/journal"
	"github.com/logrouter/logrouter/router/journal/journaltest"
	"github.com/logrouter/logrouter/router/sink"
)

const testTopic = "logs.node-system"

type harness struct {
	t       *testing.T
	cluster *kfake.Cluster
	dir     string // journal
	ckDir   string
	j       *journaltest.Journal
	reg     *prometheus.Registry
	budget  int64 // the byte budget (default 4 MiB)
	src     *journal.Source
	stall   time.Duration // Deps.StallAfter
}

func newHarness(t *testing.T, opts ...kfake.Opt) *harness {
	journaltest.Skip(t)
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	return &harness{t: t, cluster: c, dir: dir, ckDir: t.TempDir(), j: &journaltest.Journal{Dir: dir}}
}

// run runs a source with cfg changed by set until stop is closed, and returns its Run error.
func (h *harness) start(set func(*journal.Config)) (stop func() error) {
	h.t.Helper()
	scfg := sink.DefaultConfig()
	scfg.Kafka.Brokers = h.cluster.ListenAddrs()[0]
	scfg.Linger = time.Millisecond
	s, err := sink.New(scfg, 4<<20)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := journal.DefaultConfig()
	cfg.Enabled, cfg.Dirs, cfg.PollInterval, cfg.CheckpointInterval = true, []string{h.dir}, 20*time.Millisecond, 20*time.Millisecond
	if set != nil {
		set(&cfg)
	}
	h.reg = prometheus.NewRegistry()
	src, err := journal.New(cfg, journal.Deps{Sink: s, Budget: budget.New(cmp.Or(h.budget, 4<<20)), CheckpointDir: h.ckDir, Node: "node-a", Topic: testTopic, Kafka: scfg.Kafka, MaxLineBytes: 1 << 20,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StallAfter: h.stall}, h.reg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.src = src
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	return func() error {
		cancel()
		err := <-errc
		s.Close()
		return err
	}
}

func (h *harness) metric(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	h.t.Fatalf("no metric %s", name)
	return 0
}

// consume reads every record of the topic.
func (h *harness) consume() []record.Record {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...), kgo.ConsumeTopics(testTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadmEnd(h.t, cl)
	var out []record.Record
	for n := int64(0); n < adm; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if err := fs.Err0(); err != nil {
			h.t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			rec, err := record.Decode(r.Value)
			if err != nil {
				h.t.Fatalf("%v: %s", err, r.Value)
			}
			out = append(out, rec)
		})
	}
	return out
}

// refuseProduce makes the broker answer every produce with NOT_ENOUGH_REPLICAS (retried by
// franz-go) while the returned flag is set.
func (h *harness) refuseProduce() *atomic.Bool {
	refuse := new(atomic.Bool)
	h.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	return refuse
}

// waitFor polls cond up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mixed(first, n int) []journaltest.Entry {
	es := entries(first, n)
	for i := range es {
		seq := first + i
		unit := []string{"kubelet.service", "containerd.service", "ssh.service"}[seq%3]
		prio := fmt.Sprint(seq % 8)
		for k, f := range es[i].Fields {
			switch f[0] {
			case "_SYSTEMD_UNIT":
				es[i].Fields[k][1] = unit
			case "PRIORITY":
				es[i].Fields[k][1] = prio
			}
		}
		es[i].Fields = append(es[i].Fields, [2]string{"SYSLOG_IDENTIFIER", "id-" + fmt.Sprint(seq)}, [2]string{"SECRET", "no"})
	}
	return es
}

func TestSourceShipsEntries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		set      func(*journal.Config)
		keep     func(seq int) bool
		excluded int
	}{
		{"all", nil, func(int) bool { return true }, 0},
		{"units and priority", func(c *journal.Config) {
			c.Units = []string{"kubelet.service", "containerd.service"}
			c.MaxPriority = 4
		},
			func(seq int) bool { return seq%3 != 2 && seq%8 <= 4 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if err := h.j.Append(mixed(1, 120)); err != nil {
				t.Fatal(err)
			}
			stop := h.start(func(c *journal.Config) {
				c.Fields = []string{"SYSLOG_IDENTIFIER"}
				if tc.set != nil {
					tc.set(c)
				}
			})
			waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 120 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			recs := h.consume()
			want := 0
			for seq := 1; seq <= 120; seq++ {
				if tc.keep(seq) {
					want++
				}
			}
			if len(recs) != want {
				t.Fatalf("%d records, want %d", len(recs), want)
			}
			if ex := h.metric("logrouter_collector_journal_entries_excluded_total"); int(ex) != 120-want {
				t.Fatalf("excluded %v, want %d", ex, 120-want)
			}
			for _, r := range recs {
				seq := int(r.Offset)
				if !tc.keep(seq) {
					t.Fatalf("entry %d shipped", seq)
				}
				if r.Namespace != "node-system" || r.Node != "node-a" || !strings.HasPrefix(r.Src, "journal:") || r.Time != time.UnixMicro(1_700_000_000_000_000+int64(seq)).UTC() {
					t.Fatalf("record %+v", r)
				}
				f := r.Fields
				if f["unit"] != []string{"kubelet.service", "containerd.service", "ssh.service"}[seq%3] || f["priority"] != float64(seq%8) || f["pid"] != float64(42) ||
					f["command"] != "kubelet" || f["hostname"] != "node-a" || f["boot_id"] != boot || f["SYSLOG_IDENTIFIER"] != fmt.Sprint("id-", seq) || f["SECRET"] != nil {
					t.Fatalf("entry %d fields %v", seq, f)
				}
				wantMsg := entries(seq, 1)[0].Fields[0][1]
				if seq%11 == 0 && seq%7 != 0 {
					if string(r.MessageBase64) != wantMsg || !strings.Contains(r.Message, "\ufffd") {
						t.Fatalf("entry %d: invalid UTF-8 not kept exactly: %q %q", seq, r.Message, r.MessageBase64)
					}
				} else if r.Message != wantMsg {
					t.Fatalf("entry %d message %.60q", seq, r.Message)
				}
			}
		})
	}
}

func readCheckpoint(t *testing.T, dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, journal.CheckpointFile))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var ck struct {
		Streams []struct{ Seqnum uint64 }
	}
	if err := json.Unmarshal(b, &ck); err != nil {
		t.Fatal(err)
	}
	if len(ck.Streams) == 0 {
		return 0
	}
	return ck.Streams[0].Seqnum
}

// TestCheckpointOnlyAfterAck: while Kafka refuses every produce, the checkpoint does not move;
// once Kafka takes them, it reaches the last entry.
func TestCheckpointOnlyAfterAck(t *testing.T) {
	h := newHarness(t)
	refuse := h.refuseProduce()
	refuse.Store(true)
	if err := h.j.Append(entries(1, 50)); err != nil {
		t.Fatal(err)
	}
	stop := h.start(nil)
	waitFor(t, "reads", func() bool { return h.metric("logrouter_collector_journal_entries_read_total") == 50 })
	time.Sleep(300 * time.Millisecond) // several checkpoint intervals
	if got := readCheckpoint(t, h.ckDir); got != 0 {
		t.Fatalf("checkpoint at %d while Kafka acknowledged nothing", got)
	}
	refuse.Store(false)
	waitFor(t, "checkpoint", func() bool { return readCheckpoint(t, h.ckDir) == 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.consume()); n != 50 {
		t.Fatalf("%d records, want 50", n)
	}
}

// TestReadyReportsStall: /readyz (Ready) says when the journal's entries wait for Kafka with no
// acknowledgement for StallAfter, and is ready again once Kafka takes them; a journal directory
// that cannot be read is reported too.
func TestReadyReportsStall(t *testing.T) {
	h := newHarness(t)
	h.stall = 300 * time.Millisecond
	refuse := h.refuseProduce()
	if err := h.j.Append(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	stop := h.start(nil)
	defer func() {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "ready", func() bool { return h.src.Ready() == nil && readCheckpoint(t, h.ckDir) == 20 })

	refuse.Store(true)
	if err := h.j.Append(entries(21, 20)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stalled", func() bool {
		err := h.src.Ready()
		return errors.Is(err, journal.ErrStalled) && strings.Contains(err.Error(), "wait for Kafka")
	})
	refuse.Store(false)
	waitFor(t, "ready again", func() bool { return h.src.Ready() == nil && readCheckpoint(t, h.ckDir) == 40 })

}

// TestReadyReportsTopicUnavailable: a journal topic Kafka does not let the collector create is a
// stall Ready names, not a silent wait.
func TestReadyReportsTopicUnavailable(t *testing.T) {
	h := newHarness(t)
	h.stall = 300 * time.Millisecond
	var refuse atomic.Bool
	refuse.Store(true)
	h.cluster.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.CreateTopicsRequest)
		resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, tp := range r.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = tp.Topic
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	if err := h.j.Append(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	stop := h.start(nil)
	defer func() {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "stalled", func() bool {
		err := h.src.Ready()
		return errors.Is(err, journal.ErrStalled) && strings.Contains(err.Error(), "topic "+testTopic+" unavailable")
	})
	refuse.Store(false)
	waitFor(t, "ready", func() bool { return h.src.Ready() == nil && readCheckpoint(t, h.ckDir) == 20 })
}

// TestSourceResumes: a restart continues after the last acknowledged entry, across rotation,
// and counts what vacuum removed meanwhile as lost, exactly.
func TestSourceResumes(t *testing.T) {
	h := newHarness(t)
	if err := h.j.Append(entries(1, 40)); err != nil {
		t.Fatal(err)
	}
	stop := h.start(nil)
	waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Meanwhile: rotations, new entries, and a vacuum that takes 41..60 unread.
	steps := []func() error{
		func() error { _, err := h.j.Rotate(); return err },
		func() error { return h.j.Append(entries(41, 20)) },
		func() error { _, err := h.j.Rotate(); return err },
		func() error { return h.j.Append(entries(61, 20)) },
		func() error { _, err := h.j.Rotate(); return err },
		func() error { return h.j.Append(entries(81, 20)) },
		func() error { _, err := h.j.Vacuum(1); return err }, // deletes 1..40 and 41..60
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	stop = h.start(nil)
	waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if lost := h.metric("logrouter_collector_journal_entries_lost_total"); lost != 20 {
		t.Fatalf("lost %v, want 20 (41..60)", lost)
	}
	seen := map[int64]int{}
	for _, r := range h.consume() {
		seen[r.Offset]++
	}
	for seq := int64(1); seq <= 100; seq++ {
		want := 1
		if seq > 40 && seq <= 60 {
			want = 0
		}
		if seen[seq] != want {
			t.Fatalf("entry %d shipped %d times, want %d", seq, seen[seq], want)
		}
	}
}

// kadmEnd is the number of records in the topic.
func kadmEnd(t *testing.T, cl *kgo.Client) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), testTopic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// TestRestartDoesNotResendWhatKafkaHas: a checkpoint behind what Kafka acknowledged (a kill
// between acknowledgement and save) neither resends those entries nor counts them lost when
// vacuum removed them meanwhile.
func TestRestartDoesNotResendWhatKafkaHas(t *testing.T) {
	for _, vacuum := range []bool{false, true} {
		t.Run(fmt.Sprintf("vacuum=%v", vacuum), func(t *testing.T) {
			h := newHarness(t)
			if err := h.j.Append(entries(1, 40)); err != nil {
				t.Fatal(err)
			}
			stop := h.start(nil)
			waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 40 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			// Roll the checkpoint back to entry 10, as a kill right after a save would leave it.
			p := filepath.Join(h.ckDir, journal.CheckpointFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var ck map[string]any
			if err := json.Unmarshal(b, &ck); err != nil {
				t.Fatal(err)
			}
			ck["streams"].([]any)[0].(map[string]any)["seqnum"] = 10
			b, _ = json.Marshal(ck)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := h.j.Rotate(); err != nil {
				t.Fatal(err)
			}
			if err := h.j.Append(entries(41, 10)); err != nil {
				t.Fatal(err)
			}
			if vacuum {
				if _, err := h.j.Vacuum(0); err != nil { // 1..40 gone
					t.Fatal(err)
				}
			}
			stop = h.start(nil)
			waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 10 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if lost := h.metric("logrouter_collector_journal_entries_lost_total"); lost != 0 {
				t.Fatalf("%v entries counted lost that Kafka has", lost)
			}
			seen := map[int64]int{}
			for _, r := range h.consume() {
				seen[r.Offset]++
			}
			for seq := int64(1); seq <= 50; seq++ {
				if seen[seq] != 1 {
					t.Fatalf("entry %d shipped %d times", seq, seen[seq])
				}
			}
		})
	}
}

// TestSourceWithinSmallBudget: with a budget of a few chunks, far less than the journal holds,
// the source keeps going (acknowledged chunks give their bytes back) and ships everything.
func TestSourceWithinSmallBudget(t *testing.T) {
	h := newHarness(t)
	h.budget = 1 << 20                                   // four chunk reservations
	if err := h.j.Append(entries(1, 3000)); err != nil { // about 2.6 MB of records
		t.Fatal(err)
	}
	stop := h.start(nil)
	waitFor(t, "acks", func() bool { return h.metric("logrouter_collector_journal_entries_acked_total") == 3000 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.consume()); n != 3000 {
		t.Fatalf("%d records, want 3000", n)
	}
}
