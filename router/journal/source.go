package journal

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/sink"
)

// Config of the journal source: the platform team's, never a tenant's.
type Config struct {
	Enabled bool
	// Dirs are journald's directories (persistent and volatile storage).
	Dirs []string
	// MachineIDFile names the node's machine ID: only <dir>/<machine-id>/ is read when it can
	// be read (other machines' journals may sit next to it), every subdirectory otherwise.
	MachineIDFile string
	// Topic is where entries go; empty: the collector's topic template rendered for
	// topic.NodeSystem (logs.node-system by default).
	Topic string
	// Units keeps only entries of these systemd units (_SYSTEMD_UNIT); empty: all entries.
	Units []string
	// MaxPriority keeps entries of this syslog priority or more severe (0 emerg .. 7 debug).
	MaxPriority int
	// Fields are further journal fields shipped in the record's fields, by their journal name.
	Fields       []string
	PollInterval time.Duration
	// CheckpointInterval is how often the acknowledged position is saved.
	CheckpointInterval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Dirs:               []string{"/var/log/journal", "/run/log/journal"},
		MachineIDFile:      "/etc/machine-id",
		MaxPriority:        7,
		PollInterval:       250 * time.Millisecond,
		CheckpointInterval: time.Second,
	}
}

// Register binds the flags.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "journal", c.Enabled, "also ship the node's systemd journal (to --journal-topic)")
	fs.Func("journal-dirs", "journald's directories, comma-separated (default "+strings.Join(c.Dirs, ",")+")", func(s string) error {
		c.Dirs = splitList(s)
		return nil
	})
	fs.StringVar(&c.MachineIDFile, "journal-machine-id-file", c.MachineIDFile, "the node's machine ID: only <journal dir>/<machine-id>/ is read (every subdirectory when it cannot be read or is empty)")
	fs.StringVar(&c.Topic, "journal-topic", c.Topic, "Kafka topic of journal entries (default: --topic-template for namespace "+topic.NodeSystem+")")
	fs.Func("journal-units", "ship only entries of these systemd units (_SYSTEMD_UNIT), comma-separated, e.g. kubelet.service,containerd.service (default: all)", func(s string) error {
		c.Units = splitList(s)
		return nil
	})
	fs.IntVar(&c.MaxPriority, "journal-max-priority", c.MaxPriority, "ship only entries of this syslog priority or more severe (0 emerg ... 7 debug)")
	fs.Func("journal-fields", "further journal fields to ship in the record's fields, comma-separated (e.g. SYSLOG_IDENTIFIER,_TRANSPORT)", func(s string) error {
		c.Fields = splitList(s)
		return nil
	})
	fs.DurationVar(&c.PollInterval, "journal-poll-interval", c.PollInterval, "how often the journal is checked for new entries")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if len(c.Dirs) == 0 {
		errs = append(errs, errors.New("--journal-dirs: at least one directory"))
	}
	if c.Topic != "" {
		if err := topic.Valid(c.Topic); err != nil {
			errs = append(errs, fmt.Errorf("--journal-topic: %w", err))
		}
	}
	if c.MaxPriority < 0 || c.MaxPriority > 7 {
		errs = append(errs, fmt.Errorf("--journal-max-priority %d: want 0 (emerg) to 7 (debug)", c.MaxPriority))
	}
	for _, f := range c.Fields {
		if !validFieldName(f) {
			errs = append(errs, fmt.Errorf("--journal-fields: %q is not a journal field name (A-Z, 0-9, _; not starting with a digit)", f))
		}
	}
	if c.PollInterval <= 0 || c.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("--journal-poll-interval and the checkpoint interval must be positive"))
	}
	return errors.Join(errs...)
}

