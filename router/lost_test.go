package router

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// TestLossOfFilesDeletedWhileStopped stages what a collector finds at start when rotated
// files were deleted while it was not running, with the checkpoints a stop or a crash leaves:
// the bytes that existed when the checkpoint was saved and never reached Kafka are counted as
// lost, per namespace, and a line that did reach Kafka after the save is never counted.
func TestLossOfFilesDeletedWhileStopped(t *testing.T) {
	const shipped, behind = 100, 50
	cases := []struct {
		name string
		// roll edits the rotated file's checkpoint entry as the stop left it: offset and size
		// are the file's size after the shipped lines, size2 its size after the unsent ones.
		roll func(e *checkpoint.Entry, size1, size2 int64)
		// min and max bound the bytes counted lost, from size1 and size2.
		min, max func(size1, size2 int64) int64
	}{
		{
			name: "behind at the save: the unsent bytes are lost exactly",
			roll: func(e *checkpoint.Entry, size1, size2 int64) { e.Size = size2 },
			min:  func(size1, size2 int64) int64 { return size2 - size1 },
			max:  func(size1, size2 int64) int64 { return size2 - size1 },
		},
		{
			name: "crash after the save: lines sent since are found in Kafka, not counted",
			roll: func(e *checkpoint.Entry, size1, size2 int64) { e.Offset, e.Size = 0, size1 },
			min:  func(size1, size2 int64) int64 { return 0 },
			max:  func(size1, size2 int64) int64 { return 0 },
		},
		{
			name: "crash after the save while behind: only the unsent part, less at most one line's framing",
			roll: func(e *checkpoint.Entry, size1, size2 int64) { e.Offset, e.Size = 0, size2 },
			min:  func(size1, size2 int64) int64 { return size2 - size1 - 96 },
			max:  func(size1, size2 int64) int64 { return size2 - size1 },
		},
		{
			name: "fully read at the save: nothing lost",
			roll: func(e *checkpoint.Entry, size1, size2 int64) {},
			min:  func(size1, size2 int64) int64 { return 0 },
			max:  func(size1, size2 int64) int64 { return 0 },
		},
		{
			name: "checkpoint of an older version (no size): not counted",
			roll: func(e *checkpoint.Entry, size1, size2 int64) { e.Size, e.Namespace = 0, "" },
			min:  func(size1, size2 int64) int64 { return 0 },
			max:  func(size1, size2 int64) int64 { return 0 },
		},
	}
	for i, tc := range cases {
		for _, format := range []loadgen.Format{loadgen.CRI, loadgen.Docker} {
			t.Run(tc.name+"/"+[]string{"cri", "docker"}[format], func(t *testing.T) {
				cl := newCluster(t)
				brokers := cl.ListenAddrs()[0]
				node, _ := loadgen.NewNode(t.TempDir())
				ns := "lost-" + string(rune('a'+i))
				cont, _ := node.AddContainer(ns, "web", "app", format)
				other, _ := node.AddContainer("bystander", "db", "app", format)
				for s := range shipped {
					cont.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, s, 120))
					other.Write(time.Now(), "stdout", loadgen.SeqMessage("bystander", s, 120))
				}
				cfg := testConfig(t, node, brokers)
				r := startCollector(t, cfg)
				consume(t, brokers, 2*shipped, 30*time.Second)
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(cont.Path())
				if err != nil {
					t.Fatal(err)
				}
				size1 := fi.Size()
				st, _ := checkpoint.Open(cfg.CheckpointDir)
				entries, err := st.Load()
				if err != nil {
					t.Fatal(err)
				}
				// While stopped: lines the collector will never see, then kubelet rotates the
				// file and deletes the rotated one (as containerLogMaxFiles does).
				for s := shipped; s < shipped+behind; s++ {
					cont.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, s, 120))
				}
				fi, _ = os.Stat(cont.Path())
				size2 := fi.Size()
				found := false
				for j := range entries {
					e := &entries[j]
					if e.Namespace != ns {
						continue
					}
					if e.Size != size1 || e.Offset != size1 {
						t.Fatalf("saved entry: offset %d size %d, want both %d (the file's size at the stop)", e.Offset, e.Size, size1)
					}
					found = true
					tc.roll(e, size1, size2)
				}
				if !found {
					t.Fatalf("no checkpoint entry with namespace %q: %+v", ns, entries)
				}
				if err := st.Save(entries); err != nil {
					t.Fatal(err)
				}
				rotated, err := cont.RotateRename()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(rotated); err != nil {
					t.Fatal(err)
				}
				cont.Write(time.Now(), "stdout", loadgen.SeqMessage(ns, shipped+behind, 120))

				r2 := startCollector(t, cfg)
				got := consume(t, brokers, 2*shipped+1, 30*time.Second)
				want := map[string]int{"bystander": shipped}
				if dups := checkSequencesOrder(t, filterNS(got, "bystander"), want, nil); dups != 0 {
					t.Errorf("bystander: %d duplicates", dups)
				}
				lost := int64(testutil.ToFloat64(r2.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead)))
				lo, hi := tc.min(size1, size2), tc.max(size1, size2)
				if lost < lo || lost > hi {
					t.Errorf("lost_bytes_total{namespace=%q} = %d, want %d..%d (size at stop %d, at deletion %d)", ns, lost, lo, hi, size1, size2)
				}
				files := testutil.ToFloat64(r2.c.metrics.lostFiles.WithLabelValues(ns, LossDeletedBeforeRead))
				if (lost > 0) != (files == 1) {
					t.Errorf("lost_files_total = %v with %d bytes lost", files, lost)
				}
				if n := testutil.ToFloat64(r2.c.metrics.lostBytes.WithLabelValues("bystander", LossDeletedBeforeRead)); n != 0 {
					t.Errorf("bystander lost %v bytes", n)
				}
				// The line written after the rotation is shipped, once.
				var after int
				for _, c := range got {
					if k, s, ok := loadgen.ParseSeq(c.rec.Message); ok && k == ns && s == shipped+behind {
						after++
					}
				}
				if after != 1 {
					t.Errorf("line written after the rotation shipped %d times, want 1", after)
				}
			})
		}
	}
}

