package archiver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"gocloud.dev/blob"
	"golang.org/x/time/rate"

	// Drivers for the bucket URL schemes the archiver accepts.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/spool"
	"github.com/logrouter/logrouter/internal/record"
)

// maxClockSkew is how far ahead of this archiver's clock a Kafka timestamp may be before it is
// capped for bucketing.
const maxClockSkew = time.Hour

// Archiver archives the topics of Config.TopicsRegex into Config.Bucket.
type Archiver struct {
	// clientReady is closed once cl and adm are set: the group starts joining inside
	// kgo.NewClient, so franz-go may call adjust before NewClient has returned.
	clientReady chan struct{}

	cfg    Config
	log    *slog.Logger
	m      *metrics
	bucket *blob.Bucket
	// ownBucket: New opened the bucket, so Run closes it.
	ownBucket bool
	format    layout.Format
	topicRe   *regexp.Regexp
	nsGroup   int // index of the "namespace" group in topicRe, or -1
	writer    string
	// localDir is the directory of a file:// bucket (claims are linked there atomically).
	localDir string

	cl  *kgo.Client
	adm *kadm.Client

	mu      sync.Mutex
	cond    *sync.Cond // signalled when an upload chain ends or spool bytes shrink
	parts   map[tp]*partition
	spooled int64 // bytes of sealed ranges waiting on disk
	seq     uint64
	// fetched holds the committed offsets and metadata of the last offset fetch.
	fetched map[tp]committed

	uploadSem chan struct{}
	uploadCtx context.Context
	chains    sync.WaitGroup

	health *health
	// uploadWarn bounds the log lines of failing uploads (each is counted in errors_total).
	uploadWarn rate.Sometimes
	fetchWarn  rate.Sometimes
	// leftRecords and leftRanges count what the drain abandoned (a.mu).
	leftRecords, leftRanges int64
}

type tp struct {
	topic     string
	partition int32
}

type committed struct {
	offset   int64
	bucketMs int64
}

// partition is the archiver's state for one owned topic partition.
type partition struct {
	tp tp
	// gen changes whenever earlier work of the partition must be abandoned (ownership lost, a
	// claim race lost); segments of an older gen are discarded instead of uploaded.
	gen   uint64
	owned bool
	ready bool
	// next is the first offset not yet in a range; bucketMs is the running maximum of the
	// Kafka timestamps up to next (the clock the partition is bucketed by).
	next     int64
	bucketMs int64
	cur      *segment
	pending  []*segment
	chain    bool // an upload goroutine is working through pending
	resync   bool // next was moved by a lost claim race; the fetch position must follow
	lag      int64
}

// segment is one offset range of a partition being spooled or uploaded.
type segment struct {
	part     *partition
	gen      uint64
	start    int64
	end      int64
	hour     time.Time
	bucketMs int64
	firstMs  int64                    // Kafka time of the first record
	spools   map[string]*spool.Writer // by namespace
	bytes    int64
	records  int64
	opened   time.Time
	sealed   time.Time
	reason   string
}

// Option adjusts New for embedding and tests.
type Option func(*options)

type options struct {
	bucket *blob.Bucket
}

// WithBucket archives into b instead of opening Config.Bucket, which is then not checked (it
// only names the bucket in logs). It is how tests archive into memory (memblob): the archive
// command accepts durable URLs only. b's driver must enforce IfNotExist atomically (object
// stores and memblob do; for fileblob use a file:// Config.Bucket, whose claims use link(2)).
// The caller keeps ownership of b (it is not closed).
func WithBucket(b *blob.Bucket) Option { return func(o *options) { o.bucket = b } }

// New validates cfg and opens the bucket.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Archiver, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.validate(o.bucket == nil); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	format, _ := layout.ParseFormat(cfg.Format)
	re := regexp.MustCompile(cfg.TopicsRegex)
	b, local := o.bucket, ""
	if b == nil {
		if local = localDir(cfg.Bucket); local != "" {
			// fileblob refuses a missing directory; a local archive (dev mode, tests) starts empty.
			if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, fmt.Errorf("bucket directory: %w", err)
			}
		}
		var err error
		if b, err = blob.OpenBucket(context.Background(), cfg.Bucket); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
		}
	}
	host, _ := os.Hostname()
	a := &Archiver{
		cfg: cfg, log: log, m: newMetrics(reg), bucket: b, ownBucket: o.bucket == nil, format: format, topicRe: re,
		nsGroup: re.SubexpIndex("namespace"), writer: fmt.Sprintf("%s/%d", host, os.Getpid()),
		localDir: local, parts: map[tp]*partition{}, uploadSem: make(chan struct{}, cfg.Uploaders),
	}
	a.cond = sync.NewCond(&a.mu)
	a.health = newHealth(time.Now())
	a.uploadWarn = rate.Sometimes{First: 3, Interval: 10 * time.Second}
	a.fetchWarn = rate.Sometimes{First: 3, Interval: 10 * time.Second}
	registerHealth(reg, a.oldestUnarchivedAge, a.health.kafkaContactAge)
	return a, nil
}