func validFieldName(f string) bool {
	if f == "" || len(f) > 64 || f[0] >= '0' && f[0] <= '9' {
		return false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Deps is what the source shares with the container-log collector: the one producer and the
// one byte budget, in which the journal is one more participant of the fair share.
type Deps struct {
	Sink          *sink.Sink
	Budget        *budget.Budget
	CheckpointDir string
	Node, Cluster string
	// Topic is the resolved topic (Config.Topic or the template's).
	Topic string
	// Kafka connects the restart read-back's consumer.
	Kafka        kafkaconn.Config
	MaxLineBytes int
	Log          *slog.Logger
	// StallAfter is how long entries may wait for Kafka, or reads fail, before Ready reports
	// the source stalled (the collector's --ack-timeout; 0: 15 s).
	StallAfter time.Duration
}

// Participant is the journal's name in the budget: not a possible namespace name (the colon),
// so it never shares a tenant's fair share.
const Participant = "node:journal"

// CheckpointFile is the journal's checkpoint file in the checkpoint directory.
const CheckpointFile = "journal.json"

// Source ships the journal's entries. Run it with Run.
type Source struct {
	cfg  Config
	deps Deps
	m    *sourceMetrics
	log  *slog.Logger

	machine  string
	units    map[string]bool
	fields   [][]byte
	lostLog  *rate.Limiter
	errLog   *rate.Limiter
	chunkMax int

	mu     sync.Mutex
	done   []*chunk      // acknowledged or failed, not yet folded in
	wake   chan struct{} // signalled when done grows
	flight atomic.Int64  // chunks produced and not yet done
	queues map[[16]byte][]*chunk
	marks  map[[16]byte]mark // acknowledged position per stream
	// inKafka are entries past a stream's mark that the restart read-back found in Kafka: they
	// are not sent again (nor counted lost when vacuum removed them).
	inKafka map[[16]byte]map[uint64]bool
	dirty   bool
	savedAt time.Time
	// newStream: a stream's start was put in marks and must be saved before it is produced.
	newStream bool

	// For Ready (unix nanoseconds; 0: never): the loop's start, the last chunk Kafka took whole,
	// since when entries wait (0: none), and the last pass that found the topic usable.
	runningAt, ackedAt, waitSince, topicOKAt atomic.Int64
	topicErr                                 atomic.Pointer[string]
}

// ErrStalled is Ready's error when the journal's entries do not reach Kafka.
var ErrStalled = errors.New("journal source stalled")

// Ready reports, for the collector's /readyz, whether the journal ships: nil, or ErrStalled
// with why (entries waiting for Kafka with no acknowledgement for StallAfter, or the topic
// unavailable for as long). A journal file that cannot be read is not a stall: the others ship,
// and journal_read_errors_total counts it. It is cheap (no I/O).
func (s *Source) Ready() error {
	running := s.runningAt.Load()
	if running == 0 {
		return fmt.Errorf("%w: starting (reading back what the previous run produced)", ErrStalled)
	}
	after := cmp.Or(s.deps.StallAfter, 15*time.Second)
	now := time.Now()
	since := func(ns int64) time.Duration { return now.Sub(time.Unix(0, max(ns, running))) }
	var errs []error
	if ws := s.waitSince.Load(); ws != 0 && since(ws) >= after && since(s.ackedAt.Load()) >= after {
		errs = append(errs, fmt.Errorf("%w: entries wait for Kafka since %s, no acknowledgement for %s", ErrStalled,
			since(ws).Round(100*time.Millisecond), since(s.ackedAt.Load()).Round(100*time.Millisecond)))
	}
	if d := since(s.topicOKAt.Load()); d >= after {
		why := "unknown"
		if p := s.topicErr.Load(); p != nil {
			why = *p
		}
		errs = append(errs, fmt.Errorf("%w: topic %s unavailable for %s: %s", ErrStalled, s.deps.Topic, d.Round(100*time.Millisecond), why))
	}
	return errors.Join(errs...)
}

type mark struct {
	Seqnum   uint64
	Realtime uint64
}

// New makes a source; reg receives its metrics.
func New(cfg Config, deps Deps, reg prometheus.Registerer) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, deps: deps, m: newSourceMetrics(reg), log: deps.Log,
		units: map[string]bool{}, lostLog: rate.NewLimiter(rate.Every(10*time.Second), 20), errLog: rate.NewLimiter(rate.Every(10*time.Second), 5),
		chunkMax: 64 << 10, wake: make(chan struct{}, 1), queues: map[[16]byte][]*chunk{}, marks: map[[16]byte]mark{}, inKafka: map[[16]byte]map[uint64]bool{}}
	for _, u := range cfg.Units {
		s.units[u] = true
	}
	if cfg.MachineIDFile != "" {
		if b, err := os.ReadFile(cfg.MachineIDFile); err == nil && len(strings.TrimSpace(string(b))) == 32 {
			s.machine = strings.TrimSpace(string(b))
		} else if deps.Log != nil {
			deps.Log.Info("machine ID not readable: every journal subdirectory is read", "file", cfg.MachineIDFile, "err", err)
		}
	}
	for _, f := range cfg.Fields {
		s.fields = append(s.fields, []byte(f))
	}
	return s, nil
}

