package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// archive

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/internal/record"
)

// TestGatewayArchive archives two namespaces with the real archiver (kfake -> fileblob), then
// reads them back through the gateway's archive endpoint over HTTP.
func TestGatewayArchive(t *testing.T) {
	dir := t.TempDir()
	bucketURL := "file://" + filepath.Join(dir, "bucket")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bkt, err := blob.OpenBucket(ctx, bucketURL+"?create_dir=true")
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()

	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) { *o = append(*o, api.WithBucket(bkt)) })
	e.createTopic("logs.team-a", 1)
	e.createTopic("logs.team-b", 1)
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var rs []*kgo.Record
	for i := 0; i < 200; i++ {
		ns := []string{"team-a", "team-b"}[i%2]
		ts := base.Add(time.Duration(i) * time.Second)
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("web-%d", i%4), Container: "app",
			Time: ts, Message: archivetest.Seq(ns, i), KafkaTime: ts, Partition: 0}))
	}
	if err := archivetest.Produce(ctx, e.kcl, rs); err != nil {
		t.Fatal(err)
	}
	want := map[archivetest.Pos]int64{}
	for _, r := range rs {
		p := archivetest.Pos{Topic: r.Topic}
		want[p] = max(want[p], r.Offset+1)
	}
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)

	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	since := url.QueryEscape(base.Format(time.RFC3339))
	until := url.QueryEscape(base.Add(time.Hour).Format(time.RFC3339))
	tests := []struct {
		name   string
		query  string
		want   int
		reason string
	}{
		{"whole range", "since=" + since + "&until=" + until, 100, "complete"},
		{"first minute", "since=" + since + "&until=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339)), 30, "complete"},
		{"pod", "since=" + since + "&until=" + until + "&pod=web-2", 50, "complete"},
		{"grep", "since=" + since + "&until=" + until + "&grep=" + url.QueryEscape(`seq-1[0-9]$`), 5, "complete"},
		{"limit", "since=" + since + "&until=" + until + "&limit=7", 7, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.get("/v1/namespaces/team-a/archive?"+tt.query, secret, "Accept", "application/x-ndjson")
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, problemCode(t, resp))
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			n := 0
			var last time.Time
			reason := ""
			for sc.Scan() {
				var ln struct {
					Type   string        `json:"type"`
					Record record.Record `json:"record"`
					Reason string        `json:"reason"`
				}
				if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				if reason != "" {
					t.Fatalf("line after end: %s", sc.Text())
				}
				switch ln.Type {
				case "record":
					if ln.Record.Namespace != "team-a" {
						t.Fatalf("record of %q", ln.Record.Namespace)
					}
					if ln.Record.Time.Before(last) {
						t.Fatalf("out of time order: %v after %v", ln.Record.Time, last)
					}
					last = ln.Record.Time
					n++
				case "end":
					reason = ln.Reason
				}
			}
			if n != tt.want || reason != tt.reason {
				t.Fatalf("%d records, end %q; want %d, %q", n, reason, tt.want, tt.reason)
			}
		})
	}
}
