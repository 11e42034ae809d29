package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver/archivetest"
)

// TestGatewayPageBeforeFirstFetch: a page that knows records exist (the topic's end is past
// the cursor) and whose consumer has fetched none of them is not an empty 200 page, which
// would read as "nothing there": it is 503 unavailable with Retry-After once --first-fetch-wait
// passes. kfake refuses the fetches of shop's suffix topic (the connection closes, as a broker
// going away does) while the rest of Kafka works. A page at the topic's end still answers 200
// caught_up at once (it needs no fetch). Once fetches work again, the page holds the records.
func TestGatewayPageBeforeFirstFetch(t *testing.T) {
	const topicName, n = "logs.shop.audit", 10
	e := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) { c.FirstFetchWait = 300 * time.Millisecond })
	e.createTopic("logs.shop", 1)
	e.createTopic(topicName, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rs []*kgo.Record
	for i := range n {
		ts := suffixBase.Add(time.Duration(i) * time.Second)
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "shop", Pod: "web-1", Container: "app", Time: ts, KafkaTime: ts,
			Message: fmt.Sprintf("shop audit-%d", i), Suffix: "audit"}))
	}
	if err := archivetest.Produce(ctx, e.kcl, rs); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(e.kcl).ListTopics(ctx, topicName)
	if err != nil || td[topicName].Err != nil {
		t.Fatalf("topic ID: %v %v", err, td[topicName].Err)
	}
	id := td[topicName].ID
	var refuse atomic.Bool
	var refused atomic.Int64
	e.cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		for _, tp := range req.(*kmsg.FetchRequest).Topics {
			if tp.Topic == topicName || tp.TopicID == id {
				refused.Add(1)
				return nil, errors.New("refused by the test"), true
			}
		}
		return nil, nil, false
	})
	shop, _ := e.token(token.Spec{Namespaces: []string{"shop"}})
	type page struct {
		Records  []json.RawMessage `json:"records"`
		CaughtUp bool              `json:"caught_up"`
	}
	get := func(path string) (*http.Response, page, []byte) {
		t.Helper()
		resp := e.get(path, shop)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var p page
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatalf("page %.300s: %v", b, err)
			}
		}
		return resp, p, b
	}

	refuse.Store(true)
	resp, _, b := get("/v1/namespaces/shop/logs?suffix=audit&limit=100")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(b), `"code":"unavailable"`) || !strings.Contains(string(b), topicName) {
		t.Errorf("page while its fetches fail: %d Retry-After %q %s, want 503 unavailable naming %s with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), b, topicName)
	}
	if refused.Load() == 0 {
		t.Fatal("no fetch was refused: the test did not test a page without records")
	}
	// At the topic's end there is nothing to fetch: an empty page is the truth.
	resp, p, b := get("/v1/namespaces/shop/logs?suffix=audit&from=latest")
	if resp.StatusCode != http.StatusOK || len(p.Records) != 0 || !p.CaughtUp {
		t.Errorf("page at the end while fetches fail: %d %s, want 200 caught_up without records", resp.StatusCode, b)
	}

	refuse.Store(false)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, p, b := get("/v1/namespaces/shop/logs?suffix=audit&limit=100")
		if resp.StatusCode == http.StatusOK {
			// The first fetch of one partition brings every record: the page is whole.
			if len(p.Records) != n || !p.CaughtUp {
				t.Fatalf("page: %d records, caught_up %v, want all %d: %.300s", len(p.Records), p.CaughtUp, n, b)
			}
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("page: %d %s, want 200 or 503 with Retry-After", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still 503 after fetches work again: %s", b)
		}
	}
}
