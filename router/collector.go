// Package router is the collector: it tails container log files, turns every line into a record
// (package internal/record) and produces it to its namespace's Kafka topic. A file's checkpoint
// advances only past lines Kafka acknowledged, so the log file itself is the buffer: nothing is
// lost on kill -9, rotation or a broker outage. See docs/collector.md.
package router

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/logline"
	"github.com/logrouter/logrouter/router/logpath"
	"github.com/logrouter/logrouter/router/sink"
)

// Collector tails the node's container logs into Kafka.
type Collector struct {
	cfg     Config
	log     *slog.Logger
	meta    filemeta.Provider
	sink    *sink.Sink
	budget  *budget.Budget
	store   *checkpoint.Store
	tmpl    topic.Template
	metrics *metrics
	bufs    sync.Pool
	slabs   sync.Pool // *[]byte: record values of a chunk
	recPool sync.Pool // *[]kgo.Record of a chunk
	keyPool sync.Pool // *[]outKey of a chunk
	scratch sync.Pool // *[]byte: docker's unescape buffer, lent for one read

	// placeMu makes placing one file (its saved position taken, its reader started) atomic for
	// a checkpoint save, which runs beside the scans: a save never misses a file in between.
	placeMu sync.Mutex
	mu      sync.Mutex
	files   map[fileid.ID]*file
	done    map[fileid.ID]doneFile         // let go, still on disk: kept so they are not read again
	startup map[fileid.ID]checkpoint.Entry // loaded at start, not yet matched to a file
	// sameInode holds further start-up entries of an inode in startup: a run that found a file
	// gone and its inode taken by a new one saves both. At most one is the file on disk.
	sameInode map[fileid.ID][]checkpoint.Entry
	gone      []*goneFile            // checkpointed files not found at start (lost.go)
	unseen    unseenState            // compressed rotated files checked (unseen.go)
	truncs    []*truncation          // pending: their originals' readers look for the copies (copytrunc.go)
	truncGen  uint64                 // truncations remembered so far (mayBeCopy)
	held      map[fileid.ID]heldCopy // copies of open files, held open until their original's truncation is seen
	// afterStat is a test seam (nil in production): it runs between a poll's stat of its file and
	// the checks made with it, where a concurrent checkpoint save may lengthen the fingerprint.
	afterStat func(*file)
	claimed   map[fileid.ID]bool // copies an original's reader is starting
	groups    map[string]*file   // newest file of each container
	badPath   map[string]bool    // paths already reported unparseable
	lastCk    time.Time
	ckErr     error // the last checkpoint save's error (nil: it succeeded)
	raced     bool  // this scan missed a file with a start-up checkpoint (rotated meanwhile)
	saveMu    sync.Mutex

	// unreadable holds files the collector cannot read, by path, as of the last scans (scanGen
	// counts scans); unreadableNS the namespaces whose gauge is set.
	unreadable   map[string]unreadableFile
	unreadableNS map[string]bool
	scanGen      uint64
	pingErr      error // the last Kafka health check's error while stalled

	scanLog, fileLog, kafkaLog, readbackLog *errLog
	checkpointLog, nodeDirLog               *errLog

	started atomic.Bool  // the start-up scan and read-back are done
	lastAck atomic.Int64 // unix nanoseconds of the last acknowledgement (or of the start)

	// reconciling is closed once the records that files resumed at start had already produced
	// were read back from Kafka (see reconcile.go); resumed lists those files.
	reconciling chan struct{}
	resumed     []*file
	msgSeed     maphash.Seed // hashes messages found by the read-back

	// Tenant pipelines and the policy (apply.go): one state object per namespace, created on
	// first use; desired is the last applied Set of every namespace (also those without files).
	nsMu    sync.Mutex
	nss     map[string]*nsState
	desired map[string]*pipeline.Set
	policy  atomic.Pointer[pipeline.Policy]
	state   atomic.Pointer[pipeline.State] // the last applied (which pipelines exist)
	// applied is closed by the first Apply; files wait for it when ExpectPipelines was called.
	applied     chan struct{}
	appliedOnce sync.Once
	gate        bool
	now         func() time.Time // the clock of limits and multiline timeouts (tests set it)

	// Node file sources (nodefiles.go) by budget participant, and in configured order.
	nodeSrcs  map[string]*nodeSource
	nodeOrder []*nodeSource
	reserved  *reserved // the platform's namespaces and topics (reserved.go)

	wg sync.WaitGroup
}

// heldCopy is a file that starts like an open file of its container: a copytruncate copy made
// before the original was truncated. Holding it open keeps its lines readable even if it is
// deleted before the truncation is seen.
type heldCopy struct {
	fd    *os.File
	cd    candidate
	fpLen int
	fp    uint64
	since time.Time
}

// doneFile is a file read to its end and closed.
type doneFile struct {
	entry   checkpoint.Entry
	group   string    // its container's (copyOfDone)
	print   filePrint // its fingerprint when let go (isCopyOfOpen)
	size    int64
	mtime   time.Time
	missing time.Time // when scans stopped finding it (zero while found)
}

// forgetAfter is how long a closed file must be missing from scans before its position is
// dropped: one scan can miss a file that kubelet is renaming.
const forgetAfter = 30 * time.Second