// Run consumes and archives until ctx ends, then seals every open range, uploads what it can
// within DrainTimeout, commits, and leaves the group.
func (a *Archiver) Run(ctx context.Context) error {
	if a.ownBucket {
		defer a.bucket.Close()
	}
	unlock, err := prepareSpoolDir(a.cfg.SpoolDir)
	if err != nil {
		return err
	}
	defer unlock()
	kopts, err := a.cfg.Kafka.Options()
	if err != nil {
		return err
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(a.cfg.Group),
		kgo.ConsumeTopics(a.cfg.TopicsRegex), kgo.ConsumeRegex(),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(a.onAssigned),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onLost),
		kgo.OnOffsetsFetched(a.onOffsetsFetched),
		kgo.AdjustFetchOffsetsFn(a.adjust),
		kgo.MetadataMaxAge(a.cfg.TopicRefresh),
		kgo.MetadataMinAge(min(a.cfg.TopicRefresh, time.Second)),
		kgo.FetchMaxBytes(a.cfg.fetchMaxBytes()),
		kgo.FetchMaxPartitionBytes(min(a.cfg.fetchMaxBytes(), 4<<20)),
		kgo.MaxConcurrentFetches(2),
		kgo.SessionTimeout(a.cfg.SessionTimeout),
		kgo.WithHooks(a.health),
	)
	if a.cfg.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(a.cfg.InstanceID))
	}
	a.clientReady = make(chan struct{})
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	a.cl, a.adm = cl, kadm.NewClient(cl)
	close(a.clientReady)
	uploadCtx, cancelUploads := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelUploads()
	a.uploadCtx = uploadCtx

	a.log.Info("archiver running", "bucket", a.cfg.Bucket, "prefix", a.cfg.Prefix, "group", a.cfg.Group, "format", a.format)
	// Wake waitSpoolRoom when ctx ends.
	stopWake := context.AfterFunc(ctx, func() { a.mu.Lock(); a.cond.Broadcast(); a.mu.Unlock() })
	defer stopWake()
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); a.sweepLoop(ctx) }()
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); a.lagLoop(ctx) }()

	for ctx.Err() == nil {
		a.waitSpoolRoom(ctx)
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := cl.PollRecords(pctx, 8192)
		cancel()
		if fs.IsClientClosed() {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			a.m.errors.WithLabelValues("fetch").Inc()
			a.fetchWarn.Do(func() { a.log.Warn("fetch error", "topic", t, "partition", p, "err", err) })
		})
		a.mu.Lock()
		fs.EachPartition(a.addFetch)
		a.applyResyncs()
		a.sealAged(time.Now())
		a.updateLag()
		a.mu.Unlock()
		cl.AllowRebalance()
	}

	// Drain: seal every open range and upload what is pending.
	a.mu.Lock()
	for _, p := range a.parts {
		if p.cur != nil {
			a.seal(p, "shutdown")
		}
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.chains.Wait(); close(done) }()
	var drainErr error
	select {
	case <-done:
	case <-time.After(a.cfg.DrainTimeout):
		cancelUploads()
		<-done
		a.mu.Lock()
		records, ranges := a.leftRecords, a.leftRanges
		a.mu.Unlock()
		if records > 0 {
			// Nothing of them is committed, so the next owner archives them (from Kafka, or from
			// staging when a claim landed before the bucket failed); still, this run did not do
			// its job, and the exit code must say so.
			a.log.Error("drain timeout: abandoning uploads; the records are left to the next run (not committed)",
				"drain_timeout", a.cfg.DrainTimeout.String(), "records_left", records, "ranges_left", ranges, "ready", errString(a.Ready()))
			drainErr = fmt.Errorf("%w after %v: %d records in %d ranges not archived; not committed: the next run archives them",
				ErrDrainTimeout, a.cfg.DrainTimeout, records, ranges)
		}
	}
	cl.Close()
	<-sweepDone
	<-lagDone
	a.mu.Lock()
	for _, p := range a.parts {
		a.abandon(p)
	}
	a.mu.Unlock()
	return drainErr
}

