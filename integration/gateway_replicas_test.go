package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/internal/record"
)

// TestGatewayReplicas runs two gateway replicas on one Kafka: a token created through replica
// A's admin API works on replica B; a stream read on A resumes on B with its cursor (no gap, no
// duplicate); a revocation through B's admin API is refused by A within seconds.
func TestGatewayReplicas(t *testing.T) {
	a := startGateway(t, 2)
	b := startGatewayOn(t, a.cluster, a.kcl)
	a.createTopic("logs.team-a", 2)
	a.produce(seqLines("team-a", 0, 100, 2)...)
	admin, _ := a.token(token.Spec{Admin: true})
	b.waitToken(admin)

	// Create a team token through replica A's API.
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/tokens", bytes.NewReader([]byte(`{"name":"dash","namespaces":["team-a"],"ttl":"1d"}`)))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Token  string       `json:"token"`
		Record token.Record `json:"record"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if created.Record.Hash != "" || created.Record.ExpiresAt.Sub(created.Record.CreatedAt) != 24*time.Hour {
		t.Fatalf("record %+v", created.Record)
	}
	// Replica A answered after reading its own write; B sees it as soon as it fetches.
	if r := a.get("/v1/namespaces/team-a/logs?limit=1", created.Token); r.StatusCode != 200 {
		t.Fatalf("replica A: %d", r.StatusCode)
	} else {
		r.Body.Close()
	}
	b.waitToken(created.Token)

	// Read 40 records on A, resume on B.
	seen := map[string]int{}
	readSSE := func(e *gwEnv, lastID string, n int) string {
		hdr := []string{"Accept", "text/event-stream"}
		if lastID != "" {
			hdr = append(hdr, "Last-Event-ID", lastID)
		}
		r := e.get("/v1/namespaces/team-a/logs?from=earliest", created.Token, hdr...)
		defer r.Body.Close()
		sr := newSSE(r.Body)
		for got := 0; got < n; {
			ev, err := sr.next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.event != "" || ev.data == "" {
				continue
			}
			rec, err := record.Decode([]byte(ev.data))
			if err != nil {
				t.Fatal(err)
			}
			seen[rec.Message]++
			lastID = ev.id
			got++
		}
		return lastID
	}
	last := readSSE(a, "", 40)
	readSSE(b, last, 60)
	if len(seen) != 100 {
		t.Fatalf("%d distinct records, want 100", len(seen))
	}
	for m, n := range seen {
		if n != 1 {
			t.Fatalf("%q seen %d times", m, n)
		}
	}

	// List and revoke through replica B.
	r := b.get("/v1/tokens/"+created.Record.ID, admin)
	if r.StatusCode != 200 {
		t.Fatalf("get token on B: %d", r.StatusCode)
	}
	r.Body.Close()
	req, _ = http.NewRequest(http.MethodDelete, b.base+"/v1/tokens/"+created.Record.ID, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke on B: %v %d", err, resp.StatusCode)
	}
	resp.Body.Close()
	start := time.Now()
	for problemCode(t, a.get("/v1/namespaces/team-a/logs", created.Token)) != "token_revoked" {
		if time.Since(start) > 5*time.Second {
			t.Fatal("replica A still accepts the revoked token after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("revocation through B refused by A after %v", time.Since(start))
}