// New validates cfg and connects to Kafka. meta supplies file metadata (filemeta.PathOnly
// without a Kubernetes API).
func New(cfg Config, meta filemeta.Provider, reg prometheus.Registerer, log *slog.Logger) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmpl, _ := topic.Parse(cfg.TopicTemplate)
	store, err := checkpoint.Open(cfg.CheckpointDir)
	if err != nil {
		return nil, err
	}
	scfg := cfg.Sink
	scfg.MaxRecordBytes = MaxRecordBytes(cfg.MaxLineBytes)
	s, err := sink.New(scfg, cfg.BufferBytes)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		cfg: cfg, log: log, meta: meta, sink: s, budget: budget.New(cfg.BufferBytes), store: store, tmpl: tmpl,
		files: map[fileid.ID]*file{}, done: map[fileid.ID]doneFile{}, startup: map[fileid.ID]checkpoint.Entry{}, sameInode: map[fileid.ID][]checkpoint.Entry{},
		groups: map[string]*file{}, badPath: map[string]bool{}, held: map[fileid.ID]heldCopy{}, claimed: map[fileid.ID]bool{},
		unseen:     unseenState{since: time.Now(), checked: map[fileid.ID]uint64{}},
		unreadable: map[string]unreadableFile{}, unreadableNS: map[string]bool{}, msgSeed: maphash.MakeSeed(),
		nss: map[string]*nsState{}, desired: map[string]*pipeline.Set{}, applied: make(chan struct{}), now: time.Now,
		scanLog:       newErrLog(log, slog.LevelError, 10*time.Second),
		fileLog:       newErrLog(log, slog.LevelError, 10*time.Second),
		kafkaLog:      newErrLog(log, slog.LevelError, 10*time.Second),
		readbackLog:   newErrLog(log, slog.LevelWarn, 10*time.Second),
		checkpointLog: newErrLog(log, slog.LevelError, 30*time.Second),
	}
	c.metrics = newMetrics(reg, func() float64 { return float64(c.budget.Used()) }, func() float64 { return c.oldestUnacked().Seconds() })
	c.bufs.New = func() any { b := make([]byte, cfg.ReadBytes); return &b }
	c.newNodeSources(reg)
	c.reserved = newReserved(log)
	c.reserveNodeSources()
	return c, nil
}

func (c *Collector) getBuf(n int) []byte {
	if n == c.cfg.ReadBytes {
		return *(c.bufs.Get().(*[]byte))
	}
	return make([]byte, n)
}

// getSlab returns an empty buffer with room for n bytes, recycled when possible: chunks are
// the collector's main allocation, and recycling them keeps the garbage collector's work (and
// the CPU a tight --memory-limit costs) low.
func (c *Collector) getSlab(n int) []byte {
	if p, ok := c.slabs.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

func (c *Collector) putSlab(b []byte) {
	if cap(b) > 0 && cap(b) <= 4*c.cfg.ReadBytes*8 {
		b = b[:0]
		c.slabs.Put(&b)
	}
}

func (c *Collector) getRecs(n int) []kgo.Record {
	if p, ok := c.recPool.Get().(*[]kgo.Record); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]kgo.Record, 0, n)
}

func (c *Collector) putRecs(r []kgo.Record) {
	if cap(r) > 0 && cap(r) <= c.cfg.ReadBytes {
		clear(r) // drop references to values and headers
		r = r[:0]
		c.recPool.Put(&r)
	}
}

func (c *Collector) getKeys(n int) []outKey {
	if p, ok := c.keyPool.Get().(*[]outKey); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]outKey, 0, n)
}

func (c *Collector) putKeys(k []outKey) {
	if cap(k) > 0 && cap(k) <= c.cfg.ReadBytes {
		k = k[:0]
		c.keyPool.Put(&k)
	}
}

func (c *Collector) putBuf(b []byte) {
	if len(b) == c.cfg.ReadBytes {
		c.bufs.Put(&b)
	}
}

// Run collects until ctx ends, then stops reading, waits up to the shutdown grace for Kafka
// to acknowledge what is in flight, saves the checkpoints and returns.
func (c *Collector) Run(ctx context.Context) error {
	entries, err := c.store.Load()
	if errors.Is(err, checkpoint.ErrCorrupt) {
		// Reading everything again duplicates lines; refusing to start would lose them.
		bad := c.store.Path() + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
		_ = os.Rename(c.store.Path(), bad)
		c.log.Error("checkpoint file unreadable: moved aside, files are read from their start", "err", err, "moved_to", bad)
		entries = nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		id := fileid.ID{Dev: e.Dev, Inode: e.Inode}
		if o, ok := c.startup[id]; ok {
			if e.Updated.Before(o.Updated) {
				e, o = o, e // the newest first: the likelier holder (placeOne checks)
			}
			c.sameInode[id] = append(c.sameInode[id], o)
		}
		c.startup[id] = e
	}
	c.log.Info("collector starting", "log_dir", c.cfg.LogDir, "pods_dir", c.cfg.PodsDir, "checkpoints", len(entries), "brokers", c.cfg.Sink.Kafka.Brokers)

	c.reconciling = make(chan struct{})
	// The start-up (scan and read-back) can take seconds under load, and a collector killed in it
	// must not leave checkpoints older than what it saw: a file that grew since the last save and
	// is compressed before the next start is counted only up to the size some run saved. So the
	// checkpoints are saved every --checkpoint-interval from now on, with the sizes of the files
	// found so far, the entries not matched yet and the files found gone, not yet counted.
	stopSaving := c.saveWhileStarting()
	c.startupScan(ctx)
	_ = c.saveCheckpoints()
	// The read-back waits up to 15 s for Kafka (longer for the pipelines): files created meanwhile
	// are found by scans as at any time, else one created and compressed in that wait would be
	// lost without any run having seen it (system proof finding 4).
	stopScanning := c.scanWhileReadingBack(ctx)
	c.reconcile(ctx)
	stopScanning()
	stopSaving() // before the count: a save during it would drop the gone files not yet counted
	c.countGone()
	_ = c.saveCheckpoints() // without the gone files: a kill from here on must not count them twice
	c.mu.Lock()
	c.lastCk = time.Now()
	c.mu.Unlock()
	c.lastAck.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.unseen.since = time.Now() // compressed before: the start's checkpoints counted what they could
	c.mu.Unlock()
	c.started.Store(true)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watchKafka(ctx)
	}()

	// Saves run beside the scans, not between them: with thousands of files open (a long
	// outage holds every rotated file) a save (an fsync, each file's stat) takes long on a busy
	// node, and scans queued behind it missed files rotated and compressed in the meantime.
	stopSaving = c.saveWhileStarting()
	scanT := time.NewTicker(c.cfg.ScanInterval)
	defer scanT.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-scanT.C:
			c.scan(ctx, false)
		}
	}
	stopSaving()
	<-watched
	c.log.Info("stopping: reading stopped, waiting for Kafka to acknowledge in-flight lines", "grace", c.cfg.ShutdownGrace.String())
	c.wg.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownGrace)
	err = c.sink.Flush(fctx)
	cancel()
	if err != nil {
		c.log.Warn("shutdown grace ran out: unacknowledged lines will be read again at the next start", "err", err)
	}
	ckErr := c.saveCheckpoints()
	c.sink.Close()
	c.mu.Lock()
	for _, f := range c.files {
		f.fd.Close()
	}
	for _, h := range c.held {
		h.fd.Close()
	}
	c.mu.Unlock()
	if ckErr != nil {
		// Exiting 0 would hide that the next start cannot resume from here.
		c.mu.Lock()
		last := c.lastCk
		c.mu.Unlock()
		return fmt.Errorf("final checkpoint save failed (last saved %s ago; the next start looks in Kafka for what was sent since, and sends again what it cannot find): %w", time.Since(last).Round(100*time.Millisecond), ckErr)
	}
	c.log.Info("collector stopped")
	return nil
}

