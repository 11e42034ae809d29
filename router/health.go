package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/logline"
)

// Sentinels of Ready's errors, for callers that branch on why the collector is not ready.
var (
	ErrStarting     = errors.New("starting: scanning files and reading back what the previous run produced")
	ErrNotShipping  = errors.New("not shipping")
	ErrCheckpoints  = errors.New("checkpoints not saved")
	errNotRegular   = errors.New("not a regular file")
	errDanglingLink = errors.New("symlink to a file that does not exist")
)

// Ready reports whether the collector is doing its job, for /readyz: Kafka acknowledges what
// it sends, and checkpoints are saved. It is cheap (no I/O). Liveness is not its business: a
// broker outage is not cured by restarting the pod.
func (c *Collector) Ready() error {
	if !c.started.Load() {
		return ErrStarting
	}
	var errs []error
	if err := c.kafkaStall(); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	ckErr, lastCk := c.ckErr, c.lastCk
	c.mu.Unlock()
	if ckErr != nil {
		errs = append(errs, fmt.Errorf("%w for %s: %v", ErrCheckpoints, time.Since(lastCk).Round(100*time.Millisecond), ckErr))
	}
	return errors.Join(errs...)
}

// kafkaStall returns an error when lines have waited longer than --ack-timeout for Kafka and no
// acknowledgement came for as long.
func (c *Collector) kafkaStall() error {
	age := c.oldestUnacked()
	noAck := time.Since(time.Unix(0, c.lastAck.Load()))
	if age < c.cfg.AckTimeout || noAck < c.cfg.AckTimeout {
		return nil
	}
	err := fmt.Errorf("%w: no acknowledgement from Kafka for %s (oldest unacknowledged line %s old)", ErrNotShipping, noAck.Round(100*time.Millisecond), age.Round(100*time.Millisecond))
	c.mu.Lock()
	perr := c.pingErr
	c.mu.Unlock()
	if perr != nil {
		err = fmt.Errorf("%w; no broker reachable: %v", err, perr)
	}
	return err
}

