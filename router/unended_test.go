package router

import (
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/router/loadgen"
)

// TestRotatedAwayEndsEmittedLine: a line whose parts fill --max-line-bytes exactly (its chunk
// is emitted, its end not seen) in a file that is then rotated away gets an empty last chunk
// when the file is let go; before, no chunk said last and readers joining chunks waited for ever.
func TestRotatedAwayEndsEmittedLine(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := node.AddContainer("unended", "pod", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, node, brokers)
	cfg.MaxLineBytes = 1024
	startCollector(t, cfg)
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	part := strings.Repeat("p", 512)
	for range 2 {
		if err := c.WriteRaw(c.Line(ts, "stdout", true, part)); err != nil {
			t.Fatal(err)
		}
	}
	got := consume(t, brokers, 1, 30*time.Second)
	if len(got) != 1 || got[0].rec.Split == nil || got[0].rec.Split.Last || got[0].rec.Message != part+part {
		t.Fatalf("before the rotation: %d records, want the first chunk", len(got))
	}
	if _, err := c.RotateRename(); err != nil {
		t.Fatal(err)
	}
	got = consume(t, brokers, 2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("after the rotation: %d records, want 2 (the line's empty last chunk)", len(got))
	}
	end := got[1].rec
	if end.Split == nil || end.Split.Index != 1 || !end.Split.Last || end.Message != "" || end.Offset != got[0].rec.Offset+int64(2*len(c.Line(ts, "stdout", true, part))) {
		t.Errorf("last chunk: %s", got[1].value)
	}
}