// chunk is one batch of entries of one stream, produced together; its checkpoint (last) is
// safe once every record of it and of the stream's earlier chunks is acknowledged.
type chunk struct {
	stream   [16]byte
	last     mark
	slab     []byte   // the records' values, one after another
	ends     []int    // where each value ends in slab
	keys     [][]byte // each record's key
	entries  int64
	reserved int64
	pending  atomic.Int64
	failed   atomic.Bool
	err      atomic.Pointer[error]
	s        *Source
}

func (ch *chunk) onPromise(_ *kgo.Record, err error) {
	if err != nil && ch.failed.CompareAndSwap(false, true) {
		ch.err.Store(&err)
	}
	if ch.pending.Add(-1) == 0 {
		if !ch.failed.Load() {
			ch.s.ackedAt.Store(time.Now().UnixNano())
		}
		// The bytes go back now, not when the Run loop folds the chunk in: the loop may be
		// waiting for them in Acquire.
		ch.s.deps.Budget.Release(Participant, ch.reserved)
		ch.s.flight.Add(-1)
		ch.s.mu.Lock()
		ch.s.done = append(ch.s.done, ch)
		ch.s.mu.Unlock()
		select {
		case ch.s.wake <- struct{}{}:
		default:
		}
	}
}

type ckFile struct {
	Version int        `json:"version"`
	SavedAt time.Time  `json:"saved_at"`
	Streams []ckStream `json:"streams"`
}

type ckStream struct {
	SeqnumID string `json:"seqnum_id"`
	Seqnum   uint64 `json:"seqnum"`
	Realtime uint64 `json:"realtime_usec"`
}

// load reads the checkpoint; ok false when there is none.
func (s *Source) load() (ck ckFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(s.deps.CheckpointDir, CheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return ck, false, nil
	}
	if err != nil {
		return ck, false, fmt.Errorf("journal checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &ck); err != nil || ck.Version != 1 {
		return ck, false, fmt.Errorf("journal checkpoint %s: %w: %v (remove it to read the journal from its oldest entry)", filepath.Join(s.deps.CheckpointDir, CheckpointFile), checkpoint.ErrCorrupt, err)
	}
	return ck, true, nil
}

func (s *Source) save() error {
	s.mu.Lock()
	ck := ckFile{Version: 1, SavedAt: time.Now().UTC()}
	for id, m := range s.marks {
		ck.Streams = append(ck.Streams, ckStream{SeqnumID: ID128(id), Seqnum: m.Seqnum, Realtime: m.Realtime})
	}
	s.dirty = false
	s.mu.Unlock()
	b, _ := json.Marshal(ck)
	if err := checkpoint.WriteFileAtomic(s.deps.CheckpointDir, CheckpointFile, b); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("save journal checkpoint: %w", err)
	}
	s.savedAt = time.Now()
	return nil
}

// newReader makes a reader resuming at the acknowledged marks.
func (s *Source) newReader(fresh bool) *Reader {
	r := &Reader{Dirs: s.cfg.Dirs, MachineID: s.machine, Fresh: fresh}
	s.mu.Lock()
	for id, m := range s.marks {
		r.Resume(id, m.Seqnum)
	}
	s.mu.Unlock()
	return r
}