// ErrDrainTimeout means Run gave up uploads at shutdown: their offsets are not committed, so the
// next run archives the records.
var ErrDrainTimeout = errors.New("drain timeout")

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// prepareSpoolDir creates and locks the spool directory and deletes what a previous process
// left: those records are read again from Kafka.
func prepareSpoolDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool dir %s is in use by another archiver: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	for _, e := range entries {
		if e.Name() != ".lock" {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return func() { lock.Close() }, nil
}

// namespaceOf routes a record by its namespace header, falling back to the topic name.
func (a *Archiver) namespaceOf(r *kgo.Record) (ns string, invalid string) {
	for _, h := range r.Headers {
		if h.Key == record.HeaderNamespace {
			if layout.ValidNamespace(string(h.Value)) {
				return string(h.Value), ""
			}
			invalid = "namespace_header"
			break
		}
	}
	if invalid == "" {
		invalid = "no_namespace_header"
	}
	if a.nsGroup >= 0 {
		if m := a.topicRe.FindStringSubmatch(r.Topic); m != nil && layout.ValidNamespace(m[a.nsGroup]) {
			return m[a.nsGroup], invalid
		}
	}
	// Hive engines skip directories starting with "_": such records stay out of analysts'
	// tables but are archived and counted.
	return "_unrouted", invalid
}

func header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// addFetch spools one partition's fetched records. a.mu is held.
func (a *Archiver) addFetch(f kgo.FetchTopicPartition) {
	p := a.parts[tp{f.Topic, f.Partition}]
	if p == nil || !p.owned || !p.ready || p.resync {
		return
	}
	for _, r := range f.Records {
		if r.Offset < p.next {
			continue // already in a claimed range (after a resync or a restart)
		}
		if err := a.add(p, r); err != nil {
			a.m.errors.WithLabelValues("spool").Inc()
			a.log.Error("spool failed; abandoning the partition's open ranges", "topic", p.tp.topic, "partition", p.tp.partition, "err", err)
			a.resyncTo(p, p.firstUnclaimed())
			return
		}
	}
	p.lag = max(0, f.HighWatermark-p.firstUnclaimed())
}

func (a *Archiver) add(p *partition, r *kgo.Record) error {
	ns, invalid := a.namespaceOf(r)
	if invalid == "namespace_header" || invalid == "no_namespace_header" && ns == "_unrouted" {
		a.m.invalid.WithLabelValues(invalid).Inc()
	}
	ms := r.Timestamp.UnixMilli()
	// A timestamp far in the future (a producer with a broken clock) would hold the running
	// maximum, and so every later record of the partition, in that future hour: cap it.
	if limit := time.Now().Add(maxClockSkew).UnixMilli(); ms > limit {
		ms = limit
		a.m.invalid.WithLabelValues("future_timestamp").Inc()
	}
	bms := max(p.bucketMs, ms)
	hour := time.UnixMilli(bms).UTC().Truncate(time.Hour)
	if p.cur != nil && !p.cur.hour.Equal(hour) {
		a.seal(p, "hour")
	}
	if p.cur == nil {
		p.cur = &segment{part: p, gen: p.gen, start: p.next, hour: hour, firstMs: ms, spools: map[string]*spool.Writer{}, opened: time.Now()}
	}
	s := p.cur
	w := s.spools[ns]
	if w == nil {
		a.seq++
		path := filepath.Join(a.cfg.SpoolDir, fmt.Sprintf("%s+%d+%d+%s.%d.spool", p.tp.topic, p.tp.partition, s.start, ns, a.seq))
		var err error
		if w, err = spool.Create(path, 32<<10); err != nil {
			return err
		}
		s.spools[ns] = w
	}
	if err := w.Append(&spool.Frame{Offset: r.Offset, KafkaTime: r.Timestamp, Pod: header(r, record.HeaderPod), Container: header(r, record.HeaderContainer), Value: r.Value}); err != nil {
		return err
	}
	p.bucketMs = bms
	p.next = r.Offset + 1
	s.end, s.bucketMs = r.Offset, bms
	s.bytes += int64(len(r.Value))
	s.records++
	a.m.records.WithLabelValues(p.tp.topic).Inc()
	if s.bytes >= a.cfg.MaxObjectBytes {
		a.seal(p, "size")
	}
	return nil
}

// firstUnclaimed is where a partition's unclaimed work starts: the start of its oldest
// pending or open range.
func (p *partition) firstUnclaimed() int64 {
	if len(p.pending) > 0 {
		return p.pending[0].start
	}
	if p.cur != nil {
		return p.cur.start
	}
	return p.next
}

// seal closes the partition's open range and queues it for upload. a.mu is held.
func (a *Archiver) seal(p *partition, reason string) {
	s := p.cur
	p.cur = nil
	if s == nil {
		return
	}
	s.reason, s.sealed = reason, time.Now()
	a.m.flushes.WithLabelValues(reason).Inc()
	p.pending = append(p.pending, s)
	a.spooled += s.bytes
	a.m.spoolBytes.Set(float64(a.spooled))
	if !p.chain {
		p.chain = true
		a.chains.Add(1)
		go a.uploadChain(p)
	}
}

// sealAged seals ranges whose first record arrived MaxObjectAge ago. a.mu is held.
func (a *Archiver) sealAged(now time.Time) {
	for _, p := range a.parts {
		if p.aged(now, a.cfg.MaxObjectAge) {
			a.seal(p, "age")
		}
	}
}

// aged reports whether the open range is due for its age seal. Not while an earlier range of
// the partition waits for upload: that upload is what holds the records back, and sealing
// more ranges behind it would not archive them sooner; it would multiply the objects until
// uploads could never catch up (every partition sealing one object per age, each costing
// several bucket requests and a commit). The range keeps growing instead (bounded by
// MaxObjectBytes and the hour) and is sealed when the chain before it is done (uploadChain).
func (p *partition) aged(now time.Time, maxAge time.Duration) bool {
	return p.cur != nil && len(p.pending) == 0 && now.Sub(p.cur.opened) >= maxAge
}

func (a *Archiver) updateLag() {
	byTopic := map[string]int64{}
	for _, p := range a.parts {
		if p.owned {
			byTopic[p.tp.topic] += p.lag
		}
	}
	for t, l := range byTopic {
		a.m.lag.WithLabelValues(t).Set(float64(l))
	}
}

// lagLoop refreshes the lag of owned partitions from the brokers' end offsets, so the gauge is
// right for partitions that fetch nothing (idle, or paused by a full spool).
func (a *Archiver) lagLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		topics := map[string]bool{}
		for _, p := range a.parts {
			if p.owned && p.ready {
				topics[p.tp.topic] = true
			}
		}
		a.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		names := make([]string, 0, len(topics))
		for t := range topics {
			names = append(names, t)
		}
		ends, err := a.adm.ListEndOffsets(ctx, names...)
		if err != nil {
			continue
		}
		a.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if p := a.parts[tp{o.Topic, o.Partition}]; p != nil && p.owned && p.ready && o.Err == nil {
				p.lag = max(0, o.Offset-p.firstUnclaimed())
			}
		})
		a.updateLag()
		a.mu.Unlock()
	}
}

