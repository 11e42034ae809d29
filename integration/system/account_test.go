package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	"golang.org/x/sync/errgroup"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/loadgen"
)

// pos is a Kafka record's position.
type pos struct {
	topic     string
	partition int32
	offset    int64
}

// report is what a scenario counted; docs/reliability.md tabulates it.
type report struct {
	Scenario       string
	Written        int
	Kafka          int // distinct lines in Kafka
	KafkaDups      int // records beyond the first of a line
	OutOfOrder     int // lines that first arrived after a later line of their container
	Archived       int // distinct lines in the archive
	Served         int // distinct lines served through the gateway
	LostActual     int // lines written that never reached Kafka
	LostBytes      int64
	CountedBytes   int64 // bytes counted lost (LOST log lines)
	PeakRSSMiB     map[string]int64
	P99            time.Duration // write to Kafka append, lines of namespaces other than the flood's
	FloodP99       time.Duration
	Duration       time.Duration // of the workload
	Injected       string
	Rotations      int
	Gzipped        int
	DeletedRotated int
}

// exact: every line written is in Kafka once, archived and served; nothing lost.
// A loss counted where nothing was lost is a wrong count too (an alert a platform team chases
// for nothing), so both also want nothing counted.
func (r report) exact() bool {
	return r.LostActual == 0 && r.CountedBytes == 0 && r.KafkaDups == 0 && r.Archived == r.Written && r.Served == r.Written
}

// complete: nothing lost (nor counted), and every line in Kafka is archived and served
// (duplicates allowed).
func (r report) complete() bool {
	return r.LostActual == 0 && r.CountedBytes == 0 && r.Archived == r.Kafka && r.Served == r.Kafka
}

func (r report) String() string {
	var rss []string
	for k, v := range r.PeakRSSMiB {
		rss = append(rss, fmt.Sprintf("%s=%dMiB", k, v))
	}
	sort.Strings(rss)
	return fmt.Sprintf("SYSTEM REPORT %s: injected %s; p99 write->kafka %s (flood namespace %s); written %d, kafka %d (+%d duplicates, %d out of order), archived %d, served %d; lost actual %d lines (%d bytes), counted %d bytes; rotations %d, gzipped %d, deleted %d; peak RSS %s",
		r.Scenario, r.Injected, r.P99.Round(time.Millisecond), r.FloodP99.Round(time.Millisecond), r.Written, r.Kafka, r.KafkaDups, r.OutOfOrder, r.Archived, r.Served, r.LostActual, r.LostBytes, r.CountedBytes,
		r.Rotations, r.Gzipped, r.DeletedRotated, strings.Join(rss, " "))
}

// kafkaLine is one record read back from a namespace topic.
type kafkaLine struct {
	key string
	seq int
	msg uint64    // FNV-1a of the message: the long version holds every record in memory
	kts time.Time // the Kafka record's timestamp (the collector's produce time)
	ts  time.Time // the record's own time (the line's CRI timestamp)
	// fieldSeq is the record's fields.seq (what a json pipeline step parsed), "" without fields.
	fieldSeq string
}