// oldestUnacked is the age of the oldest line produced and not yet acknowledged.
func (c *Collector) oldestUnacked() time.Duration {
	c.mu.Lock()
	files := make([]*file, 0, len(c.files))
	for _, f := range c.files {
		files = append(files, f)
	}
	c.mu.Unlock()
	var oldest time.Time
	for _, f := range files {
		f.mu.Lock()
		s := f.unackedSince
		f.mu.Unlock()
		if !s.IsZero() && (oldest.IsZero() || s.Before(oldest)) {
			oldest = s
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// watchKafka checks every second (or --ack-timeout, if shorter) whether Kafka acknowledges.
// While it does not, it asks a broker whether it is reachable at all, counts and logs.
func (c *Collector) watchKafka(ctx context.Context) {
	t := time.NewTicker(min(time.Second, c.cfg.AckTimeout))
	defer t.Stop()
	stalled := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.kafkaStall() == nil {
			if stalled {
				c.log.Info("Kafka acknowledges lines again")
				c.mu.Lock()
				c.pingErr = nil
				c.mu.Unlock()
				stalled = false
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		perr := c.sink.Client().Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		reason := "no_ack"
		if perr != nil {
			reason = "unreachable"
		}
		c.mu.Lock()
		c.pingErr = perr
		c.mu.Unlock()
		stalled = true
		c.metrics.kafkaErrors.WithLabelValues(reason).Inc()
		c.kafkaLog.Log("Kafka does not acknowledge lines: they wait in the log files (reading pauses at --buffer-bytes)", "reason", reason, "err", c.kafkaStall())
	}
}

// readDir lists a log directory. A directory that cannot be read is counted and logged; a
// subdirectory that is gone (a pod removed during the scan) is not an error.
func (c *Collector) readDir(kind, dir string, top bool) []os.DirEntry {
	ents, err := os.ReadDir(dir)
	if err != nil && (top || !errors.Is(err, fs.ErrNotExist)) {
		c.metrics.scanErrors.WithLabelValues(kind).Inc()
		c.scanLog.Log("log directory cannot be read: the files in it are not collected", "dir", dir, "err", err)
	}
	return ents
}

// unreadableFile is a file that could not be read, as of scan gen (first: the scan that found it).
type unreadableFile struct {
	ns, reason string
	first, gen uint64
	reported   bool
}

// unreadableReason names an error for the unreadable_files_total metric.
func unreadableReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission"
	case errors.Is(err, syscall.ELOOP):
		return "symlink_loop"
	case errors.Is(err, errDanglingLink):
		return "dangling_symlink"
	case errors.Is(err, errNotRegular):
		return "not_regular"
	}
	return "error"
}

// checkMissing classifies a failed stat of a log file: a file gone since it was listed
// (rotation) is no error; a symlink loop is; a dangling symlink is once a later scan confirms it
// (a rotation of its target is brief, a missing mount is not).
func (c *Collector) checkMissing(path string, meta filemeta.PathMeta, err error) {
	if !errors.Is(err, fs.ErrNotExist) {
		c.reportUnreadable(path, meta, unreadableReason(err), err, false)
		return
	}
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(path)
		c.reportUnreadable(path, meta, "dangling_symlink", fmt.Errorf("%w: %s", errDanglingLink, target), true)
	}
}

// reportUnreadable counts and logs (rate-limited) a file the collector cannot read, once while it
// stays so; confirm waits for a second scan to find it so.
func (c *Collector) reportUnreadable(path string, meta filemeta.PathMeta, reason string, err error, confirm bool) {
	c.mu.Lock()
	u, ok := c.unreadable[path]
	if !ok || u.reason != reason {
		u = unreadableFile{ns: meta.Namespace, reason: reason, first: c.scanGen}
	}
	u.gen = c.scanGen
	report := !u.reported && (!confirm || u.gen > u.first)
	u.reported = u.reported || report
	c.unreadable[path] = u
	c.mu.Unlock()
	if !report {
		return
	}
	c.metrics.unreadableFiles.WithLabelValues(meta.Namespace, reason).Inc()
	c.fileLog.Log("log file cannot be read: its lines are not collected (see docs/collector.md, Permissions)",
		"path", path, "namespace", meta.Namespace, "pod", meta.Pod, "container", meta.Container, "reason", reason, "err", err)
}

// settleUnreadable forgets files the last scan did not find unreadable and sets the gauge.
func (c *Collector) settleUnreadable() {
	c.mu.Lock()
	counts := map[string]int{}
	for p, u := range c.unreadable {
		switch {
		case u.gen != c.scanGen:
			delete(c.unreadable, p)
		case u.reported:
			counts[u.ns]++
		}
	}
	for ns := range c.unreadableNS {
		if counts[ns] == 0 {
			c.metrics.unreadableNow.DeleteLabelValues(ns)
			delete(c.unreadableNS, ns)
		}
	}
	for ns, n := range counts {
		c.metrics.unreadableNow.WithLabelValues(ns).Set(float64(n))
		c.unreadableNS[ns] = true
	}
	c.mu.Unlock()
}

// firstLineTime is the runtime's timestamp of a file's first line (zero if it has none): no
// record of the file can have been produced before it.
func firstLineTime(fd *os.File) time.Time {
	buf := make([]byte, 64<<10)
	n, _ := fd.ReadAt(buf, 0)
	line, _, ok := bytes.Cut(buf[:n], []byte{'\n'})
	if !ok {
		return time.Time{}
	}
	switch logline.Detect(line) {
	case logline.FormatCRI:
		ts, _, _ := bytes.Cut(line, []byte{' '})
		if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
			return t
		}
	case logline.FormatDocker:
		var v struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(line, &v) == nil {
			return v.Time
		}
	}
	return time.Time{}
}
