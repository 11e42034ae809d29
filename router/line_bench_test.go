package router

import (
	"fmt"
	"hash/maphash"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/loadgen"
)

// BenchmarkLineStep measures the line step alone (no reading, no Kafka) on the bench
// workload's lines, without pipelines and with the typical chain (json, one regex, one CEL
// keep, one redact): what a pipeline adds per line in the collector.
func BenchmarkLineStep(b *testing.B) {
	typical := v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{
		{JSON: &v1alpha1.JSONStep{}},
		{Regex: &v1alpha1.RegexStep{Pattern: `"path":"/api/(?P<api>v[0-9]+)/`}},
		{Keep: &v1alpha1.ConditionStep{If: `record.fields.level != "debug"`}},
		{Redact: &v1alpha1.RedactStep{Fields: []string{"src"}, Hash: true}},
	}}
	for _, tc := range []struct {
		name string
		set  bool
	}{{"none", false}, {"typical", true}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &Collector{msgSeed: maphash.MakeSeed(), metrics: newMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 })}
			c.nss, c.desired = map[string]*nsState{}, map[string]*pipeline.Set{}
			c.now = time.Now
			snap := filemeta.SnapshotFor(filemeta.PathMeta{Namespace: "bench-0", Pod: "pod-0", Container: "app", File: "/var/log/pods/x/app/0.log"}, filemeta.Origin{Node: "node"}, nil, false)
			f := &file{c: c, lineMax: 1 << 20}
			f.view = c.newView(snap)
			if tc.set {
				c.namespace("bench-0").set.Store(compileSet(b, "bench-0", nil, map[string]v1alpha1.LogPipelineSpec{"typical": typical}))
			}
			msgs := make([][]byte, 400)
			for i := range msgs {
				msgs[i] = []byte(loadgen.SeqMessage("bench-0/pod-0", i, 160))
			}
			ts := []byte("2026-12-01T10:00:00.123456789Z")
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				ch := &chunk{f: f, view: f.view, pol: f.view.policy(c), set: f.view.nss.set.Load(), recs: make([]kgo.Record, 0, len(msgs)), keys: make([]outKey, 0, len(msgs)), slab: make([]byte, 0, 400*600)}
				ch.pemit = func(r *pipeline.Record) { f.emitPiped(ch, r) }
				f.useSet(ch, ch.set)
				for i, m := range msgs {
					o := assemble.Output{Start: int64(i) * 300, End: int64(i+1) * 300, TS: ts, Stream: "stdout", Msg: m, Checkpointable: true}
					f.line(ch, &o, assemble.State{})
				}
				n += len(msgs)
				if len(ch.recs) != len(msgs) {
					b.Fatal(fmt.Sprint(len(ch.recs)))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/line")
		})
	}
}
