package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/loadgen"
)

var mlLineID = regexp.MustCompile(`L\d+`)

// TestMultilineHeldSurvivesSIGKILL runs the collector binary with a multiline pipeline from
// --pipelines-dir and kills it with SIGKILL, five times, each while a group (a Java stack
// trace) is held for joining: the checkpoint is then exactly at the held group's first line.
// Between the kill and the restart the held group grows by more continuation lines. After a
// last clean stop (which flushes the group still held), Kafka holds every group as exactly
// one record with exactly its lines in order: a line held at a kill is neither lost nor sent
// twice, and the groups that reached Kafka before the kill are not sent again
// (docs/pipelines.md, multiline and restarts).
func TestMultilineHeldSurvivesSIGKILL(t *testing.T) {
	bin := collectortest.Binary(t)
	brokers := collectortest.Broker(t)
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := node.AddContainer("ml", "indexer", "java", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	pipes, ckDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(pipes, "java.yaml"), []byte(`apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  namespace: ml
  name: java
spec:
  steps:
  - multiline:
      start: '^\S'
      maxLines: 1000
      flushTimeout: 1m
`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"collect",
		"--log-dir", node.LogDir, "--pods-dir", node.PodsDir, "--checkpoint-dir", ckDir,
		"--brokers", brokers, "--node-name", "ml-node", "--metrics-addr", "", "--kubernetes=false",
		"--pipelines-dir", pipes, "--pipelines-interval", "50ms",
		"--compression", "none", "--poll-interval", "20ms", "--scan-interval", "100ms", "--checkpoint-interval", "50ms"}
	adm := collectortest.Admin(t, brokers)
	tp := collectortest.Topic("ml")

	var groups [][]string // each group's line IDs, in order
	id := 0
	write := func(msg string) string {
		t.Helper()
		id++
		l := fmt.Sprintf("L%d", id)
		if err := c.Write(time.Now(), "stdout", msg+" "+l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	start := func() { groups = append(groups, []string{write("java.lang.IllegalStateException:")}) }
	cont := func(n int) {
		g := &groups[len(groups)-1]
		for range n {
			*g = append(*g, write("\tat com.shop.Shard.write"))
		}
	}
	size := func() int64 {
		fi, err := os.Stat(c.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	store, err := checkpoint.Open(ckDir)
	if err != nil {
		t.Fatal(err)
	}
	checkpointAt := func() int64 {
		es, err := store.Load()
		if err != nil || len(es) != 1 {
			return -1
		}
		return es[0].Offset
	}
	// records is what the topic holds (-1 before the collector created it).
	records := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := collectortest.EndOffsets(ctx, adm, tp)
		if err != nil {
			return -1
		}
		n := int64(0)
		for _, o := range ends {
			n += o
		}
		return n
	}
	waitUntil := func(what string, p *collectortest.Process, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("%s: timed out (collector exited: %v)\n%s", what, p.Exited(), p.Stderr.String())
			}
		}
	}

	p := collectortest.StartBinary(t, bin, nil, args...)
	for kill := range 5 {
		for range 2 + kill%2 {
			start()
			cont(1 + (id % 4))
		}
		// The last group is held: it ends only with the next group's start.
		heldAt := size()
		start()
		cont(2)
		emitted := len(groups) - 1
		waitUntil(fmt.Sprintf("kill %d: %d groups in Kafka, the checkpoint at the held group (%d)", kill, emitted, heldAt), p, func() bool {
			return records() == int64(emitted) && checkpointAt() == heldAt
		})
		p.Kill()
		cont(3) // the held group goes on while no collector runs
		p = collectortest.StartBinary(t, bin, nil, args...)
	}
	start() // ends the held group; itself held until the clean stop flushes it
	waitUntil("every group but the last in Kafka", p, func() bool {
		return records() == int64(len(groups)-1)
	})
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, p.Stderr.String())
	}

	msgs := collectortest.ReadAll(t, brokers, tp, len(groups), 30*time.Second)
	if n := records(); n != int64(len(groups)) {
		t.Errorf("%d records in %s, want one per group (%d)", n, tp, len(groups))
	}
	var got [][]string
	for _, m := range msgs {
		r, err := record.Decode(m.Value)
		if err != nil {
			t.Fatalf("record %s: %v", m.Value, err)
		}
		got = append(got, mlLineID.FindAllString(r.Message, -1))
	}
	if !slices.EqualFunc(got, groups, slices.Equal[[]string]) {
		var g, w []string
		for _, x := range got {
			g = append(g, strings.Join(x, ","))
		}
		for _, x := range groups {
			w = append(w, strings.Join(x, ","))
		}
		t.Errorf("records:\n%s\nwant the groups:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}