// Run reads and ships until ctx ends; then it waits (up to grace) for what is in flight and
// saves the checkpoint.
func (s *Source) Run(ctx context.Context) error {
	ck, had, err := s.load()
	if err != nil {
		return err
	}
	for _, st := range ck.Streams {
		var id [16]byte
		if n, err := fmtHex(st.SeqnumID, id[:]); err != nil || n != 16 {
			return fmt.Errorf("journal checkpoint: seqnum_id %q", st.SeqnumID)
		}
		s.marks[id] = mark{st.Seqnum, st.Realtime}
	}
	if had {
		s.readBack(ctx, ck.SavedAt)
	}
	r := s.newReader(!had)
	defer func() { r.Close() }()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	s.runningAt.Store(time.Now().UnixNano())
	for {
		s.fold()
		if s.flight.Load() == 0 && !s.failedChunk() {
			s.waitSince.Store(0) // everything read so far is acknowledged
		}
		if s.failedChunk() {
			// A record Kafka did not take: read again from the acknowledged position once
			// nothing is in flight (what was acknowledged after it is sent again).
			s.waitIdle(ctx)
			s.fold()
			s.clearFailed()
			r.Close()
			r = s.newReader(false)
		}
		if err := s.deps.Sink.Ensure(ctx, s.deps.Topic, 0); err != nil {
			s.m.topicErrors.Inc()
			s.logErr("journal topic unavailable; entries wait in the journal", "topic", s.deps.Topic, "err", err)
			why := err.Error()
			s.topicErr.Store(&why)
		} else {
			s.topicOKAt.Store(time.Now().UnixNano())
			if err := s.pollOnce(ctx, r); err != nil && ctx.Err() == nil {
				s.m.fileErrors.Inc()
				s.logErr("journal read error", "err", err)
			}
		}
		s.m.openFiles.Set(float64(r.OpenFiles()))
		if s.dirty && time.Since(s.savedAt) >= s.cfg.CheckpointInterval {
			if err := s.save(); err != nil {
				s.m.checkpointErrors.Inc()
				s.logErr("journal checkpoint not saved", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return s.shutdown()
		case <-tick.C:
		case <-s.wake:
		}
	}
}

func fmtHex(s string, dst []byte) (int, error) {
	if len(s) != 2*len(dst) {
		return 0, errors.New("length")
	}
	for i := range dst {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return i, err
		}
		dst[i] = byte(v)
	}
	return len(dst), nil
}

// ShutdownGrace bounds how long shutdown waits for Kafka.
var shutdownGrace = 20 * time.Second

func (s *Source) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	s.waitIdle(ctx)
	s.fold()
	if err := s.save(); err != nil {
		return err
	}
	return nil
}

func (s *Source) waitIdle(ctx context.Context) {
	for s.flight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Source) failedChunk() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queues {
		for _, ch := range q {
			if ch.failed.Load() {
				return true
			}
		}
	}
	return false
}

// clearFailed forgets the chunks after the acknowledged marks (all done once idle).
func (s *Source) clearFailed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.queues {
		delete(s.queues, id)
	}
}

// fold applies finished chunks: acknowledged ones, in order per stream, move the marks.
func (s *Source) fold() {
	s.mu.Lock()
	done := s.done
	s.done = nil
	for _, ch := range done {
		if ch.failed.Load() {
			s.m.produceErrors.Inc()
			if e := ch.err.Load(); e != nil {
				s.deps.Sink.TooLarge(s.deps.Topic, *e)
				s.logErrLocked("journal entries not acknowledged by Kafka; they are read again", "err", *e)
			}
			continue
		}
		s.m.entriesAcked.Add(float64(ch.entries))
	}
	for id, q := range s.queues {
		i := 0
		for ; i < len(q) && q[i].pending.Load() == 0 && !q[i].failed.Load(); i++ {
			s.marks[id] = q[i].last
			s.dirty = true
		}
		s.queues[id] = q[i:]
	}
	s.mu.Unlock()
}

func (s *Source) logErr(msg string, args ...any) {
	if s.errLog.Allow() {
		s.log.Error(msg, args...)
	}
}

func (s *Source) logErrLocked(msg string, args ...any) { s.logErr(msg, args...) }