// waitSpoolRoom blocks consumption while too much sealed data waits for upload.
func (a *Archiver) waitSpoolRoom(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.spooled >= a.cfg.MaxSpoolBytes && ctx.Err() == nil {
		a.cond.Wait()
	}
}

// discard deletes a segment's spool files.
func discard(s *segment) {
	for _, w := range s.spools {
		w.Discard()
	}
	s.spools = nil
}

// abandon drops all of a partition's unclaimed work. a.mu is held.
func (a *Archiver) abandon(p *partition) {
	p.gen++
	if p.cur != nil {
		discard(p.cur)
		p.cur = nil
	}
	// The chain goroutine owns pending[0] while it uploads; it sees the new gen and stops.
	keep := 0
	if p.chain && len(p.pending) > 0 {
		keep = 1
	}
	for _, s := range p.pending[keep:] {
		a.spooled -= s.bytes
		discard(s)
	}
	p.pending = p.pending[:keep]
	a.m.spoolBytes.Set(float64(a.spooled))
	a.cond.Broadcast()
}

// resyncTo abandons the partition's unclaimed work and moves its position to next. a.mu is
// held.
func (a *Archiver) resyncTo(p *partition, next int64) {
	a.abandon(p)
	p.next = next
	p.resync = true
}

// applyResyncs moves fetch positions of resynced partitions. a.mu is held; called between
// polls, when no rebalance can run.
func (a *Archiver) applyResyncs() {
	set := map[string]map[int32]kgo.EpochOffset{}
	for _, p := range a.parts {
		if p.resync && p.owned {
			if set[p.tp.topic] == nil {
				set[p.tp.topic] = map[int32]kgo.EpochOffset{}
			}
			set[p.tp.topic][p.tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: p.next}
			p.resync = false
		}
	}
	if len(set) > 0 {
		a.cl.SetOffsets(set)
	}
}

