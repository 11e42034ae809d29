package system

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/loadgen"
)

// objectKeyRe parses an archived data object's key (docs/archive.md#layout).
var objectKeyRe = regexp.MustCompile(`^namespace=([^/]+)/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/(.+)\+(\d+)\+(\d+)\+(\d+)\.parquet$`)

// skewClocks gives the node of two namespaces a broken clock, seen through the lines' CRI
// timestamps (the kubelet's clock): the first namespace an hour ahead, the second a day behind;
// the third is right. Call it before the workload runs; checkClocks checks where their lines
// landed once account has run.
func (s *system) skewClocks() (ahead, behind, right string) {
	ahead, behind, right = s.w.namespaces[0], s.w.namespaces[1], s.w.namespaces[2]
	s.w.skew = map[string]time.Duration{ahead: time.Hour, behind: -24 * time.Hour}
	return ahead, behind, right
}

// checkClocks checks, after account, where the lines of the skewed namespaces (skewClocks)
// landed, per namespace:
//   - the archive's Hive partition (dt=, hour=) of every object is the hour of its bucket
//     time, the running maximum of the Kafka timestamps (the collector's produce time) of its
//     partition up to its first record, computed here from the records read back from Kafka:
//     not the lines' own (skewed) time (docs/archive.md#bucketing-time-a-per-partition-running-maximum);
//   - `logrouter query` over the lines' own time range finds every line, with its own time,
//     in time order: with the default flags for the clock an hour ahead (within --clock-skew
//     1h) and the right one; the clock a day behind is outside the default --lookahead 6h, so
//     the default query returns none of its lines, and `--lookahead 25h` returns all of them.
func (s *system) checkClocks(ahead, behind, right string) {
	t := s.t
	t.Helper()
	// The lines of each namespace as Kafka holds them, and the bucket time of each position.
	type line struct{ ts, kts time.Time }
	lines := map[string]map[string]line{} // namespace -> key/seq -> times
	byPart := map[pos][]int64{}           // (topic, partition, 0) -> offsets
	for p, kl := range s.recs {
		ns := strings.TrimPrefix(p.topic, "logs.")
		if lines[ns] == nil {
			lines[ns] = map[string]line{}
		}
		if kl.key != "" {
			lines[ns][fmt.Sprint(kl.key, " ", kl.seq)] = line{kl.ts, kl.kts}
		}
		k := pos{p.topic, p.partition, 0}
		byPart[k] = append(byPart[k], p.offset)
	}
	bucket := map[pos]time.Time{}
	for k, offs := range byPart {
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		var run time.Time
		for _, o := range offs {
			p := pos{k.topic, k.partition, o}
			if kt := s.recs[p].kts; kt.After(run) {
				run = kt
			}
			bucket[p] = run
		}
	}

	// The partition directories.
	ctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	b := s.openBucket(ctx)
	defer b.Close()
	hours := map[string]map[string]int{} // namespace -> dt/hour -> objects
	for _, ns := range []string{ahead, behind, right} {
		hours[ns] = map[string]int{}
		for _, key := range s.listKeys(ctx, b, "namespace="+ns+"/") {
			m := objectKeyRe.FindStringSubmatch(key)
			if m == nil {
				continue // claims live elsewhere; anything else was checked by account
			}
			part, _ := strconv.Atoi(m[5])
			start, _ := strconv.ParseInt(m[6], 10, 64)
			bt, ok := bucket[pos{m[4], int32(part), start}]
			if !ok {
				t.Errorf("%s: its first offset is no Kafka record", key)
				continue
			}
			dir := m[2] + "/" + m[3]
			if want := bt.UTC().Format("2006-01-02/15"); dir != want {
				t.Errorf("%s: partition %s, its bucket time %s is in %s", key, dir, bt.UTC().Format(time.RFC3339Nano), want)
			}
			hours[ns][dir]++
		}
	}

	// logrouter query over each namespace's own time range.
	for _, tc := range []struct {
		ns       string
		flags    []string
		wantNone bool
	}{
		{ns: ahead},
		{ns: right},
		{ns: behind, wantNone: true},
		{ns: behind, flags: []string{"--lookahead", "25h"}},
	} {
		want := lines[tc.ns]
		if len(want) == 0 {
			t.Fatalf("%s: no lines in Kafka", tc.ns)
		}
		var lo, hi time.Time
		ownHours := map[string]bool{}
		for _, l := range want {
			if lo.IsZero() || l.ts.Before(lo) {
				lo = l.ts
			}
			hi = later(hi, l.ts)
			ownHours[l.ts.UTC().Format("2006-01-02/15")] = true
		}
		args := append([]string{"query", "--bucket", s.bucketURL, "--namespace", tc.ns,
			"--since", lo.Add(-time.Second).UTC().Format(time.RFC3339Nano), "--until", hi.Add(time.Second).UTC().Format(time.RFC3339Nano), "--stats"}, tc.flags...)
		cmd := s.command(args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("logrouter %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		got := map[string]bool{}
		var prev time.Time
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var r record.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("query output: %v: %.200q", err, sc.Text())
			}
			key, seq, ok := loadgen.ParseSeq(r.Message)
			id := fmt.Sprint(key, " ", seq)
			l, known := want[id]
			switch {
			case !ok || !known:
				t.Errorf("%s: query returned %.100q, not a line of the namespace", tc.ns, r.Message)
			case !r.Time.Equal(l.ts.Truncate(time.Microsecond)):
				// The archive keeps microseconds (docs/archive.md#schema).
				t.Errorf("%s %s: query says ts %s, Kafka's record %s", tc.ns, id, r.Time, l.ts)
			case got[id]:
				t.Errorf("%s %s: returned twice", tc.ns, id)
			}
			if r.Time.Before(prev) {
				t.Errorf("%s: %s at %s after %s: not in time order", tc.ns, id, r.Time, prev)
			}
			prev, got[id] = r.Time, true
		}
		wantN := len(want)
		if tc.wantNone {
			wantN = 0
		}
		if len(got) != wantN {
			t.Errorf("logrouter %s: %d of the namespace's %d lines, want %d\n%s", strings.Join(args[4:], " "), len(got), len(want), wantN, stderr.String())
		}
		t.Logf("CLOCK %s: lines' own hours %v, archive partitions %v; query %v: %d of %d lines; stderr: %s",
			tc.ns, keys(ownHours), hours[tc.ns], tc.flags, len(got), len(want), strings.TrimSpace(stderr.String()))
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