// startupScan places the files found at start and takes the checkpoint entries no file matched
// for gone (lost.go). A file rotated between the scan's stat and its open is missed by that scan:
// scan again, so that its checkpoint is resumed (or it is found gone, and counted) and not dropped.
func (c *Collector) startupScan(ctx context.Context) {
	for range 3 {
		if !c.scan(ctx, true) {
			break
		}
	}
	c.mu.Lock()
	for _, e := range c.startup {
		c.gone = append(c.gone, &goneFile{entry: e})
	}
	for _, es := range c.sameInode {
		for _, e := range es {
			c.gone = append(c.gone, &goneFile{entry: e})
		}
	}
	c.startup, c.sameInode = map[fileid.ID]checkpoint.Entry{}, map[fileid.ID][]checkpoint.Entry{}
	c.mu.Unlock()
}

// candidate is a file found by a scan.
type candidate struct {
	path  string
	meta  filemeta.PathMeta
	live  bool
	group string
	id    fileid.ID
	size  int64
	mtime time.Time
	node  *nodeSource // a node file's source; nil for container logs
}

// scanWhileReadingBack scans every --scan-interval until the returned function is called. Files
// the start's scans did not find are read from their start, as files found later always are;
// none of them has a start-up checkpoint left (startupScan took those), so none waits for the
// read-back.
func (c *Collector) scanWhileReadingBack(ctx context.Context) func() {
	return every(c.cfg.ScanInterval, func() { c.scan(ctx, false) })
}

// saveWhileStarting saves the checkpoints every --checkpoint-interval until the returned function
// is called (during the start-up, and beside the scans after it).
func (c *Collector) saveWhileStarting() func() {
	return every(c.cfg.CheckpointInterval, func() {
		_ = c.saveCheckpoints() // logged, counted and shown by Ready
	})
}

