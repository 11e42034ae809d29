package archiver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/archiver/objectformat"
	"github.com/logrouter/logrouter/archiver/spool"
	"github.com/logrouter/logrouter/internal/record"
)

// maxInvalidLogs is how many invalid records of one object are logged one by one.
const maxInvalidLogs = 10

// errLostRace means another writer claimed the range's start first.
type errLostRace struct {
	claim layout.Claim
}

func (e *errLostRace) Error() string {
	return fmt.Sprintf("offset %d of %s[%d] already claimed up to %d by %s", e.claim.Start, e.claim.Topic, e.claim.Partition, e.claim.End, e.claim.Writer)
}

// errAbandoned means the partition's work was abandoned while the range was in flight.
var errAbandoned = errors.New("range abandoned")

// uploadChain uploads a partition's sealed ranges one after another: a range is claimed only
// after its predecessor, so the claims of a partition always form a gapless chain.
func (a *Archiver) uploadChain(p *partition) {
	defer a.chains.Done()
	for {
		a.mu.Lock()
		if p.aged(time.Now(), a.cfg.MaxObjectAge) {
			// The open range waited for the ranges before it (sealAged skips it meanwhile).
			a.seal(p, "age")
		}
		if len(p.pending) == 0 {
			p.chain = false
			if !p.owned && a.parts[p.tp] == p {
				delete(a.parts, p.tp)
			}
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		s := p.pending[0]
		a.mu.Unlock()

		err := a.uploadWithRetry(s)

		a.mu.Lock()
		p.pending = p.pending[1:]
		a.spooled -= s.bytes
		a.m.spoolBytes.Set(float64(a.spooled))
		discard(s)
		var lost *errLostRace
		switch {
		case err == nil:
		case errors.As(err, &lost):
			a.m.conflicts.Inc()
			a.log.Warn("claim race lost; continuing after the winner's range", "err", err)
			if p.gen == s.gen && p.owned {
				p.bucketMs = lost.claim.BucketTimeMs
				a.resyncTo(p, lost.claim.Next())
			}
		case errors.Is(err, errAbandoned):
		default:
			// Only reached when uploads are cancelled (drain timeout): nothing was committed.
			if p.gen == s.gen {
				records, ranges := s.records, int64(1)
				for _, q := range p.pending {
					if q.gen == p.gen {
						records, ranges = records+q.records, ranges+1
					}
				}
				a.leftRecords += records
				a.leftRanges += ranges
				a.log.Error("ranges not archived; the partition's next owner archives them", "topic", p.tp.topic, "partition", p.tp.partition, "start", s.start, "records", records, "err", err)
				a.abandon(p)
			}
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

func (a *Archiver) current(s *segment) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return s.gen == s.part.gen
}

func (a *Archiver) uploadWithRetry(s *segment) error {
	backoff := 200 * time.Millisecond
	for {
		if !a.current(s) {
			return errAbandoned
		}
		err := a.upload(a.uploadCtx, s)
		var lost *errLostRace
		if err == nil || errors.As(err, &lost) {
			a.uploadResult(nil) // a lost race read the winner's claim: the bucket works
			return err
		}
		if errors.Is(err, errAbandoned) || a.uploadCtx.Err() != nil {
			return err
		}
		a.uploadResult(err)
		a.uploadWarn.Do(func() {
			a.log.Warn("archiving a range failed; retrying", "topic", s.part.tp.topic, "partition", s.part.tp.partition, "start", s.start, "err", err)
		})
		select {
		case <-a.uploadCtx.Done():
			return a.uploadCtx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// upload archives one range: encode each namespace's records into a local file, upload it to
// a staging key, claim the range with write-if-absent, publish the objects under their final
// keys, and only then commit the offset.
func (a *Archiver) upload(ctx context.Context, s *segment) error {
	a.uploadSem <- struct{}{}
	held := true
	release := func() {
		if held {
			held = false
			<-a.uploadSem
		}
	}
	defer release()
	started := time.Now()
	p := s.part
	attempt := newAttemptID()
	claim := layout.Claim{
		Topic: p.tp.topic, Partition: p.tp.partition, Start: s.start, End: s.end,
		BucketTimeMs: s.bucketMs, Records: s.records, Writer: a.writer,
	}
	namespaces := make([]string, 0, len(s.spools))
	for ns := range s.spools {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	var objBytes int64
	for _, ns := range namespaces {
		obj := layout.Object{Namespace: ns, Hour: s.hour, Topic: p.tp.topic, Partition: p.tp.partition, Start: s.start, End: s.end, Format: a.format}
		co := layout.ClaimObject{Key: obj.Key(a.cfg.Prefix), Staging: layout.StagingKey(a.cfg.Prefix, obj, attempt), Namespace: ns}
		n, recs, err := a.stage(ctx, s.spools[ns], obj, co.Staging)
		if err != nil {
			return err
		}
		co.Records = recs
		objBytes += n
		claim.Objects = append(claim.Objects, co)
	}
	if time.Since(started) > a.cfg.StagingGrace/2 {
		// The sweeper may already consider these staging objects abandoned.
		return fmt.Errorf("staging took %v, more than half of --staging-grace", time.Since(started))
	}
	if !a.current(s) {
		a.deleteStaging(ctx, claim)
		return errAbandoned
	}
	ckey := layout.ClaimKey(a.cfg.Prefix, claim.Topic, claim.Partition, claim.Start)
	err := a.writeIfAbsent(ctx, ckey, claim.Encode())
	if errors.Is(err, errClaimExists) {
		theirs, rerr := a.readClaim(ctx, ckey)
		if rerr != nil {
			return rerr
		}
		if !sameAttempt(theirs, claim) {
			a.deleteStaging(ctx, claim)
			// Publish theirs in case its writer died before it could.
			if perr := a.publish(ctx, theirs); perr != nil {
				return perr
			}
			return &errLostRace{claim: theirs}
		}
		err = nil // our own earlier write of this claim did land
	}
	if err != nil {
		a.m.errors.WithLabelValues("claim").Inc()
		return fmt.Errorf("claim %s: %w", ckey, err)
	}
	if err := a.publish(ctx, claim); err != nil {
		return err
	}
	a.m.upload.Observe(time.Since(s.sealed).Seconds())
	a.m.objects.WithLabelValues(string(a.format)).Add(float64(len(claim.Objects)))
	a.m.objectBytes.Add(float64(objBytes))
	a.m.inputBytes.Add(float64(s.bytes))
	// The commit is a round trip to Kafka, not bucket work: other partitions' uploads need
	// the slot more.
	release()
	a.commit(s, claim)
	return nil
}

func sameAttempt(a, b layout.Claim) bool {
	if a.End != b.End || len(a.Objects) != len(b.Objects) {
		return false
	}
	for i := range a.Objects {
		if a.Objects[i] != b.Objects[i] {
			return false
		}
	}
	return true
}

// stage encodes one namespace's spool into a local file and uploads it to key.
func (a *Archiver) stage(ctx context.Context, w *spool.Writer, obj layout.Object, key string) (int64, int64, error) {
	r, err := w.Reopen()
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	tmp, err := os.CreateTemp(a.cfg.SpoolDir, "object-*")
	if err != nil {
		return 0, 0, fmt.Errorf("encode %s: %w", obj.Name(), err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	invalid := 0
	enc, err := objectformat.New(obj.Format, bw, objectformat.Options{
		RowGroupBytes: a.cfg.rowGroupBytes(),
		OnInvalid: func(e *objectformat.Entry, err error) {
			reason := "decode"
			if errors.Is(err, record.ErrUnsupportedVersion) {
				reason = "schema_version"
			}
			a.m.invalid.WithLabelValues(reason).Inc()
			invalid++
			if invalid <= maxInvalidLogs { // a flood of bad values must not flood the log
				a.log.Warn("invalid record archived with parse_error", "topic", e.Topic, "partition", e.Partition, "offset", e.Offset, "err", err)
			}
		},
	})
	if err != nil {
		return 0, 0, err
	}
	var fr spool.Frame
	e := objectformat.Entry{Topic: obj.Topic, Partition: obj.Partition, Namespace: obj.Namespace}
	for {
		err := r.Next(&fr)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		e.Offset, e.KafkaTime, e.Pod, e.Container, e.Value = fr.Offset, fr.KafkaTime, string(fr.Pod), string(fr.Container), fr.Value
		if err := enc.Add(&e); err != nil {
			a.m.errors.WithLabelValues("encode").Inc()
			return 0, 0, fmt.Errorf("encode %s: %w", obj.Name(), err)
		}
	}
	if err := enc.Close(); err != nil {
		a.m.errors.WithLabelValues("encode").Inc()
		return 0, 0, fmt.Errorf("encode %s: %w", obj.Name(), err)
	}
	if invalid > maxInvalidLogs {
		a.log.Warn("more invalid records archived with parse_error", "object", obj.Name(), "invalid", invalid, "logged", maxInvalidLogs)
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("encode %s: %w", obj.Name(), err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	ct := "application/vnd.apache.parquet"
	if obj.Format == layout.NDJSON {
		ct = "application/x-ndjson+zstd"
	}
	bwr, err := a.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: ct, Metadata: enc.Stats().Metadata()})
	if err != nil {
		a.m.errors.WithLabelValues("upload").Inc()
		return 0, 0, fmt.Errorf("upload %s: %w", key, err)
	}
	if _, err := io.Copy(bwr, tmp); err != nil {
		bwr.Close()
		a.m.errors.WithLabelValues("upload").Inc()
		return 0, 0, fmt.Errorf("upload %s: %w", key, err)
	}
	if err := bwr.Close(); err != nil {
		a.m.errors.WithLabelValues("upload").Inc()
		return 0, 0, fmt.Errorf("upload %s: %w", key, err)
	}
	return size, enc.Stats().Records, nil
}

// publish copies a claim's staged objects to their final keys (if not there yet) and deletes
// the staging objects. It is idempotent, and anyone who reads the claim may run it.
func (a *Archiver) publish(ctx context.Context, c layout.Claim) error {
	for _, o := range c.Objects {
		ok, err := a.bucket.Exists(ctx, o.Key)
		if err != nil {
			a.m.errors.WithLabelValues("publish").Inc()
			return fmt.Errorf("publish %s: %w", o.Key, err)
		}
		if !ok {
			if err := a.bucket.Copy(ctx, o.Key, o.Staging, nil); err != nil {
				// Another reader of the claim may have published it and deleted the staging
				// object between our check and our copy.
				if ok, eerr := a.bucket.Exists(ctx, o.Key); eerr != nil || !ok {
					a.m.errors.WithLabelValues("publish").Inc()
					return fmt.Errorf("publish %s from %s: %w", o.Key, o.Staging, err)
				}
			}
		}
		if err := a.bucket.Delete(ctx, o.Staging); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			a.log.Warn("delete staging object", "key", o.Staging, "err", err)
		}
	}
	return nil
}

func (a *Archiver) deleteStaging(ctx context.Context, c layout.Claim) {
	for _, o := range c.Objects {
		if err := a.bucket.Delete(ctx, o.Staging); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			a.log.Warn("delete staging object", "key", o.Staging, "err", err)
		}
	}
}

func (a *Archiver) readClaim(ctx context.Context, key string) (layout.Claim, error) {
	b, err := a.bucket.ReadAll(ctx, key)
	if err != nil {
		return layout.Claim{}, fmt.Errorf("read claim %s: %w", key, err)
	}
	c, err := layout.DecodeClaim(b)
	if err != nil {
		return layout.Claim{}, fmt.Errorf("claim %s: %w", key, err)
	}
	return c, nil
}

// commit records the range's end as the partition's committed offset, with the bucketing
// clock as metadata. It is a hint for the next owner's recovery, which follows the claims from
// there: a failed commit costs a claim lookup, never data.
func (a *Archiver) commit(s *segment, c layout.Claim) {
	if !a.current(s) {
		return
	}
	meta := strconv.FormatInt(c.BucketTimeMs, 10)
	ctx := kgo.PreCommitFnContext(a.uploadCtx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				req.Topics[i].Partitions[j].Metadata = &meta
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	a.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.Topic: {c.Partition: {Epoch: -1, Offset: c.Next()}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			defer close(done)
			if err == nil && resp != nil {
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 {
							err = fmt.Errorf("error code %d", p.ErrorCode)
						}
					}
				}
			}
			if err != nil {
				a.m.errors.WithLabelValues("commit").Inc()
				a.log.Warn("offset commit failed (the claim chain still records the progress)", "topic", c.Topic, "partition", c.Partition, "offset", c.Next(), "err", err)
			}
		})
	<-done
}

// followClaims walks the claim chain of a partition from offset, publishing claims a crash
// left unpublished, and returns the chain's end and the bucketing clock there.
func (a *Archiver) followClaims(ctx context.Context, topic string, partition int32, offset, bucketMs int64) (int64, int64, error) {
	for {
		key := layout.ClaimKey(a.cfg.Prefix, topic, partition, offset)
		c, err := a.readClaim(ctx, key)
		if gcerrors.Code(errors.Unwrap(err)) == gcerrors.NotFound || gcerrors.Code(err) == gcerrors.NotFound {
			return offset, bucketMs, nil
		}
		if err != nil {
			return 0, 0, err
		}
		if c.Start != offset || c.Topic != topic || c.Partition != partition {
			return 0, 0, fmt.Errorf("claim %s describes %s[%d] from %d", key, c.Topic, c.Partition, c.Start)
		}
		if err := a.publish(ctx, c); err != nil {
			return 0, 0, err
		}
		offset, bucketMs = c.Next(), c.BucketTimeMs
	}
}

// sweepLoop deletes staging objects older than StagingGrace: uploads whose claim was never
// written (a crash, a lost race). Claimed staging objects are deleted by publish.
func (a *Archiver) sweepLoop(ctx context.Context) {
	t := time.NewTicker(min(a.cfg.StagingGrace/4, 10*time.Minute))
	defer t.Stop()
	for {
		a.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep lists everything under the staging prefix, so it also finds the staging objects of
// earlier versions (_staging/<attempt>/<namespace>+<name>, one directory per attempt).
func (a *Archiver) sweep(ctx context.Context) {
	it := a.bucket.List(&blob.ListOptions{Prefix: layout.StagingDir(a.cfg.Prefix)})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() == nil {
				a.m.errors.WithLabelValues("sweep").Inc()
				a.log.Warn("sweep staging", "err", err)
			}
			return
		}
		if time.Since(obj.ModTime) < a.cfg.StagingGrace {
			continue
		}
		if err := a.bucket.Delete(ctx, obj.Key); err == nil {
			a.m.stagingSwept.Inc()
			if a.localDir != "" {
				// An old-format attempt directory; removing fails while it still holds objects.
				if dir := path.Dir(obj.Key); strings.HasPrefix(dir+"/", layout.StagingDir(a.cfg.Prefix)) && dir+"/" != layout.StagingDir(a.cfg.Prefix) {
					os.Remove(filepath.Join(a.localDir, filepath.FromSlash(dir)))
				}
			}
		}
	}
	a.sweepStagingDirs()
}

// sweepStagingDirs removes the empty directories under a file:// bucket's staging prefix that
// earlier versions left behind, one per upload (fileblob does not remove a key's directory when
// it deletes the key). Only directories unchanged for the grace are removed, so an earlier
// version still running beside this one (a rolling upgrade) never loses a directory it has
// just created for an upload.
func (a *Archiver) sweepStagingDirs() {
	if a.localDir == "" {
		return
	}
	root := filepath.Join(a.localDir, filepath.FromSlash(layout.StagingDir(a.cfg.Prefix)))
	var dirs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- { // deepest first
		fi, err := os.Stat(dirs[i])
		if err != nil || time.Since(fi.ModTime()) < a.cfg.StagingGrace {
			continue
		}
		os.Remove(dirs[i]) // fails, harmlessly, when not empty
	}
}