func filterNS(got []consumed, ns string) []consumed {
	var out []consumed
	for _, c := range got {
		if c.rec.Namespace == ns {
			out = append(out, c)
		}
	}
	return out
}

// FuzzMaxFramed checks the bound on a line's bytes in the file against what the runtimes write:
// any message, in CRI and in docker JSON (Go's encoder, as dockerd uses), in 16 KiB pieces, as
// the record carries it (each invalid byte as U+FFFD).
func FuzzMaxFramed(f *testing.F) {
	for _, s := range []string{"", "plain", `{"json":"<&>"}`, "\x00\x01\x1f", "\xff\xfe bad", "\u2028\u2029", strings.Repeat("é", 9000), strings.Repeat("<", 20000)} {
		f.Add(s)
	}
	node, _ := loadgen.NewNode(f.TempDir())
	cri, _ := node.AddContainer("f", "p", "c", loadgen.CRI)
	docker, _ := node.AddContainer("f", "p", "c2", loadgen.Docker)
	ts := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Contains(raw, "\n") {
			return // a newline ends the line in the file
		}
		msg := []rune(raw) // each invalid byte becomes U+FFFD, as in the record
		for name, c := range map[string]*loadgen.Container{"cri": cri, "docker": docker} {
			var inFile int64
			for off := 0; off < len(raw) || off == 0; off += 16 << 10 {
				end := min(off+16<<10, len(raw))
				inFile += int64(len(c.Line(ts, "stderr", end < len(raw), raw[off:end])))
				if end == len(raw) {
					break
				}
			}
			if b := maxFramed(name, string(msg)); b < inFile {
				t.Fatalf("%s: bound %d < %d bytes in the file for %q", name, b, inFile, raw)
			}
		}
	})
}

