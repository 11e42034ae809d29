package system

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logrouter/logrouter/router/checkpoint"
)

// lossyNamespaces is how many namespaces (the first ones) the exact-loss scenario rotates
// away while the collector is down: at most 100 LOST lines are logged one by one
// (docs/collector.md#lost-files), and each lossy container loses one or two files.
const lossyNamespaces = 4

// TestSystemExactLoss: an outage longer than the node keeps logs. The broker goes down under
// load; the collector keeps reading (nothing can be shipped, checkpoints stay behind) and is
// then stopped (SIGTERM: its last checkpoint save holds each file's size). While it is down,
// the kubelet rotates the containers of lossyNamespaces namespaces three times, writing lines
// in between: with gzip of every rotated file but the newest, the files that held the unshipped
// lines are gone before the collector can read them. Then the broker and the collector come
// back and the workload continues.
//
// A line is lost when no record of it is in Kafka. Lost lines fall in two classes:
//   - seen: written before the collector stopped, into a file the stopped collector's checkpoint
//     knew the size of. Their framed bytes (every CRI physical line of the line: timestamp,
//     stream, tag, message, newline; a 40 KiB line is three) are what the collector counts:
//     logrouter_collector_lost_bytes_total{namespace} and the LOST: log lines must equal their
//     sum per namespace, exactly (the read-back finds no line past a checkpoint saved at a clean
//     stop, so nothing is taken at its bound);
//   - unseen: written while the collector was down into a file deleted before it started. No
//     run saw them, so they cannot be counted (docs/collector.md#lost-files); they must be
//     exactly the lines of the one file written and compressed during the downtime.
//
// A seen line may also be lost in a file that the workload's first rotations after the restart
// compressed before the restarted collector had opened it (the kubelet does not wait for the
// collector's start): the collector counts it as gone, and its bytes are in the sum above.
//
// Every other line (the files kept, and every line written after the restart) must be in Kafka.
func TestSystemExactLoss(t *testing.T) {
	sc := scaleOf(t)
	s := newSystem(t, namespaces, perNS)
	phase := sc.Duration / 3

	stop := s.runWorkload(sc.Rate, 3*time.Second)
	time.Sleep(phase)
	stop()
	s.stopKafka()
	// The outage: lines keep coming, no rotation (the files that will be lost are the live ones).
	stop = s.runWorkload(sc.Rate, 0)
	time.Sleep(phase)
	stop()
	// The collector's checkpoint saves (every 100 ms) catch up with the files' sizes, then it
	// stops; a clean stop saves once more.
	time.Sleep(2 * time.Second)
	s.checkAlive()
	if err := s.stopComponent(s.collector, 30*time.Second); err != nil {
		t.Fatalf("collector stop during the outage: %v", err)
	}
	seenN, _ := s.w.written() // lines of each container the stopped collector had seen
	atStop := s.checkpoints()
	// The node while the collector is down: three rotations of the lossy containers, with lines
	// written after the first (into a file compressed by the third) and after the third (kept),
	// and lines written into every other container's live file (kept).
	lossy := map[string]bool{}
	for _, ns := range s.w.namespaces[:lossyNamespaces] {
		lossy[ns] = true
	}
	nrotAtStop := map[string]int{}
	for _, c := range s.w.conts {
		s.w.mu.Lock()
		nrotAtStop[c.key] = c.nrot
		s.w.mu.Unlock()
		if !lossy[c.ns] {
			for range 5 {
				s.w.writeOne(c)
			}
			continue
		}
		s.w.rotate(c)
		for range 5 {
			s.w.writeOne(c)
		}
		s.w.rotate(c)
		s.w.rotate(c)
		for range 5 {
			s.w.writeOne(c)
		}
	}
	atRestart := inodesUnder(t, s.w.node.PodsDir)
	restartN, _ := s.w.written() // lines written before the restart
	s.startKafka()
	s.start(s.collector)
	stop = s.runWorkload(sc.Rate, 3*time.Second)
	time.Sleep(phase)
	stop()

	rep := s.account("exact-loss", fmt.Sprintf("kfake stopped under load for %s, collector stopped (SIGTERM) during the outage, %d namespaces' containers rotated 3 times (gzip, keep 5) while it was down, with lines written between", phase, lossyNamespaces))
	keys := s.w.byKey()
	wantCounted := map[string]int64{}
	var seenLost, unseenLost, unseenLostBytes int64
	afterRestart := 0 // seen lost lines in files compressed after the restart
	for key, c := range keys {
		for q := range c.bytes {
			if s.seen[key][q] > 0 {
				continue
			}
			switch {
			case q < seenN[key]:
				seenLost++
				wantCounted[c.ns] += c.bytes[q]
				// Its file must be gone at the restart: file r is compressed at rotation r+2
				// (also one compressed before the stop while the collector, unable to ship,
				// held it open). Or the workload's first rotations after the restart compressed
				// it before the restarted collector had opened it (kubelet does not wait for
				// the collector's start): a loss too, counted like the others (checked below).
				rotations := nrotAtStop[key]
				if lossy[c.ns] {
					rotations += 3
				}
				s.w.mu.Lock()
				nrot := c.nrot
				s.w.mu.Unlock()
				switch {
				case c.rot[q]+2 <= rotations:
				case c.rot[q]+2 <= nrot:
					afterRestart++
				default:
					t.Errorf("%s seq %d lost, but its file (rotation %d of %d) was kept\n%s", key, q, c.rot[q], nrot, s.explainMissing(c, q))
				}
			case q >= restartN[key]:
				t.Errorf("%s seq %d, written after the restart (rotation %d; %d at the stop), is not in Kafka", key, q, c.rot[q], nrotAtStop[key])
			default:
				unseenLost++
				unseenLostBytes += c.bytes[q]
				if !lossy[c.ns] || c.rot[q] != nrotAtStop[key]+1 {
					t.Errorf("%s seq %d, written while the collector was down into a file kept (rotation %d; the collector stopped at %d), is not in Kafka", key, q, c.rot[q], nrotAtStop[key])
				}
			}
		}
		if lossy[c.ns] {
			// Every line written into the file compressed while the collector was down is lost.
			for q := seenN[key]; q < restartN[key]; q++ {
				if c.rot[q] == nrotAtStop[key]+1 && s.seen[key][q] > 0 {
					t.Errorf("%s seq %d: in Kafka, but its file was compressed before any collector could read it", key, q)
				}
			}
		}
	}
	if seenLost == 0 || unseenLost == 0 {
		t.Fatalf("the scenario lost %d seen and %d unseen lines: it must lose both (the outage is too short or the collector shipped everything)", seenLost, unseenLost)
	}
	metric := s.lostMetric()
	logged := s.lostLogged()
	var nss []string
	for ns := range wantCounted {
		nss = append(nss, ns)
	}
	for ns := range metric {
		if wantCounted[ns] == 0 {
			nss = append(nss, ns)
		}
	}
	sort.Strings(nss)
	var detail []string
	for _, ns := range nss {
		detail = append(detail, fmt.Sprintf("%s: lost %d, metric %d, LOST lines %d", ns, wantCounted[ns], metric[ns], logged[ns]))
		if metric[ns] != wantCounted[ns] {
			t.Errorf("%s: logrouter_collector_lost_bytes_total %d, the seen lines lost hold %d bytes", ns, metric[ns], wantCounted[ns])
		}
		if logged[ns] != wantCounted[ns] {
			t.Errorf("%s: LOST: log lines name %d bytes, the seen lines lost hold %d bytes", ns, logged[ns], wantCounted[ns])
		}
	}
	if t.Failed() {
		s.explainLoss(seenN, atStop, atRestart)
	}
	t.Logf("EXACT LOSS: %d seen lines lost (%d bytes, counted %d by the metric; %d of them in files compressed after the restart before the collector opened them); %d unseen lines lost (%d bytes, not countable); per namespace: %s",
		seenLost, sum(wantCounted), sum(metric), afterRestart, unseenLost, unseenLostBytes, strings.Join(detail, "; "))
	if rep.Archived != rep.Kafka || rep.Served != rep.Kafka {
		t.Errorf("every line in Kafka must be archived and served: %s", rep)
	}
	s.stopAll()
}