// pollOnce reads what the journal has and produces it, one chunk at a time within the budget.
func (s *Source) pollOnce(ctx context.Context, r *Reader) error {
	room := s.deps.Sink.LineRoom(s.deps.Topic)
	var ch *chunk
	var errs []error
	for {
		reserve := int64(4 * s.chunkMax)
		if err := s.deps.Budget.Acquire(ctx, Participant, reserve); err != nil {
			return err
		}
		ch = &chunk{s: s, reserved: reserve}
		full := false
		err := r.Poll(func(st *Stream, lost uint64, e *Entry) bool {
			if ch.entries > 0 && (ch.stream != st.ID || len(ch.slab) >= s.chunkMax) {
				full = true
				return false
			}
			ch.stream = st.ID
			if _, ok := s.marks[st.ID]; !ok {
				// A stream seen for the first time: its start is saved before anything of it
				// is produced, so that a restart before the first acknowledgement counts what
				// vacuum removes meanwhile as lost instead of starting afresh.
				s.mu.Lock()
				s.marks[st.ID] = mark{Seqnum: e.Seqnum - lost - 1}
				s.mu.Unlock()
				s.newStream = true
			}
			if lost > 0 {
				s.lost(st, lost, e)
			}
			s.m.entriesRead.Inc()
			ch.entries++
			ch.last = mark{e.Seqnum, e.Realtime}
			if k := s.inKafka[st.ID]; k != nil && k[e.Seqnum] {
				delete(k, e.Seqnum)
				s.m.alreadyInKafka.Inc()
				return true
			}
			if !s.keep(e) {
				s.m.entriesExcluded.Inc()
				return true
			}
			s.appendEntry(ch, st, e, room)
			return true
		})
		if err != nil {
			errs = append(errs, err)
		}
		if ch.entries == 0 {
			s.deps.Budget.Release(Participant, reserve)
			return errors.Join(errs...)
		}
		if s.newStream {
			if err := s.save(); err != nil {
				// Nothing of the new stream is produced before its start is saved.
				s.deps.Budget.Release(Participant, reserve)
				s.mu.Lock()
				delete(s.marks, ch.stream)
				s.mu.Unlock()
				r.Close()
				*r = *s.newReader(true)
				s.m.checkpointErrors.Inc()
				return errors.Join(append(errs, err)...)
			}
			s.newStream = false
		}
		s.submit(ctx, ch)
		if !full {
			return errors.Join(errs...)
		}
	}
}

// submit produces a chunk's records (or, for a chunk of excluded entries only, completes it).
func (s *Source) submit(ctx context.Context, ch *chunk) {
	// What the chunk holds: its values, and franz-go's copy in its batches.
	if need := 2 * int64(len(ch.slab)); need > ch.reserved {
		s.deps.Budget.Force(Participant, need-ch.reserved)
		ch.reserved = need
	} else {
		s.deps.Budget.Release(Participant, ch.reserved-need)
		ch.reserved = need
	}
	recs := make([]kgo.Record, len(ch.ends))
	start := 0
	for i, end := range ch.ends {
		recs[i] = kgo.Record{Topic: s.deps.Topic, Key: ch.keys[i], Value: ch.slab[start:end:end], Headers: []kgo.RecordHeader{hdrNamespace, hdrSchema}}
		start = end
	}
	ch.ends, ch.keys = nil, nil
	s.mu.Lock()
	s.queues[ch.stream] = append(s.queues[ch.stream], ch)
	s.mu.Unlock()
	s.flight.Add(1)
	s.waitSince.CompareAndSwap(0, time.Now().UnixNano())
	ch.pending.Store(int64(len(recs)) + 1)
	for i := range recs {
		s.deps.Sink.Produce(ctx, &recs[i], ch.onPromise)
	}
	ch.onPromise(nil, nil) // the chunk's own reference
}

// keep applies the configured matches.
func (s *Source) keep(e *Entry) bool {
	if len(s.units) > 0 {
		u, _ := e.Field("_SYSTEMD_UNIT")
		if !s.units[string(u)] {
			return false
		}
	}
	if s.cfg.MaxPriority < 7 {
		if p, ok := e.Field("PRIORITY"); ok && len(p) == 1 && p[0] >= '0' && p[0] <= '7' && int(p[0]-'0') > s.cfg.MaxPriority {
			return false
		}
	}
	return true
}

func (s *Source) lost(st *Stream, n uint64, e *Entry) {
	// Entries the read-back found in Kafka were shipped, not lost: the rest are lost, in runs.
	k := s.inKafka[st.ID]
	first := uint64(0) // start of the current run of lost entries (0: none)
	for q := e.Seqnum - n; q <= e.Seqnum; q++ {
		if q < e.Seqnum && !k[q] {
			if first == 0 {
				first = q
			}
			continue
		}
		delete(k, q)
		if first != 0 {
			s.m.entriesLost.Add(float64(q - first))
			if s.lostLog.Allow() {
				s.log.Warn("journal entries lost: removed (vacuum or rotation limits) before they were read", "seqnum_id", ID128(st.ID),
					"first_seqnum", first, "last_seqnum", q-1, "entries", q-first)
			}
			first = 0
		}
	}
}

