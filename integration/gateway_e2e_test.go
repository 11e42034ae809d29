package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/internal/record"
)

func seqLines(ns string, from, n int, parts int32) []line {
	out := make([]line, n)
	for i := range out {
		k := from + i
		out[i] = line{ns: ns, pod: fmt.Sprintf("web-%d", k%2), container: "app", msg: fmt.Sprintf("%s msg %05d", ns, k), partition: int32(k) % parts}
	}
	return out
}

// TestGatewayStreamResume streams a namespace over SSE, disconnects mid-stream, resumes with
// Last-Event-ID and checks that every record arrives exactly once and that no other
// namespace's record appears; records produced while streaming arrive live.
func TestGatewayStreamResume(t *testing.T) {
	e := startGateway(t, 3)
	e.createTopic("logs.team-a", 3)
	e.createTopic("logs.team-b", 3)
	e.produce(seqLines("team-a", 0, 300, 3)...)
	e.produce(seqLines("team-b", 0, 100, 3)...)
	secret, _ := e.token(token.Spec{Name: "team-a reader", Namespaces: []string{"team-a"}})

	seen := map[string]int{}
	read := func(resp *http.Response, n int) (lastID string) {
		t.Helper()
		sr := newSSE(resp.Body)
		for got := 0; got < n; {
			ev, err := sr.next()
			if err != nil {
				t.Fatalf("after %d records: %v", got, err)
			}
			if ev.event == "skipped" || ev.event == "end" {
				t.Fatalf("unexpected %s event: %s", ev.event, ev.data)
			}
			if ev.data == "" { // heartbeat: id only
				continue
			}
			r, err := record.Decode([]byte(ev.data))
			if err != nil {
				t.Fatalf("record %q: %v", ev.data, err)
			}
			if r.Namespace != "team-a" {
				t.Fatalf("record of namespace %q on team-a's stream", r.Namespace)
			}
			seen[r.Message]++
			lastID = ev.id
			got++
		}
		return lastID
	}

	resp := e.get("/v1/namespaces/team-a/logs?from=earliest", secret, "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	last := read(resp, 120)
	resp.Body.Close() // the client goes away mid-stream

	// EventSource reconnects to the same URL (from=earliest) with Last-Event-ID: the id wins.
	resp = e.get("/v1/namespaces/team-a/logs?from=earliest", secret, "Accept", "text/event-stream", "Last-Event-ID", last)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: status %d", resp.StatusCode)
	}
	read(resp, 180)
	// Live: records produced now arrive on the open stream.
	e.produce(seqLines("team-a", 300, 30, 3)...)
	read(resp, 30)
	resp.Body.Close()

	if len(seen) != 330 {
		t.Fatalf("saw %d distinct records, want 330", len(seen))
	}
	for m, n := range seen {
		if n != 1 {
			t.Errorf("%q seen %d times", m, n)
		}
	}
}