// TestKilledDuringReadBackKeepsWhatStartSaw: a collector killed while its restart read-back
// runs leaves the checkpoints of that start (each file's size as found, and the files found gone,
// not counted yet), so the next start counts what was lost in between, once.
func TestKilledDuringReadBackKeepsWhatStartSaw(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	gone, _ := node.AddContainer("gone-early", "web", "app", loadgen.CRI)
	grows, _ := node.AddContainer("grows", "web", "app", loadgen.CRI)
	for s := range 100 {
		gone.Write(time.Now(), "stdout", loadgen.SeqMessage("gone-early", s, 120))
		grows.Write(time.Now(), "stdout", loadgen.SeqMessage("grows", s, 120))
	}
	cfg := testConfig(t, node, brokers)
	r := startCollector(t, cfg)
	consume(t, brokers, 200, 30*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st, _ := checkpoint.Open(cfg.CheckpointDir)
	run1, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	size := func(c *loadgen.Container) int64 {
		fi, err := os.Stat(c.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// While stopped: "grows" gets lines; "gone-early" was behind at the stop (as if Kafka had
	// not acknowledged its last 50 lines) and is rotated away and deleted.
	growsFrom := size(grows)
	for s := 100; s < 150; s++ {
		grows.Write(time.Now(), "stdout", loadgen.SeqMessage("grows", s, 120))
		gone.Write(time.Now(), "stdout", loadgen.SeqMessage("gone-early", s, 120))
	}
	goneSize, growsSize := size(gone), size(grows)
	var goneFrom int64
	for i := range run1 {
		if run1[i].Namespace == "gone-early" {
			run1[i].Size, goneFrom = goneSize, run1[i].Offset
		}
	}
	if err := st.Save(run1); err != nil {
		t.Fatal(err)
	}
	rotated, _ := gone.RotateRename()
	os.Remove(rotated)

	// Run 2 waits in its read-back for pipelines that never come; what a kill leaves then is
	// the checkpoint file as it is.
	r2 := startCollectorWith(t, cfg, func(c *Collector) { c.ExpectPipelines() })
	var atKill []byte
	waitFor(t, 30*time.Second, func() bool {
		b, err := os.ReadFile(st.Path())
		if err != nil {
			return false
		}
		var probe struct{ Entries []checkpoint.Entry }
		if json.Unmarshal(b, &probe) != nil {
			return false
		}
		for _, e := range probe.Entries {
			if e.Namespace == "grows" && e.Size == growsSize {
				atKill = b
				return true
			}
		}
		return false
	})
	var saved struct{ Entries []checkpoint.Entry }
	json.Unmarshal(atKill, &saved)
	var sawGone bool
	for _, e := range saved.Entries {
		switch e.Namespace {
		case "gone-early":
			sawGone = sawGone || e.Size == goneSize // (the new live file has its namespace too)
		case "grows":
			if e.Offset != growsFrom {
				t.Errorf("grows saved at %d during the read-back, want its checkpoint %d", e.Offset, growsFrom)
			}
			for _, e1 := range run1 {
				if e1.Namespace == "grows" && !e.Updated.Equal(e1.Updated) {
					t.Errorf("grows saved with time %v, want the resumed checkpoint's %v", e.Updated, e1.Updated)
				}
			}
		}
	}
	if !sawGone {
		t.Errorf("the gone file's entry was not kept in the save during the read-back: %+v", saved.Entries)
	}
	r2.stop()
	if err := os.WriteFile(st.Path(), atKill, 0o600); err != nil { // as the kill left it
		t.Fatal(err)
	}
	// Between the kill and the next start, "grows" is rotated away and deleted too.
	rotated, _ = grows.RotateRename()
	os.Remove(rotated)

	r3 := startCollector(t, cfg)
	waitFor(t, 30*time.Second, func() bool { return r3.c.Ready() == nil })
	for ns, want := range map[string]int64{"gone-early": goneSize - goneFrom, "grows": growsSize - growsFrom} {
		if got := int64(testutil.ToFloat64(r3.c.metrics.lostBytes.WithLabelValues(ns, LossDeletedBeforeRead))); got != want {
			t.Errorf("%s: lost_bytes_total = %d, want %d", ns, got, want)
		}
	}
}

// TestGoneFileCredit: what the restart read-back finds in Kafka of a gone file's device and
// inode moves the counted loss down only by lines that are the file's; whatever else it finds
// (a file of another container that reused the inode, a duplicate, a record of an earlier file
// with that inode) must never make the count exceed the bytes that were not sent. The file: its
// checkpoint at 1000, size 2000 at the save; the previous run sent the 300-byte line at 1000.
func TestGoneFileCredit(t *testing.T) {
	const path = "/var/log/pods/team_web_0000/app/0.log.20260101-000001"
	line := strings.Repeat("x", 300-64) // its CRI framing bound makes it 300 bytes
	web := filemeta.PathMeta{Namespace: "team", Pod: "web", Container: "app"}
	other := filemeta.PathMeta{Namespace: "other", Pod: "db", Container: "app"}
	type rec struct {
		off, split int64
		msg        string
		meta       filemeta.PathMeta
	}
	for _, tc := range []struct {
		name string
		recs []rec
		want int64 // bytes counted
	}{
		{"nothing sent after the save", nil, 1000},
		{"the line sent", []rec{{1000, -1, line, web}}, 700},
		{"the line sent twice (a duplicate)", []rec{{1000, -1, line, web}, {1000, -1, line, web}}, 700},
		{"a split line's two chunks", []rec{{1000, 0, line[:100], web}, {1000, 1, line[100:], web}}, 700 - 64},
		{"a short record of an earlier file at a larger offset", []rec{{1000, -1, line, web}, {1001, -1, "x", web}}, 700},
		{"a record of another container's file with the inode", []rec{{1500, -1, line, other}}, 1000},
		{"behind the checkpoint", []rec{{10, -1, line, web}}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &goneFile{entry: checkpoint.Entry{Path: path, Offset: 1000, Size: 2000, Format: "cri"}}
			for _, r := range tc.recs {
				g.sawLine(r.off, r.split, r.msg, r.meta)
			}
			if got := g.unread(); got != tc.want {
				t.Errorf("unread %d, want %d", got, tc.want)
			}
		})
	}
}

// TestKilledDuringReadBackSavesGrowth: lines written while a start's read-back runs (after the
// save that follows its scan) must be in a checkpoint before the collector can be killed there,
// else a file compressed before the next start loses them without a count (system proof finding
// 1: the read-back took seconds under load and no save happened until it ended).
func TestKilledDuringReadBackSavesGrowth(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, _ := loadgen.NewNode(t.TempDir())
	grows, _ := node.AddContainer("grows", "web", "app", loadgen.CRI)
	seq := 0
	write := func(n int) int64 {
		for range n {
			grows.Write(time.Now(), "stdout", loadgen.SeqMessage("grows", seq, 120))
			seq++
		}
		fi, err := os.Stat(grows.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	write(100)
	cfg := testConfig(t, node, brokers)
	r := startCollector(t, cfg)
	consume(t, brokers, 100, 30*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st, _ := checkpoint.Open(cfg.CheckpointDir)
	run1, err := st.Load()
	if err != nil || len(run1) != 1 {
		t.Fatalf("run 1's checkpoints: %+v, %v", run1, err)
	}
	from := run1[0].Offset
	atStart := write(50) // while stopped

	// savedSize waits until a save holds the file at size, and returns the file as saved.
	savedSize := func(size int64, what string) []byte {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(st.Path())
			var probe struct{ Entries []checkpoint.Entry }
			if err == nil && json.Unmarshal(b, &probe) == nil {
				for _, e := range probe.Entries {
					if e.Namespace == "grows" && e.Size == size {
						if e.Offset != from {
							t.Fatalf("saved at offset %d during the read-back, want its checkpoint %d", e.Offset, from)
						}
						return b
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no checkpoint save with the size %s (%d) within 10s", what, size)
		return nil
	}
	// Run 2 waits in its read-back for pipelines that never come.
	r2 := startCollectorWith(t, cfg, func(c *Collector) { c.ExpectPipelines() })
	savedSize(atStart, "found by the start's scan")
	grown := write(50) // after the start's save, during the read-back
	atKill := savedSize(grown, "reached during the read-back")
	r2.stop()
	if err := os.WriteFile(st.Path(), atKill, 0o600); err != nil { // as a kill now leaves it
		t.Fatal(err)
	}
	rotated, _ := grows.RotateRename()
	os.Remove(rotated) // compressed before the next start

	r3 := startCollector(t, cfg)
	waitFor(t, 30*time.Second, func() bool { return r3.c.Ready() == nil })
	if got := int64(testutil.ToFloat64(r3.c.metrics.lostBytes.WithLabelValues("grows", LossDeletedBeforeRead))); got != grown-from {
		t.Errorf("lost_bytes_total = %d, want %d (every byte unread when run 2 was killed)", got, grown-from)
	}
}
