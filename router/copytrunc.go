package router

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/logline"
	"github.com/logrouter/logrouter/router/logpath"
)

// Copytruncate (logrotate): the live file is copied to a rotated name, then truncated in place.
// The original's reader notices the truncation and, before it reads the new content, finds the
// copy itself, starts a reader for it at the position the original was read to, and waits until
// that reader has produced the copy's tail: a container's lines reach Kafka in the order they
// were written. A copy that is gone by then (compressed or deleted) is counted lost, from that
// position to the largest size the original was seen with.

// truncation is a copytruncated file's old content: where it was read to, and what is known of
// the rest. While it is pending (published in c.truncs), a scan that finds its copy holds the
// copy for the original's reader instead of starting it.
type truncation struct {
	fpLen  int
	fp     uint64
	offset int64
	state  assemble.State
	format logline.Format
	group  string
	at     time.Time
	// size is the largest size the old content was seen with (read to, or stat'ed before a read
	// that proved the content unchanged): the copy's bytes from offset to size are the tail.
	size int64
	// acked: outputs past offset that Kafka acknowledged (after a produce failure): the copy
	// skips them, and they are not counted lost.
	acked []outKey
	// gone credits lines the previous run sent past offset after its last checkpoint save, for
	// a truncation found at start (nil otherwise).
	gone *goneFile
}

// followTruncation ships the copy's tail of tr before the file reads on, or counts it lost.
// It runs on the original's goroutine, which reads nothing meanwhile.
func (f *file) followTruncation(ctx context.Context, tr *truncation) {
	if tr.fpLen < fileid.MinCopyFingerprint {
		return // too short to tell its copy: a copy is read from its start by the scan
	}
	cp, err := f.c.claimCopy(ctx, f, tr)
	f.c.dropTruncation(tr)
	switch {
	case err != nil:
		f.c.fileLog.Log("could not look for the copy of a truncated file; its tail is read only if a scan finds it", "path", f.curPath(), "namespace", f.meta.Namespace, "err", err)
		return
	case cp == nil:
		f.c.countLostCopy(f, tr)
		return
	}
	select {
	case <-cp.caughtUp:
	case <-ctx.Done():
	}
}

// claimCopy finds the copy of tr among the held copies and the original's rotated siblings and
// starts its reader at tr's offset. It returns nil when there is no copy.
func (c *Collector) claimCopy(ctx context.Context, f *file, tr *truncation) (*file, error) {
	// Held by a scan that saw the copy before the truncation was noticed.
	c.mu.Lock()
	var held []heldCopy
	for _, h := range c.held {
		if h.cd.group == tr.group {
			held = append(held, h)
		}
	}
	c.mu.Unlock()
	for _, h := range held {
		if ok, _ := fileid.Matches(h.fd, tr.fpLen, tr.fp); ok {
			if cp := c.startCopy(ctx, f, h.fd, false, h.cd, h.fpLen, h.fp, tr); cp != nil {
				return cp, nil
			}
			c.mu.Lock()
			other := c.files[h.cd.id] // let go by placeHeld meanwhile
			c.mu.Unlock()
			if other != nil {
				return other, nil
			}
		}
	}
	// Not found by a scan yet: copytruncate copies before it truncates, so the copy is there now
	// unless it was compressed or deleted. Listed twice: a rename of rotated files (logrotate
	// shifting .1 to .2) can hide it from one listing.
	live := f.curPath()
	dir, base := filepath.Split(live)
	for range 2 {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if rot, compressed := logpath.Rotated(base, e.Name()); !rot || compressed {
				continue
			}
			cp, err := c.openCopy(ctx, f, filepath.Join(dir, e.Name()), tr)
			if err != nil {
				return nil, err
			}
			if cp != nil {
				return cp, nil
			}
		}
	}
	return nil, nil
}

// openCopy starts path's reader if it is tr's copy.
func (c *Collector) openCopy(ctx context.Context, f *file, path string, tr *truncation) (*file, error) {
	fd, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // renamed or deleted since the listing
	} else if err != nil {
		return nil, err
	}
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, err
	}
	id, err := fileid.Of(fi)
	if err != nil {
		fd.Close()
		return nil, err
	}
	if ok, _ := fileid.Matches(fd, tr.fpLen, tr.fp); !ok {
		fd.Close()
		return nil, nil
	}
	c.mu.Lock()
	other := c.files[id]
	c.mu.Unlock()
	if other != nil {
		// Read already (a held copy let go after its wait): lines keep their order only if it
		// is done before the original reads on.
		fd.Close()
		return other, nil
	}
	fpLen, fp, err := fileid.Fingerprint(fd)
	if err != nil {
		fd.Close()
		return nil, err
	}
	m := f.meta
	m.File = path
	cd := candidate{path: path, meta: m, group: tr.group, id: id, size: fi.Size(), mtime: fi.ModTime()}
	if cp := c.startCopy(ctx, f, fd, true, cd, fpLen, fp, tr); cp != nil {
		return cp, nil
	}
	// Held or started by a scan in between: take that one.
	c.mu.Lock()
	h, isHeld := c.held[id]
	other = c.files[id]
	c.mu.Unlock()
	if isHeld {
		return c.startCopy(ctx, f, h.fd, false, h.cd, h.fpLen, h.fp, tr), nil
	}
	return other, nil
}