// TestGatewayNDJSONAndPages reads the same records as NDJSON and through the page API, checks
// per-partition order, filters, and that a page walk yields each record once.
func TestGatewayNDJSONAndPages(t *testing.T) {
	e := startGateway(t, 3)
	e.createTopic("logs.team-a", 3)
	e.createTopic("logs.team-b", 3)
	e.produce(seqLines("team-a", 0, 250, 3)...)
	e.produce(seqLines("team-b", 0, 50, 3)...)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a", "team-b"}})

	// NDJSON with a limit: the stream ends with an end line.
	resp := e.get("/v1/namespaces/team-b/logs?from=earliest&limit=50", secret, "Accept", "application/x-ndjson")
	if resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	lastOffset := map[int32]int64{0: -1, 1: -1, 2: -1}
	records := 0
	var endReason string
	for sc.Scan() {
		var ln struct {
			Type      string        `json:"type"`
			Cursor    string        `json:"cursor"`
			Partition int32         `json:"partition"`
			Offset    int64         `json:"offset"`
			Record    record.Record `json:"record"`
			Reason    string        `json:"reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		switch ln.Type {
		case "record":
			if ln.Record.Namespace != "team-b" || ln.Cursor == "" {
				t.Fatalf("bad record line %s", sc.Text())
			}
			if ln.Offset <= lastOffset[ln.Partition] {
				t.Fatalf("partition %d: offset %d after %d", ln.Partition, ln.Offset, lastOffset[ln.Partition])
			}
			lastOffset[ln.Partition] = ln.Offset
			records++
		case "end":
			endReason = ln.Reason
		case "heartbeat":
		default:
			t.Fatalf("unexpected line %s", sc.Text())
		}
	}
	resp.Body.Close()
	if records != 50 || endReason != "limit" {
		t.Fatalf("NDJSON: %d records, end %q; want 50, limit", records, endReason)
	}

	// Page walk over team-a with limit 40: every record once, then caught up.
	walk := func(query string) []string {
		var msgs []string
		cur := ""
		for i := 0; i < 100; i++ {
			q := query
			if cur != "" {
				q += "&cursor=" + url.QueryEscape(cur)
			}
			resp := e.get("/v1/namespaces/team-a/logs?"+q, secret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("page %d: status %d: %s", i, resp.StatusCode, problemCode(t, resp))
			}
			var p struct {
				Records    []record.Record `json:"records"`
				NextCursor string          `json:"next_cursor"`
				CaughtUp   bool            `json:"caught_up"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, r := range p.Records {
				msgs = append(msgs, r.Message)
			}
			cur = p.NextCursor
			if p.CaughtUp && len(p.Records) == 0 {
				return msgs
			}
		}
		t.Fatal("page walk did not finish")
		return nil
	}
	all := walk("limit=40")
	if len(all) != 250 {
		t.Fatalf("page walk: %d records, want 250", len(all))
	}
	uniq := map[string]bool{}
	for _, m := range all {
		if uniq[m] {
			t.Fatalf("duplicate %q", m)
		}
		uniq[m] = true
	}
	// Filters.
	tests := []struct {
		query string
		want  int
	}{
		{"limit=1000&pod=web-0", 125},
		{"limit=1000&pod=web-1&container=app", 125},
		{"limit=1000&container=sidecar", 0},
		{"limit=1000&grep=" + url.QueryEscape(`msg 0000[0-9]$`), 10},
		{"limit=1000&grep=" + url.QueryEscape(`(?i)TEAM-A MSG 0024`), 10},
	}
	for _, tt := range tests {
		if got := len(walk(tt.query)); got != tt.want {
			t.Errorf("%s: %d records, want %d", tt.query, got, tt.want)
		}
	}
	// A page after the end is empty and caught up; a cursor from another namespace is refused.
	resp = e.get("/v1/namespaces/team-a/logs?limit=5&from=latest", secret)
	var p struct {
		Records    []json.RawMessage `json:"records"`
		NextCursor string            `json:"next_cursor"`
		CaughtUp   bool              `json:"caught_up"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if len(p.Records) != 0 || !p.CaughtUp {
		t.Fatalf("latest page: %+v", p)
	}
	if code := problemCode(t, e.get("/v1/namespaces/team-b/logs?cursor="+p.NextCursor, secret)); code != "invalid_cursor" {
		t.Fatalf("team-a cursor on team-b: %q", code)
	}
}

// TestGatewayRetentionSkipped deletes records under a client's cursor and checks the client is
// told what it missed, then continues.
func TestGatewayRetentionSkipped(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	e.produce(seqLines("team-a", 0, 20, 1)...)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	resp := e.get("/v1/namespaces/team-a/logs?limit=5", secret)
	var p struct {
		NextCursor string `json:"next_cursor"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs := kadm.Offsets{}
	offs.AddOffset("logs.team-a", 0, 12, -1)
	if _, err := kadm.NewClient(e.kcl).DeleteRecords(ctx, offs); err != nil {
		t.Fatal(err)
	}
	resp = e.get("/v1/namespaces/team-a/logs?from="+p.NextCursor+"&limit=3", secret, "Accept", "text/event-stream")
	sr := newSSE(resp.Body)
	var skipped struct {
		From, To, Count int64
	}
	var first string
	for first == "" {
		ev, err := sr.next()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.event == "skipped":
			if err := json.Unmarshal([]byte(ev.data), &skipped); err != nil {
				t.Fatal(err)
			}
		case ev.event == "" && ev.data != "":
			r, _ := record.Decode([]byte(ev.data))
			first = r.Message
		}
	}
	resp.Body.Close()
	if skipped.From != 5 || skipped.To != 12 || skipped.Count != 7 {
		t.Fatalf("skipped = %+v, want 5..12 (7)", skipped)
	}
	if first != "team-a msg 00012" {
		t.Fatalf("first record after the gap = %q", first)
	}
}