// every runs fn every d until the returned function is called, which waits for a run in
// progress: none overlaps what the caller does next.
func every(d time.Duration, fn func()) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// scan finds the node's log files: the live targets of /var/log/containers symlinks and their
// rotated siblings, then files under /var/log/pods that no symlink points to (a container that
// was removed, or a symlink not made yet). It reports whether a file with a start-up checkpoint
// changed between its stat and its open (initial scans only): a scan again may find it.
func (c *Collector) scan(ctx context.Context, initial bool) (raced bool) {
	c.mu.Lock()
	c.scanGen++
	c.raced = false
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		raced = c.raced && len(c.startup) > 0
		c.mu.Unlock()
	}()
	defer c.settleUnreadable()
	var cands []candidate
	covered := map[string]bool{}
	add := func(cd candidate) {
		fi, err := os.Stat(cd.path)
		if err != nil {
			c.checkMissing(cd.path, cd.meta, err)
			return
		}
		if !fi.Mode().IsRegular() {
			c.reportUnreadable(cd.path, cd.meta, "not_regular", fmt.Errorf("%w: %s", errNotRegular, fi.Mode().Type()), false)
			return
		}
		id, err := fileid.Of(fi)
		if err != nil {
			return
		}
		cd.id, cd.size, cd.mtime = id, fi.Size(), fi.ModTime()
		cands = append(cands, cd)
		covered[cd.path] = true
	}
	if c.cfg.LogDir != "" {
		ents := c.readDir("containers", c.cfg.LogDir, true)
		for _, de := range ents {
			name := de.Name()
			if !strings.HasSuffix(name, ".log") {
				continue
			}
			link := filepath.Join(c.cfg.LogDir, name)
			meta, err := logpath.ParseContainerLink(name)
			if err != nil {
				c.reportBadPath("containers", link, err)
				continue
			}
			hop, err := os.Readlink(link)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					// kubelet makes symlinks here: a file, directory or FIFO is not one of its.
					c.reportUnreadable(link, meta, "not_symlink", err, false)
				}
				continue
			}
			if !filepath.IsAbs(hop) {
				hop = filepath.Join(c.cfg.LogDir, hop)
			}
			if pm, err := logpath.ParsePodLog(hop); err == nil {
				meta.PodUID = pm.PodUID
			}
			target, err := filepath.EvalSymlinks(link)
			if err != nil {
				// The live file is missing: kubelet is between renaming it and creating the
				// next one, or the container is gone. Its rotated files are still there.
				if _, err := os.Stat(hop); err != nil {
					m := meta
					m.File = hop
					c.checkMissing(hop, m, err)
				}
				target = hop
			} else {
				m := meta
				m.File = target
				add(candidate{path: target, meta: m, live: true, group: target})
			}
			meta.File = target
			covered[target] = true
			c.addRotated(target, meta, add)
		}
	}
	if c.cfg.PodsDir != "" {
		pods := c.readDir("pods", c.cfg.PodsDir, true)
		for _, pd := range pods {
			conts := c.readDir("pods", filepath.Join(c.cfg.PodsDir, pd.Name()), false)
			for _, cd := range conts {
				dir := filepath.Join(c.cfg.PodsDir, pd.Name(), cd.Name())
				logs := c.readDir("pods", dir, false)
				for _, l := range logs {
					// A live name, or a rotated one whose live file is gone ("0.log.2026...").
					name := l.Name()
					live := name
					if i := strings.Index(name, ".log."); i >= 0 {
						live = name[:i+len(".log")]
					}
					p := filepath.Join(dir, live)
					if !strings.HasSuffix(live, ".log") || covered[p] {
						continue
					}
					covered[p] = true
					meta, err := logpath.ParsePodLog(p)
					if err != nil {
						c.reportBadPath("pods", p, err)
						continue
					}
					if real, err := filepath.EvalSymlinks(p); err == nil && real != p && covered[real] {
						continue
					}
					add(candidate{path: p, meta: meta, group: p})
					c.addRotated(p, meta, add)
				}
			}
		}
	}
	c.scanNodeFiles(add, covered)
	c.place(ctx, cands, initial)
	c.placeHeld(ctx)
	c.forgetUnlisted()
	return false // set by the deferred check
}

// placeHeld starts held copies that no longer start like any open file of their container and
// are no pending truncation's copy (whose original's reader claims them), from their start.
func (c *Collector) placeHeld(ctx context.Context) {
	c.mu.Lock()
	held := make([]heldCopy, 0, len(c.held))
	for _, h := range c.held {
		held = append(held, h)
	}
	c.mu.Unlock()
	for _, h := range held {
		if c.mayBeCopy(h.fd, &h.cd, time.Since(h.since) < 10*time.Minute, true) {
			continue
		}
		c.mu.Lock()
		cur, ok := c.held[h.cd.id]
		if ok && cur.fd == h.fd {
			delete(c.held, h.cd.id)
		}
		c.mu.Unlock()
		if !ok || cur.fd != h.fd {
			continue // claimed by its original's reader meanwhile
		}
		cd := h.cd
		var off int64
		st, format := assemble.State{}, logline.FormatUnknown
		if e, ok := c.copyOfDone(h.fd, &cd); ok {
			off, st, format = e.Offset, e.State, parseFormat(e.Format) // its lines were read
		}
		c.start(ctx, &cd, h.fd, h.fpLen, h.fp, off, st, format, time.Time{}, startOpts{})
	}
}

func (c *Collector) reportBadPath(dir, path string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badPath[path] {
		return
	}
	c.badPath[path] = true
	c.metrics.pathErrors.WithLabelValues(dir).Inc()
	c.log.Warn("log file skipped: its path does not follow the kubelet layout", "path", path, "err", err)
}

// addRotated adds the uncompressed rotated siblings of live file p.
func (c *Collector) addRotated(p string, meta filemeta.PathMeta, add func(candidate)) {
	dir, base := filepath.Split(p)
	ents := c.readDir("pods", dir, false)
	for _, e := range ents {
		rot, compressed := logpath.Rotated(base, e.Name())
		switch {
		case rot && !compressed:
			m := meta
			m.File = filepath.Join(dir, e.Name())
			add(candidate{path: m.File, meta: m, group: p})
		case rot:
			c.checkCompressed(filepath.Join(dir, e.Name()), meta)
		}
	}
}

