package assemble

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/router/logline"
)

type out struct {
	Start, End int64
	Stream     string
	Msg        string
	Split      bool
	Index      int
	Last       bool
	ParseError bool
	Ckpt       bool
	State      State
}

func collect(cfg Config, data []byte, off int64, st State, chunk func() int, final bool) ([]out, int64) {
	var outs []out
	var a *Assembler
	a = New(cfg, off, st)
	emit := func(o *Output) {
		outs = append(outs, out{o.Start, o.End, o.Stream, string(o.Msg), o.Split, o.Index, o.Last, o.ParseError != "", o.Checkpointable, a.State()})
	}
	// Feed like the collector does: a window that grows by chunk() bytes each read.
	begin := int(off)
	end := begin
	for end < len(data) {
		end = min(len(data), end+chunk())
		n := a.Feed(data[begin:end], false, emit)
		begin += n
	}
	if final {
		begin += a.Feed(data[begin:], true, emit)
		a.Flush(emit)
	}
	return outs, int64(begin)
}

var testNow = func() []byte { return []byte("2026-11-21T00:00:00Z") }

func criCfg(max int) Config {
	return Config{Format: logline.FormatCRI, MaxLine: max, Now: testNow}
}

func TestAssembleCRI(t *testing.T) {
	ts := "2026-11-21T10:00:00.000000001Z"
	l := func(stream, tag, msg string) string { return ts + " " + stream + " " + tag + " " + msg + "\n" }
	n := func(lines ...string) int64 { return int64(len(strings.Join(lines, ""))) }
	long := strings.Repeat("a", 30)
	tests := []struct {
		name  string
		max   int
		input []string
		want  []out
	}{
		{
			name:  "full lines",
			max:   100,
			input: []string{l("stdout", "F", "one"), l("stderr", "F", "two")},
			want: []out{
				{Start: 0, End: n(l("stdout", "F", "one")), Stream: "stdout", Msg: "one", Ckpt: true},
				{Start: n(l("stdout", "F", "one")), End: n(l("stdout", "F", "one"), l("stderr", "F", "two")), Stream: "stderr", Msg: "two", Ckpt: true},
			},
		},
		{
			name:  "partials joined",
			max:   100,
			input: []string{l("stdout", "P", "ab"), l("stdout", "P", "cd"), l("stdout", "F", "ef")},
			want:  []out{{Start: 0, End: 3 * n(l("stdout", "P", "ab")), Stream: "stdout", Msg: "abcdef", Ckpt: true}},
		},
		{
			name:  "interleaved streams keep their parts apart",
			max:   100,
			input: []string{l("stdout", "P", "ab"), l("stderr", "F", "err"), l("stdout", "F", "cd")},
			want: []out{
				{Start: n(l("stdout", "P", "ab")), End: n(l("stdout", "P", "ab"), l("stderr", "F", "err")), Stream: "stderr", Msg: "err", Ckpt: false},
				{Start: 0, End: n(l("stdout", "P", "ab"), l("stderr", "F", "err"), l("stdout", "F", "cd")), Stream: "stdout", Msg: "abcd", Ckpt: true},
			},
		},
		{
			name:  "malformed shipped raw",
			max:   100,
			input: []string{"garbage\n", l("stdout", "F", "ok")},
			want: []out{
				{Start: 0, End: 8, Msg: "garbage", ParseError: true, Ckpt: true},
				{Start: 8, End: 8 + n(l("stdout", "F", "ok")), Stream: "stdout", Msg: "ok", Ckpt: true},
			},
		},
		{
			name:  "partials over the maximum become ordered chunks",
			max:   70,
			input: []string{l("stdout", "P", long), l("stdout", "P", long), l("stdout", "F", long)},
			want: []out{
				{Start: 0, End: 2 * n(l("stdout", "P", long)), Stream: "stdout", Msg: long + long, Split: true, Index: 0, Ckpt: false},
				{Start: 2 * n(l("stdout", "P", long)), End: 3 * n(l("stdout", "P", long)), Stream: "stdout", Msg: long, Split: true, Index: 1, Last: true, Ckpt: true},
			},
		},
		{
			name:  "empty message",
			max:   100,
			input: []string{ts + " stdout F\n"},
			want:  []out{{Start: 0, End: 40, Stream: "stdout", Msg: "", Ckpt: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := collect(criCfg(tt.max), []byte(strings.Join(tt.input, "")), 0, State{}, func() int { return 7 }, true)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d outputs %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				g.State = State{}
				if g != w {
					t.Errorf("output %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func TestAssembleOversizedPhysicalLine(t *testing.T) {
	ts := "2026-11-21T10:00:00Z"
	msg := strings.Repeat("x", 250)
	input := ts + " stdout F " + msg + "\n" + ts + " stdout F next\n"
	got, _ := collect(criCfg(100), []byte(input), 0, State{}, func() int { return 64 }, true)
	var joined string
	for i, o := range got[:len(got)-1] {
		if !o.Split || o.Index != i {
			t.Fatalf("chunk %d: %+v", i, o)
		}
		if len(o.Msg) > 100 {
			t.Fatalf("chunk %d longer than max: %d", i, len(o.Msg))
		}
		joined += o.Msg
	}
	if joined != msg || !got[len(got)-2].Last {
		t.Fatalf("chunks do not rebuild the line: %d bytes, last=%v", len(joined), got[len(got)-2].Last)
	}
	if last := got[len(got)-1]; last.Msg != "next" || last.Split {
		t.Fatalf("line after the oversized one: %+v", last)
	}
}

func TestAssembleUnterminatedNeverEndingLine(t *testing.T) {
	// A line that never ends (no newline) still flows in MaxLine chunks without final.
	ts := "2026-11-21T10:00:00Z"
	input := ts + " stdout F " + strings.Repeat("y", 1000)
	got, consumed := collect(criCfg(100), []byte(input), 0, State{}, func() int { return 50 }, false)
	if len(got) < 8 || consumed < 900 {
		t.Fatalf("stalled: %d outputs, %d consumed", len(got), consumed)
	}
}

func TestAssembleDocker(t *testing.T) {
	cfg := Config{Format: logline.FormatDocker, MaxLine: 1000, Now: testNow}
	input := `{"log":"part1 ","stream":"stdout","time":"2026-11-21T10:00:00Z"}` + "\n" +
		`{"log":"part2\n","stream":"stdout","time":"2026-11-21T10:00:00Z"}` + "\n" +
		`{"log":"oops` + "\n" +
		`{"log":"e\n","stream":"stderr","time":"2026-11-21T10:00:01Z"}` + "\n"
	got, _ := collect(cfg, []byte(input), 0, State{}, func() int { return 13 }, true)
	if len(got) != 3 || got[0].Msg != "part1 part2" || !got[1].ParseError || got[1].Msg != `{"log":"oops` || got[2].Msg != "e" || got[2].Stream != "stderr" {
		t.Fatalf("%+v", got)
	}
}

// genCRI writes a random CRI file: logical lines split into P parts, streams interleaved, some
// malformed lines and some physical lines longer than max.
func genCRI(r *rand.Rand, lines, max int) []byte {
	var b bytes.Buffer
	ts := "2026-11-21T10:00:00.123456789Z"
	type pend struct{ parts []string }
	var open [2]*pend
	seq := 0
	for seq < lines || open[0] != nil || open[1] != nil {
		s := r.IntN(2)
		if open[s] == nil && seq < lines {
			msg := fmt.Sprintf("%s-line-%d-%s", []string{"out", "err"}[s], seq, strings.Repeat("z", r.IntN(3)*r.IntN(max)))
			seq++
			var parts []string
			for len(msg) > 0 {
				n := min(len(msg), 1+r.IntN(max))
				parts = append(parts, msg[:n])
				msg = msg[n:]
			}
			open[s] = &pend{parts}
		}
		if open[s] == nil {
			continue
		}
		p := open[s]
		tag := "P"
		if len(p.parts) == 1 {
			tag = "F"
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", ts, []string{"stdout", "stderr"}[s], tag, p.parts[0])
		p.parts = p.parts[1:]
		if len(p.parts) == 0 {
			open[s] = nil
		}
		if r.IntN(40) == 0 {
			fmt.Fprintf(&b, "malformed %d\n", r.IntN(1000))
		}
	}
	return b.Bytes()
}

// TestResumeFromEveryCheckpoint is the property the collector's durability rests on: restoring
// at any checkpointable output's (End, State) and reading on yields exactly the outputs that
// followed it: nothing lost, nothing repeated.
func TestResumeFromEveryCheckpoint(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		max := 100 + r.IntN(100)
		data := genCRI(r, 60, max)
		chunk := func() int { return 1 + r.IntN(3*max) }
		full, _ := collect(criCfg(max), data, 0, State{}, chunk, true)
		checkRebuild(t, seed, full)
		for k, o := range full {
			if !o.Ckpt {
				continue
			}
			rest, _ := collect(criCfg(max), data, o.End, o.State, chunk, true)
			want := full[k+1:]
			if len(rest) != len(want) {
				t.Fatalf("seed %d: resume after output %d (end %d, state %+v): %d outputs, want %d", seed, k, o.End, o.State, len(rest), len(want))
			}
			for i := range rest {
				g, w := rest[i], want[i]
				g.State, w.State = State{}, State{}
				if g != w {
					t.Fatalf("seed %d: resume after %d: output %d\n got %+v\nwant %+v", seed, k, i, g, w)
				}
			}
		}
	}
}

// checkRebuild checks that the outputs rebuild every generated logical line in order per stream.
func checkRebuild(t *testing.T, seed uint64, outs []out) {
	t.Helper()
	var cur [2]string
	next := [2]int{}
	for _, o := range outs {
		if o.ParseError {
			if !strings.HasPrefix(o.Msg, "malformed ") {
				t.Fatalf("seed %d: unexpected raw output %+v", seed, o)
			}
			continue
		}
		s := streamIndex(o.Stream)
		if o.Split && o.Index == 0 && cur[s] != "" {
			t.Fatalf("seed %d: chunk 0 while a line is open", seed)
		}
		cur[s] += o.Msg
		if o.Split && !o.Last {
			continue
		}
		prefix := fmt.Sprintf("%s-line-", []string{"out", "err"}[s])
		if !strings.HasPrefix(cur[s], prefix) {
			t.Fatalf("seed %d: rebuilt line %q", seed, cur[s])
		}
		var n int
		fmt.Sscanf(cur[s][len(prefix):], "%d", &n)
		if n < next[s] {
			t.Fatalf("seed %d: stream %d line %d after %d", seed, s, n, next[s])
		}
		next[s] = n + 1
		cur[s] = ""
	}
}

// FuzzAssembleResume fuzzes arbitrary bytes through the assembler: it never panics, never
// consumes more than it is given, and resuming at a checkpoint repeats nothing.
func FuzzAssembleResume(f *testing.F) {
	f.Add([]byte("2026-11-21T10:00:00Z stdout P ab\n2026-11-21T10:00:00Z stdout F cd\n"), uint8(10), false)
	f.Add([]byte(`{"log":"a","stream":"stdout","time":"2026-11-21T10:00:00Z"}`+"\n"), uint8(30), true)
	f.Add([]byte("x\n\n\n2026-11-21T10:00:00Z stderr F "+strings.Repeat("q", 300)), uint8(16), false)
	f.Fuzz(func(t *testing.T, data []byte, max uint8, docker bool) {
		cfg := criCfg(int(max%200) + 8)
		if docker {
			cfg.Format = logline.FormatDocker
		}
		full, consumed := collect(cfg, data, 0, State{}, func() int { return 17 }, true)
		if consumed != int64(len(data)) {
			t.Fatalf("consumed %d of %d", consumed, len(data))
		}
		for k, o := range full {
			if o.End > int64(len(data)) || o.Start > o.End {
				t.Fatalf("output %d range [%d,%d) of %d", k, o.Start, o.End, len(data))
			}
			if len(o.Msg) > cfg.MaxLine {
				t.Fatalf("output %d: %d bytes > max %d", k, len(o.Msg), cfg.MaxLine)
			}
			if !o.Ckpt {
				continue
			}
			rest, _ := collect(cfg, data, o.End, o.State, func() int { return 17 }, true)
			if len(rest) != len(full)-k-1 {
				t.Fatalf("resume after %d: %d outputs, want %d", k, len(rest), len(full)-k-1)
			}
		}
	})
}

// BenchmarkFeedCRI measures framing, parsing and joining per line (no encoding, no Kafka).
func BenchmarkFeedCRI(b *testing.B) {
	msg := `{"level":"info","ts":"2026-11-21T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12,"pad":"xxxxxxxx"}`
	line := "2026-11-21T10:00:00.123456789Z stdout F " + msg + "\n"
	data := []byte(strings.Repeat(line, 400))
	a := New(criCfg(1<<20), 0, State{})
	emit := func(*Output) {}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		a.Restore(0, State{})
		a.Feed(data, false, emit)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*400), "ns/line")
}

// TestHeldAndCut: what an assembler keeps between reads is its pending parts, Held reports
// them, and neither a finished long line nor a cut leaves a large buffer behind.
func TestHeldAndCut(t *testing.T) {
	ts := "2026-11-21T10:00:00.000000001Z"
	part := strings.Repeat("p", 16<<10)
	var outs []Output
	var msgs []string
	a := New(criCfg(1<<20), 0, State{})
	emit := func(o *Output) { outs = append(outs, *o); msgs = append(msgs, string(o.Msg)) }
	feed := func(s string) {
		if n := a.Feed([]byte(s), false, emit); n != len(s) {
			t.Fatalf("consumed %d of %d", n, len(s))
		}
	}
	for range 5 {
		feed(ts + " stdout P " + part + "\n")
	}
	feed(ts + " stderr P " + part + "\n")
	if got := a.Held(); got < 6*len(part) {
		t.Fatalf("Held %d with %d bytes pending", got, 6*len(part))
	}
	if len(outs) != 0 {
		t.Fatalf("%d outputs before any line ended", len(outs))
	}
	a.Cut(emit)
	if a.Held() != 0 || a.Pending() {
		t.Fatalf("after Cut: Held %d, pending %v", a.Held(), a.Pending())
	}
	if len(outs) != 2 || msgs[0] != strings.Repeat(part, 5) || msgs[1] != part {
		t.Fatalf("cut outputs: %d", len(outs))
	}
	for i, o := range outs {
		if !o.Split || o.Index != 0 || o.Last {
			t.Fatalf("cut output %d: split %v index %d last %v", i, o.Split, o.Index, o.Last)
		}
	}
	if !outs[1].Checkpointable || outs[1].End != a.Pos() || outs[0].Checkpointable {
		t.Fatalf("checkpointable: %v %v, end %d, pos %d", outs[0].Checkpointable, outs[1].Checkpointable, outs[1].End, a.Pos())
	}
	st := a.State()
	if !st.Streams[0].InLine || st.Streams[0].Index != 1 || !st.Streams[1].InLine || st.Streams[1].Index != 1 {
		t.Fatalf("state after cut: %+v", st)
	}
	feed(ts + " stdout F end\n")
	feed(ts + " stderr F " + part + part + "\n")
	if len(outs) != 4 || msgs[2] != "end" || outs[2].Index != 1 || !outs[2].Last || msgs[3] != part+part || !outs[3].Last {
		t.Fatalf("line ends: %d outputs", len(outs))
	}
	// A whole long line is emitted from the read buffer; a joined one lets its buffer go.
	feed(ts + " stdout F " + strings.Repeat("w", 300<<10) + "\n")
	feed(ts + " stdout P " + part + "\n" + ts + " stdout F " + part + "\n")
	if a.Held() != 0 {
		t.Fatalf("Held %d at a line boundary", a.Held())
	}
	if a.out.Msg != nil || a.out.TS != nil {
		t.Fatal("the assembler keeps a reference into the last read buffer")
	}
	for s := range a.acc {
		if cap(a.acc[s]) > keepCap {
			t.Fatalf("stream %d keeps a %d-byte buffer between lines", s, cap(a.acc[s]))
		}
	}
}

// TestCutAnywhere: cutting after any read (as the collector does when its budget is full) still
// rebuilds every line, in order, with consecutive chunk indexes, and resuming at any checkpoint
// repeats nothing and loses nothing.
func TestCutAnywhere(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		r := rand.New(rand.NewPCG(seed, seed^0xc0ffee))
		max := 100 + r.IntN(100)
		data := genCRI(r, 60, max)
		chunk := func() int { return 1 + r.IntN(3*max) }
		cut := func() bool { return r.IntN(3) == 0 }
		full, _ := collectCut(criCfg(max), data, 0, State{}, chunk, cut)
		checkRebuild(t, seed, full)
		checkIndexes(t, seed, full)
		for k, o := range full {
			if !o.Ckpt {
				continue
			}
			rest, _ := collectCut(criCfg(max), data, o.End, o.State, chunk, cut)
			all := append(append([]out(nil), full[:k+1]...), rest...)
			checkRebuild(t, seed, all)
			checkIndexes(t, seed, all)
			if got, want := perStream(all), perStream(full); got != want {
				t.Fatalf("seed %d: resume after output %d changed the bytes shipped:\n got %q\nwant %q", seed, k, got, want)
			}
		}
	}
}

// collectCut is collect (final) with a Cut after each read that cut says.
func collectCut(cfg Config, data []byte, off int64, st State, chunk func() int, cut func() bool) ([]out, int64) {
	var outs []out
	var a *Assembler
	a = New(cfg, off, st)
	emit := func(o *Output) {
		outs = append(outs, out{o.Start, o.End, o.Stream, string(o.Msg), o.Split, o.Index, o.Last, o.ParseError != "", o.Checkpointable, a.State()})
	}
	begin, end := int(off), int(off)
	for end < len(data) {
		end = min(len(data), end+chunk())
		begin += a.Feed(data[begin:end], false, emit)
		if cut() {
			a.Cut(emit)
		}
	}
	begin += a.Feed(data[begin:], true, emit)
	a.Flush(emit)
	return outs, int64(begin)
}

// checkIndexes checks that the chunks of each stream's split lines are numbered 0, 1, 2, ...
func checkIndexes(t *testing.T, seed uint64, outs []out) {
	t.Helper()
	next := [2]int{}
	for _, o := range outs {
		if o.ParseError {
			continue
		}
		s := streamIndex(o.Stream)
		if !o.Split {
			if next[s] != 0 {
				t.Fatalf("seed %d: unsplit output while chunk %d of a line is due", seed, next[s])
			}
			continue
		}
		if o.Index != next[s] {
			t.Fatalf("seed %d: chunk %d, want %d", seed, o.Index, next[s])
		}
		next[s]++
		if o.Last {
			next[s] = 0
		}
	}
}

// perStream concatenates the messages of each stream (raw lines apart).
func perStream(outs []out) [3]string {
	var b [3]strings.Builder
	for _, o := range outs {
		i := 2
		if !o.ParseError {
			i = streamIndex(o.Stream)
		}
		b[i].WriteString(o.Msg)
	}
	return [3]string{b[0].String(), b[1].String(), b[2].String()}
}

// TestFlushEndsEmittedLine: a line whose chunks were all emitted before its end (Cut when the
// budget is full, or parts that fill MaxLine exactly) and whose file then ends gets an empty
// last chunk at Flush: without it no chunk says last, and the line never ends for its readers.
func TestFlushEndsEmittedLine(t *testing.T) {
	ts := "2026-11-21T10:00:00.000000001Z"
	p50 := strings.Repeat("x", 50)
	l1 := ts + " stdout P abc\n"
	l2 := ts + " stderr P " + p50 + "\n"
	n1, n2 := int64(len(l1)), int64(len(l2))
	for _, tc := range []struct {
		name string
		data string
		cut  bool
		want []out // Start, End, Stream, Msg, Split, Index, Last
	}{
		{"cut then rotated away", l1, true,
			[]out{{Start: 0, End: n1, Stream: "stdout", Msg: "abc", Split: true}, {Start: n1, End: n1, Stream: "stdout", Split: true, Index: 1, Last: true}}},
		{"parts fill MaxLine exactly", l2 + l2, false,
			[]out{{Start: 0, End: 2 * n2, Stream: "stderr", Msg: p50 + p50, Split: true}, {Start: 2 * n2, End: 2 * n2, Stream: "stderr", Split: true, Index: 1, Last: true}}},
		{"cut on both streams", l1 + l2, true,
			[]out{{Start: 0, End: n1, Stream: "stdout", Msg: "abc", Split: true}, {Start: n1, End: n1 + n2, Stream: "stderr", Msg: p50, Split: true},
				{Start: n1 + n2, End: n1 + n2, Stream: "stdout", Split: true, Index: 1, Last: true}, {Start: n1 + n2, End: n1 + n2, Stream: "stderr", Split: true, Index: 1, Last: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(criCfg(100), 0, State{})
			var got []out
			emit := func(o *Output) {
				got = append(got, out{Start: o.Start, End: o.End, Stream: o.Stream, Msg: string(o.Msg), Split: o.Split, Index: o.Index, Last: o.Last})
			}
			if n := a.Feed([]byte(tc.data), false, emit); n != len(tc.data) {
				t.Fatalf("consumed %d of %d", n, len(tc.data))
			}
			if tc.cut {
				a.Cut(emit)
			}
			a.Flush(emit)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("outputs\n got %+v\nwant %+v", got, tc.want)
			}
			if !a.State().IsZero() || a.Pending() {
				t.Errorf("after Flush: state %+v, pending %v", a.State(), a.Pending())
			}
		})
	}
}

// TestAssembleRaw: node files (FormatRaw) have no framing: every line is the message, with no
// parse error, whatever it looks like; a line longer than MaxLine is cut into ordered split
// chunks (no parse error either), resumable from every checkpoint.
func TestAssembleRaw(t *testing.T) {
	cfg := Config{Format: logline.FormatRaw, MaxLine: 100, Now: testNow}
	long := strings.Repeat("z", 250)
	lines := []string{"plain", `{"kind":"Event"}`, "2026-11-21T10:00:00Z stdout F looks like CRI", "", long, "after"}
	input := strings.Join(lines, "\n") + "\n" + "unterminated"
	for _, chunk := range []int{1, 7, 64, 4096} {
		got, consumed := collect(cfg, []byte(input), 0, State{}, func() int { return chunk }, true)
		var msgs []string
		var joined string
		for _, o := range got {
			if o.ParseError {
				t.Fatalf("chunk %d: raw line with a parse error: %+v", chunk, o)
			}
			if o.Split {
				joined += o.Msg
				if o.Last {
					msgs = append(msgs, joined)
					joined = ""
				}
				continue
			}
			msgs = append(msgs, o.Msg)
		}
		want := append(append([]string(nil), lines...), "unterminated")
		if fmt.Sprint(msgs) != fmt.Sprint(want) || consumed != int64(len(input)) {
			t.Fatalf("chunk %d: %q (consumed %d), want %q", chunk, msgs, consumed, want)
		}
		// Resuming from each checkpoint yields the rest exactly.
		for i, o := range got {
			if !o.Ckpt {
				continue
			}
			rest, _ := collect(cfg, []byte(input), o.End, o.State, func() int { return chunk }, true)
			same := func(a, b out) bool { a.State, b.State = State{}, State{}; return a == b }
			if len(rest) != len(got)-i-1 || (len(rest) > 0 && !same(rest[0], got[i+1])) {
				t.Fatalf("chunk %d: resumed at %d: %d outputs, want %d", chunk, o.End, len(rest), len(got)-i-1)
			}
		}
	}
}