func fieldSeqOf(r *record.Record) string {
	switch v := r.Fields["seq"].(type) {
	case nil:
		if r.Fields != nil {
			return "(fields without seq)"
		}
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// account proves, after the workload stopped and the components caught up, that every line
// written reached its namespace topic in order per container, is in exactly one archived
// object, and is served to its team only; or was counted lost. It returns what it counted.
func (s *system) account(scenario, injected string) report {
	t := s.t
	t.Helper()
	s.waitCaughtUp()
	want, total := s.w.written()
	keys := s.w.byKey()
	lost := s.lostLogged()
	rep := report{Scenario: scenario, Injected: injected, Written: total, CountedBytes: sum(lost)}
	// How long each step of the accounting took, for the log (where a scenario's time goes).
	var phases []string
	t0 := time.Now()
	phase := func(name string) {
		phases = append(phases, fmt.Sprintf("%s %s", name, time.Since(t0).Round(100*time.Millisecond)))
		t0 = time.Now()
	}

	// 1. Kafka: wait until every line is there or counted lost, then read every namespace topic.
	var recs map[pos]kafkaLine
	var seen map[string]map[int]int
	// Not s.waitFor: a line lost without being counted is a finding to report with the rest.
	deadline := time.Now().Add(90 * time.Second)
	for {
		recs, seen = s.readKafka()
		lost = s.lostLogged()
		reason := ""
		for key, n := range want {
			for q := range n {
				if seen[key][q] == 0 && lost[keys[key].ns] == 0 && reason == "" && (s.byDesign == nil || !s.byDesign(keys[key], q)) {
					reason = fmt.Sprintf("%s seq %d not in Kafka and nothing counted lost in %s\n%s", key, q, keys[key].ns, s.explainMissing(keys[key], q))
				}
			}
		}
		if reason == "" {
			break
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			t.Errorf("lost without being counted: %s", reason)
			break
		}
		time.Sleep(time.Second)
	}
	phase("kafka")
	rep.CountedBytes = sum(lost)
	rep.OutOfOrder = s.outOfOrder
	s.seen, s.recs = seen, recs
	s.explainDisorder(keys, 3)
	for i, p := range s.kafkaProblems {
		if i == 20 {
			t.Errorf("... %d Kafka problems in all", len(s.kafkaProblems))
			break
		}
		t.Error(p)
	}
	var lostAt []time.Time
	mustCount := 0 // lost lines the collector can count
	for key, n := range want {
		for q := range n {
			switch c := seen[key][q]; {
			case c == 0:
				rep.LostActual++
				if s.byDesign == nil || !s.byDesign(keys[key], q) {
					mustCount++
				}
				rep.LostBytes += keys[key].bytes[q]
				lostAt = append(lostAt, keys[key].at[q])
			default:
				rep.Kafka++
				rep.KafkaDups += c - 1
			}
		}
		for q := range seen[key] {
			if q >= n {
				t.Errorf("%s: seq %d in Kafka was never written", key, q)
			}
		}
	}
	if len(lostAt) > 0 {
		t.Logf("lost lines by the minute they were written (from the first line written): %s", perMinute(s.w.started(), lostAt))
	}
	if rep.KafkaDups > 0 {
		s.explainDuplicates(keys, 3)
	}
	for _, l := range s.lostLines() {
		t.Logf("counted lost by collector run %d: %s (namespace %s, inode %d, checkpoint offset %d, size %d): %d bytes", l.run, l.Path, l.Namespace, l.Inode, l.Offset, l.Size, l.Bytes)
	}
	// A loss must be counted in its namespace: the per-namespace check is inside the wait
	// above; here the counted bytes must cover the lost lines' bytes within one line's framing
	// per file (docs/collector.md#lost-files), i.e. at least not be zero.
	if mustCount > 0 && rep.CountedBytes == 0 {
		t.Errorf("%d lines lost and nothing counted", mustCount)
	}

	// 2. Archive: every Kafka record in exactly one object, read with parquet-go directly.
	ends := map[archivetest.Pos]int64{}
	for p := range recs {
		k := archivetest.Pos{Topic: p.topic, Partition: p.partition}
		ends[k] = max(ends[k], p.offset+1)
	}
	ctx, cancel := ctxTimeout(15 * time.Minute) // the long version reads ~10,000 objects
	defer cancel()
	b := s.openBucket(ctx)
	defer b.Close()
	if err := archivetest.WaitArchived(ctx, b, "", ends, 180*time.Second); err != nil {
		s.checkAlive()
		t.Fatalf("%v\narchiver warnings and errors:\n%s", err, s.problemsLogged(s.archiver, 30))
	}
	phase("archive wait")
	objects, rows := s.readArchive(ctx, b)
	phase("archive read")
	archivedLines := map[string]map[int]bool{}
	for p, kl := range recs {
		switch rs := rows[p]; {
		case len(rs) == 0:
			t.Errorf("%v (%s seq %d) is in no archived object", p, kl.key, kl.seq)
		case len(rs) > 1:
			t.Errorf("%v (%s seq %d) is in %d archived objects", p, kl.key, kl.seq, len(rs))
		case rs[0] != kl.msg:
			t.Errorf("%v (%s seq %d): the archived message differs from Kafka's (FNV-1a %x, Kafka's %x)", p, kl.key, kl.seq, rs[0], kl.msg)
		default:
			if archivedLines[kl.key] == nil {
				archivedLines[kl.key] = map[int]bool{}
			}
			archivedLines[kl.key][kl.seq] = true
		}
	}
	for p := range rows {
		if _, ok := recs[p]; !ok {
			t.Errorf("archived row %v is no record in Kafka", p)
		}
	}
	for _, m := range archivedLines {
		rep.Archived += len(m)
	}

	// 3. Gateway: each team pages its namespace from the start and gets every record of its
	// topic; another team's token is refused.
	tokens := s.tokens()
	phase("tokens")
	perTopic := map[string]int{}
	for p := range recs {
		perTopic[p.topic]++
	}
	for i, ns := range s.w.namespaces {
		got, nrec := s.pageAll(ns, tokens[ns], perTopic["logs."+ns])
		for _, kl := range got {
			if keys[kl.key] == nil || keys[kl.key].ns != ns {
				t.Errorf("gateway served %s a line of %s", ns, kl.key)
			}
		}
		if nrec != perTopic["logs."+ns] {
			t.Errorf("gateway served %s %d records, its topic holds %d", ns, nrec, perTopic["logs."+ns])
		}
		distinct := map[string]bool{}
		for _, kl := range got {
			distinct[fmt.Sprint(kl.key, kl.seq)] = true
		}
		rep.Served += len(distinct)
		other := s.w.namespaces[(i+1)%len(s.w.namespaces)]
		if st := s.gwStatus(other, tokens[ns]); st != http.StatusForbidden {
			t.Errorf("%s's token on %s: status %d, want 403", ns, other, st)
		}
	}
	phase("gateway")
	rep.PeakRSSMiB = s.rss.peaks()
	var quiet, flood []time.Duration
	for ns, ds := range s.latency {
		if ns == s.w.flood {
			flood = append(flood, ds...)
		} else {
			quiet = append(quiet, ds...)
		}
	}
	rep.P99, rep.FloodP99 = p99(quiet), p99(flood)
	s.w.mu.Lock()
	rep.Rotations, rep.Gzipped, rep.DeletedRotated = s.w.rotations, s.w.gzipped, s.w.deleted
	s.w.mu.Unlock()
	t.Logf("%s (%d archived objects; accounting took: %s)", rep, objects, strings.Join(phases, ", "))
	return rep
}

// perMinute renders how many of ts fall in each minute after t0, as "m0:n m3:n ..." (minutes
// without any left out).
func perMinute(t0 time.Time, ts []time.Time) string {
	n := map[int]int{}
	last := 0
	for _, t := range ts {
		m := int(t.Sub(t0) / time.Minute)
		n[m]++
		last = max(last, m)
	}
	var out []string
	for m := 0; m <= last; m++ {
		if n[m] > 0 {
			out = append(out, fmt.Sprintf("m%d:%d", m, n[m]))
		}
	}
	return strings.Join(out, " ")
}

func msgHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// readKafka reads every namespace topic to its end and checks order per container: a line
// first seen must come after every line of its container seen before (repeats after a restart
// are duplicates, not disorder), and a container's lines share one partition.
func (s *system) readKafka() (map[pos]kafkaLine, map[string]map[int]int) {
	t := s.t
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	outOfOrder := 0
	defer func() { s.kafkaProblems, s.outOfOrder = problems, outOfOrder }()
	s.disorder = map[string]*disorderAt{}
	ctx, cancel := ctxTimeout(5 * time.Minute) // a bound: the long version reads ~700,000 records
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var topics []string
	for _, ns := range s.w.namespaces {
		topics = append(topics, "logs."+ns)
	}
	endsRes, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, nil
	}
	ends := map[string]map[int32]kgo.Offset{}
	remaining := 0
	endsRes.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset == 0 {
			return
		}
		if ends[o.Topic] == nil {
			ends[o.Topic] = map[int32]kgo.Offset{}
		}
		ends[o.Topic][o.Partition] = kgo.NewOffset().At(0)
		remaining += int(o.Offset)
	})
	recs := map[pos]kafkaLine{}
	seen := map[string]map[int]int{}
	if remaining == 0 {
		return recs, seen
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.brokers), kgo.ConsumePartitions(ends), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	maxSeq := map[string]int{}
	part := map[string]int32{}
	arrivals := map[string][]arrival{}
	files := map[string]string{} // interned file names
	defer func() { s.arrivals = arrivals }()
	j := newJoiner(problem)
	byKey := s.w.byKey()
	lat := map[string][]time.Duration{}
	defer func() { s.latency = lat }()
	for len(recs) < remaining && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := record.Decode(r.Value)
			if err != nil {
				problem("%s/%d@%d: undecodable record: %v", r.Topic, r.Partition, r.Offset, err)
				return
			}
			p := pos{r.Topic, r.Partition, r.Offset}
			recs[p] = kafkaLine{msg: msgHash([]byte(rec.Message)), kts: r.Timestamp, ts: rec.Time, fieldSeq: fieldSeqOf(&rec)}
			lkey := rec.Namespace + "/" + rec.Pod + "/" + rec.Container
			if pt, ok := part[lkey]; ok && pt != r.Partition {
				problem("%s in partitions %d and %d: no order per container", lkey, pt, r.Partition)
			}
			part[lkey] = r.Partition
			key, seq, poss, ok := j.add(p, &rec)
			if !ok {
				return // a chunk of a line that continues
			}
			if key != lkey {
				problem("%v: line of %s in a record of %s", p, key, lkey)
			}
			for _, cp := range poss {
				kl := recs[cp]
				kl.key, kl.seq = key, seq
				recs[cp] = kl
			}
			if "logs."+strings.SplitN(key, "/", 2)[0] != r.Topic {
				problem("%s seq %d in topic %s", key, seq, r.Topic)
			}
			if seen[key] == nil {
				seen[key] = map[int]int{}
				maxSeq[key] = -1
			}
			if c := byKey[key]; seen[key][seq] == 0 && c != nil && seq < len(c.at) {
				lat[c.ns] = append(lat[c.ns], r.Timestamp.Sub(c.at[seq]))
			}
			fn, ok := files[rec.File]
			if !ok {
				fn = rec.File
				files[fn] = fn
			}
			arrivals[key] = append(arrivals[key], arrival{seq: seq, file: fn, offset: rec.Offset, src: rec.Src, again: seen[key][seq] > 0, at: p})
			if seen[key][seq] == 0 && seq < maxSeq[key] {
				outOfOrder++
				why := ""
				if c := byKey[key]; outOfOrder == 1 && c != nil && maxSeq[key] < len(c.at) {
					// The first one says where both lines were written and what the collector did.
					why = fmt.Sprintf(" at %v; seq %d was written at %s after %d rotations\n%s", p, maxSeq[key],
						c.at[maxSeq[key]].Format("15:04:05.000"), c.rot[maxSeq[key]], s.explainMissing(c, seq))
				}
				problem("%s: seq %d first arrives after seq %d (out of order)%s", key, seq, maxSeq[key], why)
				if s.disorder[key] == nil {
					s.disorder[key] = &disorderAt{seq: seq, after: maxSeq[key]}
				}
			}
			seen[key][seq]++
			maxSeq[key] = max(maxSeq[key], seq)
		})
	}
	if len(recs) < remaining {
		problem("read %d of %d records from Kafka", len(recs), remaining)
	}
	return recs, seen
}