// place matches scanned files to open files, saved positions and copytruncate records, and
// starts a reader for each new one.
func (c *Collector) place(ctx context.Context, cands []candidate, initial bool) {
	// Merge candidates of one inode (a pods-dir path and its symlink); live wins.
	byID := map[fileid.ID]*candidate{}
	var order []*candidate
	for i := range cands {
		cd := &cands[i]
		if o := byID[cd.id]; o != nil {
			o.live = o.live || cd.live
			continue
		}
		byID[cd.id] = cd
		order = append(order, cd)
	}
	// Within a container, oldest first and the live file last, so lines keep their order.
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.group != b.group {
			return a.group < b.group
		}
		if a.live != b.live {
			return !a.live
		}
		return a.mtime.Before(b.mtime)
	})
	// Files known by inode first: a truncated original must be seen before its copy.
	known := func(cd *candidate) bool {
		c.mu.Lock()
		_, a := c.files[cd.id]
		d, b := c.done[cd.id]
		e, s := c.startup[cd.id]
		c.mu.Unlock()
		if b && !a && !(cd.size == d.size && cd.mtime.Equal(d.mtime)) {
			// A let-go file changed since, or its inode was reused once it was deleted, by any
			// container's new file: placed first as known, such a live file would not wait for
			// its container's older rotated files found in the same scan (TestDoneInodeReused).
			b = c.isEntryFile(cd, []checkpoint.Entry{d.entry})
		}
		if s && !a && !b {
			// Only if it is the checkpoint's file (or its original, truncated while stopped): an
			// inode is reused at once, and a new live file that took a gone file's inode placed
			// first would not wait for its container's older rotated files.
			c.mu.Lock()
			es := append([]checkpoint.Entry{e}, c.sameInode[cd.id]...)
			c.mu.Unlock()
			s = c.isEntryFile(cd, es)
		}
		return a || b || s
	}
	var first, second []*candidate
	for _, cd := range order {
		if known(cd) {
			first = append(first, cd)
		} else {
			second = append(second, cd)
		}
	}
	// Open files the scan did not find were deleted or moved away: read them to their end. Done
	// before placing the new files, so that a group's new live file waits for its old one (one
	// found live no more) rather than being read alongside it: lines keep their order when the
	// old file was renamed out of the scan's sight (deleted, or a pattern the scan does not match).
	c.mu.Lock()
	for id, f := range c.files {
		if _, ok := byID[id]; !ok && f.live.Swap(false) {
			c.metrics.rotations.WithLabelValues("rename").Inc()
		}
	}
	c.mu.Unlock()
	for _, cd := range append(first, second...) {
		if ctx.Err() != nil {
			return
		}
		c.placeOne(ctx, cd, initial)
	}
	c.mu.Lock()
	now := time.Now()
	for id, d := range c.done {
		switch _, ok := byID[id]; {
		case ok:
			d.missing = time.Time{}
		case d.missing.IsZero():
			d.missing = now
		case now.Sub(d.missing) > forgetAfter:
			delete(c.done, id)
			continue
		}
		c.done[id] = d
	}
	c.mu.Unlock()
}

// isEntryFile reports whether the file cd found at start is one that checkpoint entries es were
// saved for (its fingerprint matches), or that file truncated with its copy beside it
// (copytruncate while stopped). A file that cannot be opened counts as theirs: placeOne decides.
func (c *Collector) isEntryFile(cd *candidate, es []checkpoint.Entry) bool {
	fd, err := os.OpenFile(cd.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true
	}
	defer fd.Close()
	for _, e := range es {
		if ok, err := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint); ok || err != nil || c.copyExists(cd.path, e) {
			return true
		}
	}
	return false
}

// pickStartup chooses, of the start-up entries of the inode fd holds, the one whose fingerprint
// matches the file (the longest; else the newest entry, which placeOne finds gone or
// truncated), and moves the others to the gone files: their files were deleted before the inode
// was reused.
func (c *Collector) pickStartup(id fileid.ID, fd *os.File) checkpoint.Entry {
	c.mu.Lock()
	es := append([]checkpoint.Entry{c.startup[id]}, c.sameInode[id]...)
	c.mu.Unlock()
	if len(es) == 1 {
		return es[0]
	}
	pick := 0
	for i, e := range es {
		if ok, _ := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint); ok && (es[pick].FingerprintLen < e.FingerprintLen || !matchesFP(fd, es[pick])) {
			pick = i
		}
	}
	c.mu.Lock()
	for i, e := range es {
		if i != pick {
			c.gone = append(c.gone, &goneFile{entry: e})
		}
	}
	c.startup[id] = es[pick]
	delete(c.sameInode, id)
	c.mu.Unlock()
	return es[pick]
}

func matchesFP(fd *os.File, e checkpoint.Entry) bool {
	ok, _ := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint)
	return ok
}