// inodesUnder maps the inode of every file under dir to its path (relative) and size.
func inodesUnder(t *testing.T, dir string) map[uint64]string {
	out := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		rel, _ := filepath.Rel(dir, p)
		out[fi.Sys().(*syscall.Stat_t).Ino] = fmt.Sprintf("%s (%d bytes)", rel, fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkpoints loads the collector's checkpoint file, by inode.
func (s *system) checkpoints() map[uint64]checkpoint.Entry {
	st, err := checkpoint.Open(filepath.Join(s.dir, "checkpoints"))
	if err != nil {
		s.t.Fatal(err)
	}
	es, err := st.Load()
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[uint64]checkpoint.Entry{}
	for _, e := range es {
		out[e.Inode] = e
	}
	return out
}

// stopComponent stops c's current run with SIGTERM (it stays stopped until s.start(c)).
func (s *system) stopComponent(c *component, timeout time.Duration) error {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if err := p.stop(timeout); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(p.stderr.String(), 3000))
	}
	return nil
}

// lostMetric reads the collector's logrouter_collector_lost_bytes_total by namespace (the
// current run's: the count happens at its start).
func (s *system) lostMetric() map[string]int64 {
	return s.collectorCounter("logrouter_collector_lost_bytes_total", "namespace")
}