// startCopy starts the reader of a copy at tr's offset, claiming it from the held copies (or
// before a scan holds it); nil if another claim won. owned: fd was opened for this claim (and
// is closed if it loses), else it is the held copy's.
func (c *Collector) startCopy(ctx context.Context, orig *file, fd *os.File, owned bool, cd candidate, fpLen int, fp uint64, tr *truncation) *file {
	c.mu.Lock()
	if h, ok := c.held[cd.id]; ok && h.fd == fd {
		delete(c.held, cd.id)
	} else if ok || c.files[cd.id] != nil || c.claimed[cd.id] || !owned {
		c.mu.Unlock()
		if owned {
			fd.Close()
		}
		return nil
	}
	c.claimed[cd.id] = true // until start registers it: a scan must not hold or start it too
	c.mu.Unlock()
	c.metrics.rotations.WithLabelValues("copy").Inc()
	c.log.Info("copy of a truncated file: reading its tail from where the original was read to, before the original's new lines", "path", cd.path, "offset", tr.offset, "size", cd.size)
	return c.start(ctx, &cd, fd, fpLen, fp, tr.offset, tr.state, tr.format, time.Time{}, startOpts{copyOf: orig, skip: tr.acked})
}

// countLostCopy counts the tail of a copy that was gone before it could be read: to the copy's
// size when it is there compressed (its uncompressed size, exact), else to the largest size the
// original was seen with (a reader that waited, for the budget or for its container's previous
// file, saw less than was copied: the count errs low).
func (c *Collector) countLostCopy(f *file, tr *truncation) {
	from := tr.offset
	if tr.gone != nil && tr.gone.seen() {
		from = max(from, tr.gone.sentEnd())
	}
	size := tr.size
	if n, ok := c.compressedCopySize(f, tr); ok {
		size = max(size, n)
	}
	n := size - from - ackedWithin(tr.acked, from, size)
	if n <= 0 {
		return
	}
	ns := f.meta.Namespace
	c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead).Add(float64(n))
	c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead).Inc()
	msg := "LOST: the copy of a truncated file (copytruncate) was compressed or deleted before its tail was read; rotate less often or keep rotated files uncompressed longer (logrotate delaycompress)"
	if tr.gone != nil && tr.gone.unsure {
		msg += "; the read-back could not check Kafka, so lines sent just before the last stop may be among the bytes counted"
	}
	c.log.Error(msg, "path", f.curPath(), "namespace", ns, "pod", f.meta.Pod, "container", f.meta.Container,
		"read_to", tr.offset, "size_before_truncation", size, "bytes_lost", n, "reason", LossDeletedBeforeRead)
}

// compressedCopySize finds the compressed copy of tr (a .gz rotated sibling of f whose
// uncompressed first bytes are tr's) and returns its uncompressed size.
func (c *Collector) compressedCopySize(f *file, tr *truncation) (int64, bool) {
	dir := filepath.Dir(f.curPath())
	bases := []string{filepath.Base(f.curPath()), filepath.Base(f.meta.File)}
	if filepath.Dir(tr.group) == dir {
		bases = append(bases, filepath.Base(tr.group)) // a container's live file
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".gz") || !slices.ContainsFunc(bases, func(b string) bool {
			rot, compressed := logpath.Rotated(b, e.Name())
			return rot && compressed
		}) {
			continue
		}
		head, size, err := gunzipHead(filepath.Join(dir, e.Name()))
		if err == nil && tr.fpLen <= len(head) && xxhash.Sum64(head[:tr.fpLen]) == tr.fp {
			return size, true
		}
	}
	return 0, false
}

// ackedWithin is how many bytes of [from, to) the outputs cover.
func ackedWithin(keys []outKey, from, to int64) int64 {
	iv := make([][2]int64, 0, len(keys))
	for _, k := range keys {
		if s, e := max(k[0], from), min(k[2], to); e > s {
			iv = append(iv, [2]int64{s, e})
		}
	}
	slices.SortFunc(iv, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	var n, end int64
	for _, v := range iv {
		s := max(v[0], end)
		if v[1] > s {
			n += v[1] - s
			end = v[1]
		}
	}
	return n
}

// copyExists reports whether a rotated sibling of live starts like the checkpointed e.
func (c *Collector) copyExists(live string, e checkpoint.Entry) bool {
	if e.FingerprintLen < fileid.MinCopyFingerprint {
		return false
	}
	dir, base := filepath.Split(live)
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		if rot, compressed := logpath.Rotated(base, de.Name()); !rot || compressed {
			continue
		}
		fd, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		ok, _ := fileid.Matches(fd, e.FingerprintLen, e.Fingerprint)
		fd.Close()
		if ok {
			return true
		}
	}
	return false
}

// rememberTruncation publishes a pending truncation.
func (c *Collector) rememberTruncation(t *truncation) {
	if t.fpLen < fileid.MinCopyFingerprint {
		return
	}
	c.mu.Lock()
	c.truncs = append(c.truncs, t)
	c.truncGen++
	c.mu.Unlock()
	c.rememberCopy(filepath.Dir(t.group), t.fpLen, t.fp) // its compressed copy is not unseen
}

// dropTruncation ends a pending truncation.
func (c *Collector) dropTruncation(t *truncation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.truncs, t); i >= 0 {
		c.truncs = slices.Delete(c.truncs, i, i+1)
	}
}

// matchesPending reports whether fd starts like a pending truncation of its container: the
// original's reader claims it.
func (c *Collector) matchesPending(fd *os.File, group string) bool {
	c.mu.Lock()
	truncs := slices.Clone(c.truncs)
	c.mu.Unlock()
	for _, t := range truncs {
		if t.group != group {
			continue
		}
		if ok, _ := fileid.Matches(fd, t.fpLen, t.fp); ok {
			return true
		}
	}
	return false
}