// archiveReaders is how many objects readArchive reads at once: each read is a round trip
// to the S3 server, and a short scenario archives about a thousand objects.
const archiveReaders = 8

// readArchive reads every Parquet data object with parquet-go's own row reader (not the
// archiver's row type) and returns, for each Kafka position, the messages of the rows that
// hold it.
func (s *system) readArchive(ctx context.Context, b *blob.Bucket) (int, map[pos][]uint64) {
	t := s.t
	var mu sync.Mutex
	rows := map[pos][]uint64{}
	n := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(archiveReaders)
	for _, key := range s.listKeys(ctx, b, "namespace=") {
		if !strings.HasSuffix(key, ".parquet") {
			t.Errorf("archive object %s: not Parquet", key)
			continue
		}
		n++
		g.Go(func() error {
			got, err := s.readObject(gctx, b, key)
			mu.Lock()
			defer mu.Unlock()
			for _, r := range got {
				rows[r.p] = append(rows[r.p], r.msg)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return n, rows
}

// archivedRow is one row of an archived object: its Kafka position and its message's hash.
type archivedRow struct {
	p   pos
	msg uint64
}

// readObject reads the rows of one Parquet object. What the archive got wrong is a test
// error; an error returned is one that stops the reading (the bucket unreadable, no such
// column).
func (s *system) readObject(ctx context.Context, b *blob.Bucket, key string) ([]archivedRow, error) {
	t := s.t
	data, err := b.ReadAll(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return nil, nil
	}
	col := map[string]int{}
	for _, name := range []string{"message", "kafka_topic", "kafka_partition", "kafka_offset", "namespace"} {
		leaf, ok := f.Schema().Lookup(name)
		if !ok {
			return nil, fmt.Errorf("%s: no column %s", key, name)
		}
		col[name] = leaf.ColumnIndex
	}
	var out []archivedRow
	r := parquet.NewReader(f)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	for {
		k, err := r.ReadRows(buf)
		for _, row := range buf[:k] {
			vals := map[int]parquet.Value{}
			for _, v := range row {
				vals[v.Column()] = v
			}
			p := pos{string(vals[col["kafka_topic"]].ByteArray()), vals[col["kafka_partition"]].Int32(), vals[col["kafka_offset"]].Int64()}
			ns := string(vals[col["namespace"]].ByteArray())
			if !strings.Contains(key, "namespace="+ns+"/") || p.topic != "logs."+ns {
				t.Errorf("%s holds %v of namespace %s", key, p, ns)
			}
			out = append(out, archivedRow{p, msgHash(vals[col["message"]].ByteArray())})
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			t.Errorf("%s: %v", key, err)
			return out, nil
		}
	}
}

// listKeys lists the keys of the bucket's objects under prefix.
func (s *system) listKeys(ctx context.Context, b *blob.Bucket, prefix string) []string {
	var out []string
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return out
		}
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, o.Key)
	}
}

// tokenCreators is how many `logrouter tokens create` run at once (each a process that
// connects to the broker).
const tokenCreators = 4

// tokens creates one gateway token per team with `logrouter tokens create`.
func (s *system) tokens() map[string]string {
	var mu sync.Mutex
	out := map[string]string{}
	var g errgroup.Group
	g.SetLimit(tokenCreators)
	for _, ns := range s.w.namespaces {
		g.Go(func() error {
			cmd := s.command("tokens", "create", "--brokers", s.brokers, "--namespace", ns, "--name", "team-"+ns)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("tokens create --namespace %s: %v\n%s", ns, err, stderr.String())
			}
			mu.Lock()
			out[ns] = strings.TrimSpace(stdout.String())
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *system) gwGet(path, token string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.gwAddr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	return http.DefaultClient.Do(req)
}

func (s *system) gwStatus(ns, token string) int {
	resp, err := s.gwGet("/v1/namespaces/"+ns+"/logs?limit=1", token)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pageAll walks ns's JSON pages from the earliest record until want records arrived and the
// page says it caught up. Tokens reach the gateway through Kafka: 401 is retried for a while.
func (s *system) pageAll(ns, token string, want int) ([]kafkaLine, int) {
	t := s.t
	var out []kafkaLine
	records := 0
	j := newJoiner(t.Errorf)
	cursor := ""
	deadline := time.Now().Add(3 * time.Minute)
	for {
		q := url.Values{"limit": {"10000"}}
		if cursor == "" {
			q.Set("from", "earliest")
		} else {
			q.Set("cursor", cursor)
		}
		resp, err := s.gwGet("/v1/namespaces/"+ns+"/logs?"+q.Encode(), token)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s: %v", ns, err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s: %d %s", ns, resp.StatusCode, body)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var page struct {
			Records    []json.RawMessage `json:"records"`
			NextCursor string            `json:"next_cursor"`
			CaughtUp   bool              `json:"caught_up"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("gateway %s page: %v", ns, err)
		}
		for _, raw := range page.Records {
			rec, err := record.Decode(raw)
			if err != nil {
				t.Errorf("gateway %s: undecodable record: %v", ns, err)
				continue
			}
			records++
			key, seq, _, ok := j.add(pos{}, &rec)
			if !ok {
				continue
			}
			out = append(out, kafkaLine{key: key, seq: seq})
		}
		cursor = page.NextCursor
		if page.CaughtUp && records >= want {
			return out, records
		}
		if time.Now().After(deadline) {
			t.Errorf("gateway %s: %d of %d records after 60s", ns, records, want)
			return out, records
		}
	}
}

// joiner puts the chunks of cut lines (record.Split: the collector cuts a line whose parts it
// holds when its byte budget is full, docs/collector.md) back together, per container.
type joiner struct {
	errorf  func(format string, args ...any)
	pending map[string]*pendingLine
}

type pendingLine struct {
	parts []string
	poss  []pos
}

func newJoiner(errorf func(format string, args ...any)) *joiner {
	return &joiner{errorf: errorf, pending: map[string]*pendingLine{}}
}

// add takes the record at p; once a whole line is there it returns the line's key and seq and
// the positions of its records. A restart may resume a cut line at its next chunk, or send
// chunks again from an earlier index (cut elsewhere): those replace what followed them.
func (j *joiner) add(p pos, rec *record.Record) (key string, seq int, poss []pos, ok bool) {
	ckey := rec.Namespace + "/" + rec.Pod + "/" + rec.Container
	msg := rec.Message
	if rec.Split != nil {
		pl := j.pending[ckey]
		if pl == nil {
			pl = &pendingLine{}
			j.pending[ckey] = pl
		}
		i := rec.Split.Index
		if i > len(pl.parts) {
			j.errorf("%v: chunk %d of a line of %s after %d chunks", p, i, ckey, len(pl.parts))
			i = len(pl.parts)
		}
		pl.parts = append(pl.parts[:i], rec.Message)
		pl.poss = append(pl.poss, p)
		if !rec.Split.Last {
			return "", 0, nil, false
		}
		delete(j.pending, ckey)
		msg, poss = strings.Join(pl.parts, ""), pl.poss
	} else {
		if pl := j.pending[ckey]; pl != nil {
			j.errorf("%v: a whole line of %s while chunks %v wait for their last", p, ckey, pl.poss)
			delete(j.pending, ckey)
		}
		poss = []pos{p}
	}
	key, seq, ok = loadgen.ParseSeq(msg)
	if !ok {
		j.errorf("%v: not a workload line: %.100q", p, msg)
	}
	return key, seq, poss, ok
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100]
}