func (a *Archiver) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ps := range assigned {
		for _, n := range ps {
			k := tp{t, n}
			p := a.parts[k]
			if p == nil {
				p = &partition{tp: k}
				a.parts[k] = p
			}
			a.abandon(p)
			p.owned, p.ready, p.resync, p.next, p.lag = true, false, false, -1, 0
		}
	}
	a.countOwned()
	a.log.Info("partitions assigned", "partitions", assigned)
}

func (a *Archiver) countOwned() {
	n := 0
	for _, p := range a.parts {
		if p.owned {
			n++
		}
	}
	a.m.partitions.Set(float64(n))
}

// onRevoked gives partitions up: open and queued ranges are abandoned (nothing of them is
// claimed, so the next owner archives them), and an upload in flight is waited for briefly so
// the next owner does not race it (the claim protocol is safe even if it does).
func (a *Archiver) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a.release(revoked, 30*time.Second)
}

func (a *Archiver) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.release(lost, 0)
}

func (a *Archiver) release(ps map[string][]int32, wait time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	deadline := time.Now().Add(wait)
	for t, parts := range ps {
		for _, n := range parts {
			p := a.parts[tp{t, n}]
			if p == nil {
				continue
			}
			a.abandon(p)
			p.owned, p.ready = false, false
			for p.chain && time.Now().Before(deadline) {
				waitCond(a.cond, time.Until(deadline))
			}
			if !p.chain {
				delete(a.parts, p.tp)
			}
			a.m.lag.DeleteLabelValues(t)
		}
	}
	a.countOwned()
	a.log.Info("partitions released", "partitions", ps)
}

// waitCond waits on c (whose lock is held) for at most d.
func waitCond(c *sync.Cond, d time.Duration) {
	t := time.AfterFunc(d, func() { c.L.Lock(); c.Broadcast(); c.L.Unlock() })
	c.Wait()
	t.Stop()
}

// onOffsetsFetched remembers the committed offsets and their metadata (the bucketing clock).
func (a *Archiver) onOffsetsFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	m := map[tp]committed{}
	add := func(topic string, p int32, off int64, meta *string) {
		if off < 0 {
			return
		}
		c := committed{offset: off}
		if meta != nil {
			c.bucketMs, _ = strconv.ParseInt(*meta, 10, 64)
		}
		m[tp{topic, p}] = c
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset, p.Metadata)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset, p.Metadata)
			}
		}
	}
	a.mu.Lock()
	a.fetched = m
	a.mu.Unlock()
	return nil
}

// adjust finds where the archive of each assigned partition ends: from the committed offset
// (or the log start), it follows the claim chain (completing claims a crash left unpublished)
// and starts fetching at its end.
func (a *Archiver) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	select {
	case <-a.clientReady:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.mu.Lock()
	fetched := a.fetched
	a.mu.Unlock()
	var noCommit []string
	for t, ps := range offsets {
		for n := range ps {
			if _, ok := fetched[tp{t, n}]; !ok {
				noCommit = append(noCommit, t)
				break
			}
		}
	}
	var starts kadm.ListedOffsets
	if len(noCommit) > 0 {
		err := retry(ctx, a.log, "list start offsets", func() error {
			var err error
			starts, err = a.adm.ListStartOffsets(ctx, noCommit...)
			if err == nil {
				err = starts.Error()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	for t, ps := range offsets {
		for n := range ps {
			k := tp{t, n}
			c, ok := fetched[k]
			if !ok {
				lo, _ := starts.Lookup(t, n)
				c = committed{offset: lo.Offset}
			}
			var next, bms int64
			err := retry(ctx, a.log, "recover claim chain", func() error {
				var err error
				next, bms, err = a.followClaims(ctx, t, n, c.offset, c.bucketMs)
				if err != nil {
					a.m.errors.WithLabelValues("recover").Inc()
					// A bucket that cannot be read stops consumption here: readiness must show it.
					a.uploadResult(fmt.Errorf("recover claim chain of %s[%d]: %w", t, n, err))
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			a.mu.Lock()
			if p := a.parts[k]; p != nil && p.owned {
				p.next, p.bucketMs, p.ready = next, bms, true
			}
			a.mu.Unlock()
			ps[n] = kgo.NewOffset().At(next).WithEpoch(-1)
			a.log.Info("partition position", "topic", t, "partition", n, "committed", c.offset, "next", next)
		}
	}
	return offsets, nil
}

// retry runs fn until it succeeds or ctx ends, backing off up to 5s.
func retry(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		log.Warn(what+" failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func newAttemptID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