// collectorCounter sums the collector's counter name by the value of its label.
func (s *system) collectorCounter(name, label string) map[string]int64 {
	fams, err := s.collectorMetrics()
	if err != nil {
		s.t.Fatalf("collector metrics: %v", err)
	}
	out := map[string]int64{}
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

// explainLoss logs, for every file that lost lines the stopped collector had seen (seenN per
// container) and whose LOST: lines do not name their bytes, what the harness wrote into it
// (its lines' file offsets, those in Kafka and not), its checkpoint entry at the stop, what
// held its inode at the restart, and the LOST: lines for its inode.
func (s *system) explainLoss(seenN map[string]int, atStop map[uint64]checkpoint.Entry, atRestart map[uint64]string) {
	byIno := map[uint64][]lostLine{}
	for _, l := range s.lostLines() {
		byIno[l.Inode] = append(byIno[l.Inode], l)
	}
	for _, c := range s.w.conts {
		type file struct {
			size, lost, firstLost int64
			lines, lostLines      int
			seenLost              bool
		}
		files := map[int]*file{}
		for q := range c.bytes {
			f := files[c.rot[q]]
			if f == nil {
				f = &file{firstLost: -1}
				files[c.rot[q]] = f
			}
			if s.seen[c.key][q] == 0 {
				if f.firstLost < 0 {
					f.firstLost = f.size
				}
				f.lost += c.bytes[q]
				f.lostLines++
				f.seenLost = f.seenLost || q < seenN[c.key]
			}
			f.size += c.bytes[q]
			f.lines++
		}
		for r, f := range files {
			if !f.seenLost {
				continue
			}
			var ino uint64
			if r < len(c.ino) {
				ino = c.ino[r]
			}
			var ls []string
			counted := int64(0)
			for _, l := range byIno[ino] {
				if strings.Contains(l.Path, filepath.Dir(c.c.Path())) {
					ls = append(ls, fmt.Sprintf("run %d: offset %d size %d lost %d (%s)", l.run, l.Offset, l.Size, l.Bytes, filepath.Base(l.Path)))
					counted += l.Bytes
				}
			}
			if counted == f.lost {
				continue
			}
			ck := "no entry"
			if e, ok := atStop[ino]; ok {
				ck = fmt.Sprintf("offset %d size %d fp_len %d (%s)", e.Offset, e.Size, e.FingerprintLen, filepath.Base(e.Path))
			}
			now := "no file"
			if p, ok := atRestart[ino]; ok {
				now = p
			}
			s.t.Logf("%s file %d (inode %d): %d lines, %d bytes; %d lines not in Kafka from offset %d, %d bytes; checkpoint at the stop: %s; the inode at the restart: %s; LOST lines: %v; the collector's lines about the inode:\n%s", c.key, r, ino, f.lines, f.size, f.lostLines, f.firstLost, f.lost, ck, now, ls, s.inodeLogged(ino))
		}
	}
}

// inodeLogged returns the collector's log lines (every run) that name inode, for the failure
// message.
func (s *system) inodeLogged(ino uint64) string {
	s.collector.mu.Lock()
	defer s.collector.mu.Unlock()
	var b strings.Builder
	needle := fmt.Sprintf(`"inode":%d`, ino)
	for i, p := range s.collector.runs {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, needle) {
				fmt.Fprintf(&b, "  run %d: %s\n", i, tail(l, 400))
			}
		}
	}
	return b.String()
}
