package archiver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/query"
	"github.com/logrouter/logrouter/internal/record"
)

// TestArchiveSuffixTopics: with the default --topics-regex the archiver finds a namespace's
// suffix topics, including one created while it runs, and archives them into the namespace's
// partition directories under their own object names; plain topics keep their keys. Pipeline
// output (fields, fields_error, lines) reaches the Parquet columns and NDJSON lines, and the
// query engine reads one topic of a namespace or all of them.
func TestArchiveSuffixTopics(t *testing.T) {
	for _, format := range []string{"parquet", "ndjson"} {
		t.Run(format, func(t *testing.T) {
			kc, cl := newCluster(t, 1, "logs.team-a")
			dir := t.TempDir()
			bucket := "file://" + dir
			ctx := context.Background()
			cfg := testConfig(t, kc.ListenAddrs(), bucket)
			cfg.Format = format
			a, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel) // on an early failure; cancel is idempotent
			errc := make(chan error, 1)
			go func() { errc <- a.Run(runCtx) }()
			base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
			var rs []*kgo.Record
			for i := 0; i < 30; i++ {
				l := archivetest.Line{Namespace: "team-a", Pod: "web", Container: "app", Time: base.Add(time.Duration(i) * time.Second),
					Message: archivetest.Seq("team-a", i), KafkaTime: base.Add(time.Duration(i) * time.Second), Partition: 0}
				switch i % 3 {
				case 1: // a parsed line routed to the audit topic
					l.Suffix, l.Fields = "audit", []byte(fmt.Sprintf(`{"level":"info","user":{"id":%d}}`, i))
				case 2: // a failed parse and a multiline join, on the debug topic
					l.Suffix, l.FieldsError, l.Lines = "debug", "steps[0].json: invalid character 'x'", 2
				}
				rs = append(rs, archivetest.Record(l))
			}
			// logs.team-a.audit and logs.team-a.debug are created while the archiver runs, as the
			// controller would: its topic refresh finds them.
			if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "logs.team-a.audit", "logs.team-a.debug"); err != nil {
				t.Fatal(err)
			}
			if err := archivetest.Produce(ctx, cl, rs); err != nil {
				t.Fatal(err)
			}
			want := map[archivetest.Pos]int64{}
			for _, r := range rs {
				p := archivetest.Pos{Topic: r.Topic}
				want[p] = max(want[p], r.Offset+1)
			}
			if len(want) != 3 {
				t.Fatalf("topics %v", want)
			}
			b, err := blob.OpenBucket(ctx, bucket)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			waitArchived(t, b, "", want, 30*time.Second)
			// A range is claimed before it is published: stop the archiver (which finishes
			// publishing) before reading the objects.
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			audit, err := archivetest.Read(ctx, b, "")
			if err != nil || len(audit.Problems) > 0 || len(audit.Count) != len(rs) {
				t.Fatalf("archive: %d of %d records, problems %v, %v", len(audit.Count), len(rs), audit.Problems, err)
			}
			ext := map[string]string{"parquet": "parquet", "ndjson": "ndjson.zst"}[format]
			topics := map[string]bool{}
			for _, o := range audit.Objects {
				key := o.Key("")
				wantPrefix := "namespace=team-a/dt=2026-11-21/hour=10/" + o.Topic + "+0+"
				if !strings.HasPrefix(key, wantPrefix) || !strings.HasSuffix(key, "."+ext) {
					t.Errorf("object %s: want %s...%s", key, wantPrefix, ext)
				}
				topics[o.Topic] = true
			}
			if !topics["logs.team-a"] || !topics["logs.team-a.audit"] || !topics["logs.team-a.debug"] || len(topics) != 3 {
				t.Errorf("objects of topics %v", topics)
			}
			for _, r := range rs {
				got := audit.Rows[archivetest.Pos{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}]
				rec, _ := record.Decode(r.Value)
				if got.KafkaTopic != r.Topic || got.Namespace != "team-a" || got.FieldsError != rec.FieldsError || int(got.Lines) != rec.Lines ||
					(got.Fields != "") != (rec.Fields != nil) {
					t.Errorf("%s@%d: row %+v, from record %+v", r.Topic, r.Offset, got, rec)
				}
			}

			e := query.New(b, "")
			for _, tt := range []struct {
				topic string
				want  int
			}{{"", 30}, {"logs.team-a", 10}, {"logs.team-a.audit", 10}, {"logs.team-a.debug", 10}, {"logs.team-a.other", 0}} {
				n := 0
				_, err := e.Run(ctx, query.Request{Namespace: "team-a", Topic: tt.topic, Since: base, Until: base.Add(time.Hour)}, func(r record.Record) error {
					n++
					if tt.topic == "logs.team-a.audit" && r.Fields["level"] != "info" || tt.topic == "logs.team-a.debug" && (r.Lines != 2 || r.FieldsError == "") {
						t.Errorf("topic %s: record %+v", tt.topic, r)
					}
					return nil
				})
				if err != nil || n != tt.want {
					t.Errorf("query topic %q: %d records, %v; want %d", tt.topic, n, err, tt.want)
				}
			}
		})
	}
}