func (c *Collector) placeOne(ctx context.Context, cd *candidate, initial bool) {
	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	c.mu.Lock()
	if _, ok := c.held[cd.id]; ok || c.claimed[cd.id] {
		c.mu.Unlock()
		return
	}
	if f := c.files[cd.id]; f != nil {
		if f.live.Swap(cd.live) && !cd.live {
			c.metrics.rotations.WithLabelValues("rename").Inc()
		}
		p := cd.path
		f.path.Store(&p)
		c.mu.Unlock()
		return
	}
	done, isDone := c.done[cd.id]
	doneEntry := done.entry
	// The entry stays in startup (saved as it is) until the file is started or found gone: a
	// save meanwhile must keep it, and a file that changed before its open is looked for again.
	startEntry, isStart := c.startup[cd.id]
	c.mu.Unlock()
	if isStart {
		defer func() {
			c.mu.Lock()
			_, missed := c.startup[cd.id]
			c.raced = c.raced || missed
			c.mu.Unlock()
		}()
	}
	if isDone && !cd.live && cd.size == done.size && cd.mtime.Equal(done.mtime) {
		return // let go and untouched since (an inode reused by a new file would differ)
	}
	// O_NONBLOCK: the path may be a FIFO by now (replaced since the scan's stat), whose blocking
	// open would wait for a writer for ever, and discovery with it. Reads of a regular file
	// ignore the flag; anything else fails the identity check below.
	fd, err := os.OpenFile(cd.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) { // else gone since the scan
			c.reportUnreadable(cd.path, cd.meta, unreadableReason(err), err, false)
		}
		return
	}
	// The path may name another file than the one the scan stat'ed (rotated in between):
	// identity is what the descriptor says. The next scan places the new file.
	if fi, err := fd.Stat(); err != nil {
		fd.Close()
		c.reportUnreadable(cd.path, cd.meta, unreadableReason(err), err, false)
		return
	} else if id, err := fileid.Of(fi); err != nil || id != cd.id {
		fd.Close()
		return
	} else {
		cd.size = fi.Size()
	}
	fpLen, fp, err := fileid.Fingerprint(fd)
	if err != nil {
		fd.Close()
		c.reportUnreadable(cd.path, cd.meta, unreadableReason(err), err, false)
		return
	}
	if isStart {
		startEntry = c.pickStartup(cd.id, fd)
	}
	var off int64
	var st assemble.State
	var resumedAt time.Time
	var opts startOpts
	format := logline.FormatUnknown
	resume := func(e checkpoint.Entry) bool {
		ok, _ := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint)
		if ok && cd.size >= e.Offset {
			off, st, format = e.Offset, e.State, parseFormat(e.Format)
		}
		if ok && cd.size < e.Offset {
			// Truncated while we were not running: its reader ships the copy's tail first.
			opts.trunc = &truncation{fpLen: e.FingerprintLen, fp: e.Fingerprint, offset: e.Offset, state: e.State,
				format: parseFormat(e.Format), group: cd.group, at: time.Now(), size: e.Size, gone: &goneFile{entry: e, unsure: true}}
			c.rememberTruncation(opts.trunc)
		}
		return ok
	}
	switch {
	case isDone && resume(doneEntry):
		c.mu.Lock()
		delete(c.done, cd.id)
		c.mu.Unlock()
	case isStart && resume(startEntry):
		resumedAt = startEntry.Updated
	default:
		switch {
		case isStart && c.copyExists(cd.path, startEntry):
			// Copytruncated while the collector was stopped (the inode now holds new content,
			// the copy the old one): its reader ships the copy's tail first.
			opts.trunc = &truncation{fpLen: startEntry.FingerprintLen, fp: startEntry.Fingerprint, offset: startEntry.Offset,
				state: startEntry.State, format: parseFormat(startEntry.Format), group: cd.group, at: time.Now(),
				size: startEntry.Size, gone: &goneFile{entry: startEntry, unsure: true}}
			c.rememberTruncation(opts.trunc)
		case isDone && c.copyExists(cd.path, doneEntry):
			// Let go (a scan took it for rotated: a node glob's newest file was its copy), then
			// truncated: its reader ships the copy's tail first, as for a truncation it saw.
			opts.trunc = &truncation{fpLen: doneEntry.FingerprintLen, fp: doneEntry.Fingerprint, offset: doneEntry.Offset,
				state: doneEntry.State, format: parseFormat(doneEntry.Format), group: cd.group, at: time.Now(),
				size: max(done.size, doneEntry.Offset)}
			c.rememberTruncation(opts.trunc)
			c.metrics.rotations.WithLabelValues("truncate").Inc()
		case isStart:
			// The checkpointed file is gone and a new one reuses its inode.
			c.mu.Lock()
			c.gone = append(c.gone, &goneFile{entry: startEntry})
			delete(c.startup, cd.id)
			c.mu.Unlock()
		}
		c.mu.Lock()
		delete(c.done, cd.id) // an inode reused by a new file
		c.mu.Unlock()
		// A copytruncate copy is held for its original's reader, which reads its tail before
		// the original's new lines (mayBeCopy).
		// (Not a copy being written at start: a file found then is read as StartAtEnd and the
		// read-back say.)
		if c.mayBeCopy(fd, cd, true, !initial) {
			c.mu.Lock()
			delete(c.startup, cd.id) // (its entry, if any, went to gone or a truncation above)
			c.mu.Unlock()
			c.hold(fd, cd, fpLen, fp)
			return
		} else if e, ok := c.copyOfDone(fd, cd); ok {
			off, st, format = e.Offset, e.State, parseFormat(e.Format) // its lines were read
		} else if initial && c.cfg.StartAtEnd {
			off = cd.size
		} else if initial && c.cfg.Node != "" {
			// No checkpoint: a run whose checkpoints were never saved may have sent this
			// file already. The read-back looks from its first line's time on.
			resumedAt = firstLineTime(fd)
		}
	}
	c.start(ctx, cd, fd, fpLen, fp, off, st, format, resumedAt, opts)
}

// startOpts are a file's start conditions besides its position.
type startOpts struct {
	copyOf *file       // the original whose copytruncate copy this is (it waits for the copy)
	skip   []outKey    // outputs Kafka acknowledged past the position
	trunc  *truncation // truncated while the collector was stopped: the copy's tail goes first
}