// TestGatewayRevokeEndsStream revokes a token while its stream is open: the stream ends with
// an end event within a few re-check intervals, and new requests are refused.
func TestGatewayRevokeEndsStream(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	secret, rec := e.token(token.Spec{Namespaces: []string{"team-a"}})
	resp := e.get("/v1/namespaces/team-a/logs", secret, "Accept", "application/x-ndjson")
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := token.Revoke(ctx, e.kcl, token.DefaultTopic, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body) // ends when the server closes the stream
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	lastLine := lines[len(lines)-1]
	if !strings.Contains(lastLine, `"type":"end"`) || !strings.Contains(lastLine, `"token_revoked"`) {
		t.Fatalf("last line %q", lastLine)
	}
	if code := problemCode(t, e.get("/v1/namespaces/team-a/logs", secret)); code != "token_revoked" {
		t.Fatalf("after revocation: %q", code)
	}
}

// TestGatewayShutdownEndsStreams checks that Run returns after ending open streams cleanly.
func TestGatewayShutdownEndsStreams(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	resp := e.get("/v1/namespaces/team-a/logs", secret, "Accept", "text/event-stream")
	defer resp.Body.Close()
	sr := newSSE(resp.Body)
	if _, err := sr.next(); err != nil { // the first heartbeat: the stream is open
		t.Fatal(err)
	}
	e.stop()
	var last sseEvent
	for {
		ev, err := sr.next()
		if err != nil {
			break
		}
		last = ev
	}
	if last.event != "end" || !strings.Contains(last.data, "shutdown") {
		t.Fatalf("last event %+v, want end/shutdown", last)
	}
}

// TestGatewayBadRecords puts records a reader must not see among good ones: a value that is
// not JSON, one without a schema header, one of another namespace (a shared topic) and one
// whose value would forge envelope fields. Each is skipped and counted; every good record
// still arrives, in NDJSON and in pages.
func TestGatewayBadRecords(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	now := time.Now()
	good := func(i int) *kgo.Record {
		return testRecord(line{ns: "team-a", pod: "web", container: "app", msg: fmt.Sprintf("good %d", i)}, now)
	}
	notJSON := good(-1)
	notJSON.Value = []byte("not json")
	noSchema := good(-2)
	noSchema.Headers = noSchema.Headers[:3]
	foreign := testRecord(line{ns: "team-b", pod: "web", container: "app", msg: "secret of team-b"}, now)
	foreign.Topic = "logs.team-a"
	forged := good(-3)
	forged.Value = []byte(`{"v":1},"cursor":"forged","x":{}`)
	multiline := good(-4)
	multiline.Value = []byte("{\"v\":1,\n\"message\":\"pretty printed\"}")
	rs := []*kgo.Record{good(0), notJSON, good(1), noSchema, good(2), foreign, good(3), forged, good(4), multiline, good(5)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.kcl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})

	resp := e.get("/v1/namespaces/team-a/logs?from=earliest&limit=7", secret, "Accept", "application/x-ndjson")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		var ln struct {
			Type   string          `json:"type"`
			Cursor string          `json:"cursor"`
			Record json.RawMessage `json:"record"`
		}
		if err := json.Unmarshal([]byte(l), &ln); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ln.Type != "record" {
			continue
		}
		if ln.Cursor == "forged" {
			t.Fatal("a record value forged the cursor")
		}
		var r struct{ Message string }
		_ = json.Unmarshal(ln.Record, &r)
		msgs = append(msgs, r.Message)
	}
	want := []string{"good 0", "good 1", "good 2", "good 3", "good 4", "pretty printed", "good 5"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", msgs, want)
	}
	if strings.Contains(string(body), "team-b") {
		t.Fatal("another namespace's record leaked")
	}
	mf, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range mf {
		if f.GetName() != "logrouter_gateway_records_not_sent_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["bad_value"] != 2 || got["bad_schema"] != 1 || got["foreign_namespace"] != 1 {
		t.Fatalf("not-sent metrics %v", got)
	}
}