// Headers of journal records.
var (
	hdrNamespace = kgo.RecordHeader{Key: record.HeaderNamespace, Value: []byte(topic.NodeSystem)}
	hdrSchema    = kgo.RecordHeader{Key: record.HeaderSchema, Value: record.SchemaHeaderValue}
)

// appendEntry encodes e's record(s) into ch: the message (split into ordered chunks when
// longer than the topic allows), and its fields.
func (s *Source) appendEntry(ch *chunk, st *Stream, e *Entry, room int) {
	frag := s.fragment(st)
	fields := AppendFields(nil, e, s.fields)
	l := record.Line{Offset: int64(e.Seqnum), Fields: fields}
	l.TS = time.UnixMicro(int64(e.Realtime)).UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000000Z07:00")
	msg, _ := e.Field("MESSAGE")
	maxMsg := s.deps.MaxLineBytes
	if room > 0 {
		key := len(s.deps.Node) + 64
		maxMsg = min(maxMsg, record.MaxMessageLen(room-key-64, len(frag)+l.ExtraLen()))
	}
	maxMsg = max(maxMsg, 256)
	unit, _ := e.Field("_SYSTEMD_UNIT")
	key := []byte(s.deps.Node + "/" + string(unit))
	if len(msg) <= maxMsg {
		s.appendRecord(ch, key, frag, &l, msg)
		return
	}
	s.m.entriesSplit.Inc()
	l.Split = true
	for i := 0; len(msg) > 0; i++ {
		n := min(len(msg), maxMsg)
		l.SplitIndex, l.SplitLast = i, n == len(msg)
		s.appendRecord(ch, key, frag, &l, msg[:n])
		msg = msg[n:]
	}
}

func (s *Source) appendRecord(ch *chunk, key, frag []byte, l *record.Line, msg []byte) {
	l.Message = msg
	var invalid bool
	ch.slab, invalid = record.AppendJSON(ch.slab, frag, l)
	if invalid {
		s.m.invalidUTF8.Inc()
	}
	ch.ends = append(ch.ends, len(ch.slab))
	ch.keys = append(ch.keys, key)
}

// fragment is the record's source part for stream st.
func (s *Source) fragment(st *Stream) []byte {
	src := record.Source{Namespace: topic.NodeSystem, Node: s.deps.Node, Cluster: s.deps.Cluster, File: "journal", Src: "journal:" + ID128(st.ID)}
	return src.Fragment()
}

// AppendFields appends the record's fields object for e: unit, priority, pid, command,
// hostname and boot ID, then the allowed fields (by their journal names) that e has.
func AppendFields(b []byte, e *Entry, allowed [][]byte) []byte {
	b = append(b, '{')
	n := 0
	member := func(name string, v []byte, number bool) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b, _ = record.AppendString(b, name)
		b = append(b, ':')
		if number && isUint(v) {
			b = append(b, v...)
			return
		}
		b, _ = record.AppendString(b, v)
	}
	for _, f := range [...]struct {
		name, key string
		number    bool
	}{{"unit", "_SYSTEMD_UNIT", false}, {"priority", "PRIORITY", true}, {"pid", "_PID", true}, {"command", "_COMM", false}, {"hostname", "_HOSTNAME", false}} {
		if v, ok := e.Field(f.key); ok {
			member(f.name, v, f.number)
		}
	}
	var boot [32]byte
	hexEncode(boot[:], e.BootID[:])
	member("boot_id", boot[:], false)
	for _, k := range allowed {
		if v, ok := e.Field(string(k)); ok {
			member(string(k), v, false)
		}
	}
	return append(b, '}')
}