// start begins reading a file. resumedAt is the save time of the startup checkpoint it resumes
// from, or its first line's time when it has none at start (zero otherwise): the read-back
// looks in Kafka from then on.
func (c *Collector) start(ctx context.Context, cd *candidate, fd *os.File, fpLen int, fp uint64, off int64, st assemble.State, format logline.Format, resumedAt time.Time, opts startOpts) *file {
	cd.meta.Src = fmt.Sprintf("%d:%d", cd.id.Dev, cd.id.Inode)
	f := &file{c: c, id: cd.id, meta: cd.meta, group: cd.group, fd: fd, caughtUp: make(chan struct{}),
		fpLen: fpLen, fp: fp, format: format, acked: off, ackedState: st, idle: make(chan struct{}, 1),
		bufSize: c.cfg.ReadBytes, lastCk: ckPos{off, st}, pendingTrunc: opts.trunc, node: cd.node}
	f.head, f.headOK, _ = fileid.Head(fd, fpLen, fp)
	for _, k := range opts.skip {
		f.skipAgain(k)
	}
	if cd.node != nil {
		format = logline.FormatRaw
		f.format = format
	}
	p := cd.path
	f.path.Store(&p)
	f.live.Store(cd.live)
	f.log = c.log.With("path", cd.path, "namespace", cd.meta.Namespace, "pod", cd.meta.Pod, "container", cd.meta.Container)
	f.asm = assemble.New(assemble.Config{Format: format, MaxLine: c.cfg.MaxLineBytes, Now: nowTS, Scratch: &c.scratch}, off, st)
	if cd.node != nil {
		f.handle = c.nodeHandle(cd.node, cd.meta)
	} else {
		f.handle = c.meta.Open(cd.meta)
	}
	c.mu.Lock()
	// Lines keep their order across rename rotation: a file waits until the container's
	// previous file is read to its end. Never behind a live file, though: a file found while the
	// live one is open (a copytruncate copy) holds older lines and must not wait forever.
	prev := c.groups[cd.group]
	switch {
	case opts.copyOf != nil:
		// Its original waits for it: it must not wait for the original, nor be waited for by a
		// newer file in the original's place.
	case prev == nil || c.files[prev.id] != prev:
		c.groups[cd.group] = f
	case prev.live.Load() && !cd.live:
	case prev.live.Load():
		c.groups[cd.group] = f
	default:
		f.prev = prev
		c.groups[cd.group] = f
	}
	if c.reconciling != nil && !resumedAt.IsZero() {
		// Found at start: wait for the read-back of what already reached Kafka. Set before the
		// file is in files: the start-up's saves read them.
		f.reconciled, f.checkpointAt = c.reconciling, resumedAt
		c.resumed = append(c.resumed, f)
	}
	c.files[cd.id] = f
	delete(c.claimed, cd.id)
	delete(c.startup, cd.id) // resumed, or superseded (found gone or truncated in placeOne)
	c.mu.Unlock()
	c.metrics.openFiles.Inc()
	f.log.Info("reading file", "offset", off, "live", cd.live, "inode", cd.id.Inode)
	c.wg.Add(1)
	go f.run(ctx)
	return f
}

// release lets a fully read, no longer live file go; its position is kept while it exists.
func (c *Collector) release(f *file) {
	e := f.entry()
	d := doneFile{entry: e, group: f.group, print: f.print()}
	if fi, err := f.fd.Stat(); err == nil {
		d.size, d.mtime = fi.Size(), fi.ModTime()
		d.entry.Size = fi.Size()
	}
	c.mu.Lock()
	delete(c.files, f.id)
	if c.groups[f.group] == f {
		delete(c.groups, f.group)
	}
	c.done[f.id] = d
	// For the check of its .gz (unseen.go): the done entry goes once a new file takes the inode.
	c.rememberContentLocked(filepath.Dir(e.Path), e.FingerprintLen, e.Fingerprint)
	c.mu.Unlock()
	f.caughtUpOnce.Do(func() { close(f.caughtUp) })
	f.handle.Close()
	f.fd.Close()
	c.metrics.openFiles.Dec()
	c.metrics.bytesBehind.DeleteLabelValues(f.meta.Namespace, f.meta.Pod, f.meta.Container, f.meta.File)
	f.log.Info("file read to its end and closed", "offset", e.Offset, "inode", f.id.Inode)
}

// hold keeps a copy of an open file open until its original's truncation is seen.
func (c *Collector) hold(fd *os.File, cd *candidate, fpLen int, fp uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[cd.id]; ok || c.files[cd.id] != nil || c.claimed[cd.id] {
		fd.Close() // held already, or claimed by its original's reader meanwhile
		return
	}
	c.held[cd.id] = heldCopy{fd: fd, cd: *cd, fpLen: fpLen, fp: fp, since: time.Now()}
}

// mayBeCopy reports whether fd may be a copytruncate copy that its group's reader claims: it
// starts like a pending truncation, or (ofOpen) like an open file of the group (or, writing, may
// be a copy still being written: isCopyOfOpen), or a truncation was noticed while this was
// checked. The reader publishes its truncation before it drops the
// old fingerprint, and ends it as soon as it claimed the copy: checks that ran in between can
// miss all three, and the copy would be read from its start besides its claimed tail.
func (c *Collector) mayBeCopy(fd *os.File, cd *candidate, ofOpen, writing bool) bool {
	c.mu.Lock()
	gen := c.truncGen
	c.mu.Unlock()
	if c.matchesPending(fd, cd.group) || ofOpen && c.isCopyOfOpen(fd, cd, writing) || c.matchesPending(fd, cd.group) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.truncGen != gen
}

// copyWriting is how long after its last write a file shorter than an open file's fingerprint
// may still be that file's copy being written: a copy is written in one go, but its writer
// can be starved for seconds on a loaded node.
const copyWriting = 5 * time.Second

// isCopyOfOpen reports whether fd starts like an open file of the same container (a copy made
// by copytruncate before the original was truncated), or may be a copy still being written of
// an open file or of one let go: logrotate and kubelet-like writers create the copy empty and
// then fill it, and a scan in between found a file shorter than the original's fingerprint,
// read it from its start, and sent the original's lines twice (docs/reliability.md, finding
// 6). Such a file, written within copyWriting, is taken for a copy when its first bytes are the
// original's, or are too few to tell (placeHeld looks again at each scan). Never a container's
// live file (its symlink's target is no copy): held, the new live file of a rename rotation
// was started later from its start without its own truncation seen, and a copytruncate in
// between delivered its copy's lines after its new ones (TestSystemRotationStorm at 01:43).
// A node glob's live file is only its newest, which a copy being written can be.
func (c *Collector) isCopyOfOpen(fd *os.File, cd *candidate, writing bool) bool {
	writing = writing && (cd.node != nil || !cd.live)
	c.mu.Lock()
	var others []*file
	for _, f := range c.files {
		if f.group == cd.group {
			others = append(others, f)
		}
	}
	var let []filePrint // of files let go: only a copy being written is held for them
	for id, d := range c.done {
		if d.group == cd.group && id != cd.id {
			let = append(let, d.print)
		}
	}
	c.mu.Unlock()
	size, young := int64(-1), false
	if fi, err := fd.Stat(); err == nil && writing {
		size, young = fi.Size(), time.Since(fi.ModTime()) < copyWriting
	}
	for _, f := range others {
		p := f.print()
		if p.n < fileid.MinCopyFingerprint {
			continue
		}
		if ok, _ := fileid.Matches(fd, p.n, p.sum); ok || young && p.beingCopied(fd, size) {
			return true
		}
	}
	for _, p := range let {
		if young && p.beingCopied(fd, size) {
			return true
		}
	}
	return false
}

// filePrint is a file's fingerprint and its head.
type filePrint struct {
	n         int
	sum, head uint64
	headOK    bool
}

// beingCopied reports whether fd, of size bytes, may be a copy of p's file still being written:
// shorter than the fingerprint, and starting with its head or too short to tell.
func (p filePrint) beingCopied(fd *os.File, size int64) bool {
	switch {
	case p.n < fileid.MinCopyFingerprint || size < 0 || size >= int64(p.n):
		return false
	case size < fileid.MinCopyFingerprint:
		return true
	case !p.headOK:
		return false
	}
	ok, _ := fileid.Matches(fd, fileid.MinCopyFingerprint, p.head)
	return ok
}

// copyOfDone returns the entry of a file of cd's container that was let go (read to its end and
// closed) and that fd starts like: fd is its copy (copytruncate, the original found rotated
// before), whose lines up to the entry's offset were read from the original.
func (c *Collector) copyOfDone(fd *os.File, cd *candidate) (checkpoint.Entry, bool) {
	c.mu.Lock()
	var es []checkpoint.Entry
	for id, d := range c.done {
		if d.group == cd.group && id != cd.id && d.entry.FingerprintLen >= fileid.MinCopyFingerprint {
			es = append(es, d.entry)
		}
	}
	c.mu.Unlock()
	for _, e := range es {
		if ok, _ := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint); ok {
			return e, true
		}
	}
	return checkpoint.Entry{}, false
}

// saveCheckpoints writes every file's position.
func (c *Collector) saveCheckpoints() error {
	// One save at a time (the start-up saves from two goroutines): a save that gathered the
	// state earlier must not replace a newer one.
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.placeMu.Lock()
	c.mu.Lock()
	files := make([]*file, 0, len(c.files))
	for _, f := range c.files {
		files = append(files, f)
	}
	entries := make([]checkpoint.Entry, 0, len(c.files)+len(c.done)+len(c.gone)+len(c.startup))
	for _, d := range c.done {
		entries = append(entries, d.entry)
	}
	for id, e := range c.startup {
		entries = append(entries, e) // not matched yet by the start-up scan: kept as loaded
		entries = append(entries, c.sameInode[id]...)
	}
	for _, g := range c.gone {
		entries = append(entries, g.entry) // gone at start, not counted yet: the next start counts it
	}
	c.mu.Unlock()
	c.placeMu.Unlock()
	for _, f := range files {
		e := f.entry()
		if f.awaitsReadBack() {
			// Keep the time of the checkpoint it resumed from: the next read-back must look from
			// there for what the run before this one sent.
			e.Updated = f.checkpointAt
		}
		if fi, err := f.fd.Stat(); err == nil {
			e.Size = fi.Size()
			c.metrics.bytesBehind.WithLabelValues(f.meta.Namespace, f.meta.Pod, f.meta.Container, f.meta.File).Set(float64(max(0, fi.Size()-e.Offset)))
		}
		entries = append(entries, e)
	}
	err := c.store.Save(entries)
	if err != nil {
		c.metrics.checkpointErrors.Inc()
		c.checkpointLog.Log("saving checkpoints failed", "err", err) // every --checkpoint-interval while the disk is full
	}
	c.mu.Lock()
	c.ckErr = err
	if err == nil {
		c.lastCk = time.Now()
	}
	c.metrics.checkpointAge.Set(time.Since(c.lastCk).Seconds())
	c.mu.Unlock()
	return err
}

func nowTS() []byte { return time.Now().UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000000Z07:00") }

// errNotDir is returned when a configured directory is not one.
var errNotDir = errors.New("not a directory")

// CheckDirs verifies the configured directories exist, for a clear error at start.
func (c *Config) CheckDirs() error {
	var errs []error
	for flagName, d := range map[string]string{"--log-dir": c.LogDir, "--pods-dir": c.PodsDir} {
		if d == "" {
			continue
		}
		fi, err := os.Stat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s %s: %w", flagName, d, err))
		case err == nil && !fi.IsDir():
			errs = append(errs, fmt.Errorf("%s %s: %w", flagName, d, errNotDir))
		}
	}
	return errors.Join(errs...)
}

// MaxRecordBytes is the largest record value a line of maxLine bytes can become (with up to
// 64 KiB of file metadata): the size topics the collector creates accept. Lines to other topics
// are cut to fit the topic's own limit.
func MaxRecordBytes(maxLine int) int { return record.MaxValueLen(maxLine, 64<<10) }

// parseFormat reads a checkpoint's format name (unknown for anything else: detected again).
func parseFormat(s string) logline.Format {
	switch s {
	case logline.FormatCRI.String():
		return logline.FormatCRI
	case logline.FormatDocker.String():
		return logline.FormatDocker
	case logline.FormatRaw.String():
		return logline.FormatRaw
	}
	return logline.FormatUnknown
}