func isUint(v []byte) bool {
	if len(v) == 0 || len(v) > 18 || v[0] == '0' && len(v) > 1 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func hexEncode(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, c := range src {
		dst[2*i], dst[2*i+1] = digits[c>>4], digits[c&0xf]
	}
}

type sourceMetrics struct {
	entriesRead, entriesAcked, entriesLost, entriesExcluded, entriesSplit, invalidUTF8 prometheus.Counter
	produceErrors, topicErrors, fileErrors, checkpointErrors                           prometheus.Counter
	alreadyInKafka, readbackErrors                                                     prometheus.Counter
	openFiles                                                                          prometheus.Gauge
}

func newSourceMetrics(reg prometheus.Registerer) *sourceMetrics {
	c := func(name, help string) prometheus.Counter {
		v := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "logrouter", Subsystem: "collector", Name: name, Help: help})
		reg.MustRegister(v)
		return v
	}
	m := &sourceMetrics{
		entriesRead:      c("journal_entries_read_total", "Journal entries read (shipped or excluded by the matches)."),
		entriesAcked:     c("journal_entries_acked_total", "Journal entries whose records Kafka acknowledged (and excluded ones passed)."),
		entriesLost:      c("journal_entries_lost_total", "Journal entries removed (vacuum) before they were read: the gaps in the journal's sequence numbers."),
		entriesExcluded:  c("journal_entries_excluded_total", "Journal entries not shipped because of --journal-units or --journal-max-priority."),
		alreadyInKafka:   c("journal_entries_already_in_kafka_total", "Journal entries read again after a restart and not sent, because the read-back found their records in Kafka."),
		readbackErrors:   c("journal_readback_errors_total", "Failed steps of the journal's restart read-back (entries it could not look up are sent again)."),
		entriesSplit:     c("journal_entries_split_total", "Journal entries whose message was longer than a record may carry, shipped as split chunks."),
		invalidUTF8:      c("journal_invalid_utf8_records_total", "Journal records whose message was not valid UTF-8 (shipped with message_base64)."),
		produceErrors:    c("journal_produce_errors_total", "Batches of journal entries Kafka did not acknowledge (read again from the last acknowledged entry)."),
		topicErrors:      c("journal_topic_errors_total", "Failures to create or describe the journal's topic (entries wait in the journal)."),
		fileErrors:       c("journal_read_errors_total", "Journal polls with a file that could not be read (unsupported format, corrupt object)."),
		checkpointErrors: c("journal_checkpoint_errors_total", "Failed saves of the journal checkpoint."),
	}
	m.openFiles = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "logrouter", Subsystem: "collector", Name: "journal_open_files", Help: "Journal files held open."})
	reg.MustRegister(m.openFiles)
	return m
}

// readBack narrows what a restart sends twice: the entries Kafka acknowledged after the last
// checkpoint was saved. It reads the topic from shortly before the save for this node's journal
// records past each stream's mark; the contiguous run after the mark moves the mark, the rest
// is skipped when read again. A failed look-up only means entries are sent again. Without a node
// name nothing is read back (another node's records could look like ours).
func (s *Source) readBack(ctx context.Context, savedAt time.Time) {
	if s.deps.Node == "" || len(s.marks) == 0 {
		return
	}
	opts, err := s.deps.Kafka.Options()
	if err != nil {
		s.readbackFailed("client", err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	bySrc := map[string][16]byte{}
	for id := range s.marks {
		bySrc["journal:"+ID128(id)] = id
	}
	found := 0
	sink.ReadBack(rctx, opts, kadm.NewClient(s.deps.Sink.Client()), s.deps.Topic, savedAt.Add(-10*time.Second).UnixMilli(), func(r *kgo.Record) {
		var v struct {
			Node   string `json:"node"`
			Src    string `json:"src"`
			Offset int64  `json:"offset"`
			Split  *struct {
				Last bool `json:"last"`
			} `json:"split"`
		}
		if json.Unmarshal(r.Value, &v) != nil || v.Node != s.deps.Node || v.Split != nil && !v.Split.Last {
			return // a split entry counts as in Kafka once its last chunk is
		}
		id, ok := bySrc[v.Src]
		if !ok || uint64(v.Offset) <= s.marks[id].Seqnum {
			return
		}
		if s.inKafka[id] == nil {
			s.inKafka[id] = map[uint64]bool{}
		}
		s.inKafka[id][uint64(v.Offset)] = true
		found++
	}, s.readbackFailed)
	// Entries right after a mark that Kafka has move the mark (nothing is read for them again).
	for id, k := range s.inKafka {
		m := s.marks[id]
		for k[m.Seqnum+1] {
			delete(k, m.Seqnum+1)
			m.Seqnum++
		}
		s.marks[id] = m
	}
	s.log.Info("read back the journal entries the previous run produced after its checkpoint", "records_found", found)
}

func (s *Source) readbackFailed(step string, err error) {
	s.m.readbackErrors.Inc()
	s.logErr("read-back of the previous run's journal records failed; entries it would have found are sent again", "step", step, "err", err)
}
