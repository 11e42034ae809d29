package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
)

// answer is a response's status and, for problems, code and detail.
type answer struct {
	status       int
	code, detail string
}

func (e *gwEnv) do(method, path, secret, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	if resp.StatusCode >= 400 {
		var p struct{ Code, Detail string }
		if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(b, &p) != nil {
			e.t.Fatalf("%s %s: %d is not problem+json: %q", method, path, resp.StatusCode, b)
		}
		a.code, a.detail = p.Code, p.Detail
	}
	return a
}

// until polls f until ok accepts its answer, failing at the deadline with the last answer.
func until(t *testing.T, what string, f func() answer, ok func(answer) bool) answer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := f()
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %+v", what, a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func withStaleness(d time.Duration) gwOpt {
	return func(c *api.Config, _ *[]api.Option) { c.TokenMaxStaleness = d }
}

// TestGatewayTokenTopicDeleted deletes the token topic under a running gateway, recreates it as
// `logrouter tokens create` does, revokes and creates tokens. At each step: no token is accepted
// while the store cannot be read, /readyz says why, and the recreated topic is followed.
func TestGatewayTokenTopicDeleted(t *testing.T) {
	e := startGateway(t, 1, withStaleness(2*time.Second))
	e.createTopic("logs.team-a", 1)
	e.produce(seqLines("team-a", 0, 3, 1)...)
	old, oldRec := e.token(token.Spec{Namespaces: []string{"team-a"}})
	admin, _ := e.token(token.Spec{Admin: true})
	const page = "/v1/namespaces/team-a/logs?limit=3"
	logs := func(secret string) func() answer { return func() answer { return e.do("GET", page, secret, "") } }
	ready := func() answer { return e.do("GET", "/readyz", "", "") }
	if a := logs(old)(); a.status != 200 {
		t.Fatalf("before: %+v", a)
	}
	if a := ready(); a.status != 200 {
		t.Fatalf("before: readyz %+v", a)
	}

	// Deleted: tokens that live only in the gateway's memory are refused (fail closed) and the
	// replica is not ready.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.kcl)
	if _, err := adm.DeleteTopic(ctx, token.DefaultTopic); err != nil {
		t.Fatal(err)
	}
	until(t, "old token refused", logs(old), func(a answer) bool { return a.status == 503 && a.code == "unavailable" })
	until(t, "readyz after deletion", ready, func(a answer) bool {
		return a.status == 503 && strings.Contains(a.detail, "does not exist")
	})
	if a := e.do("DELETE", "/v1/tokens/"+oldRec.ID, admin, ""); a.status != 503 {
		t.Fatalf("revoke while the topic is missing: %+v", a)
	}
	if a := logs(old)(); a.status != 503 {
		t.Fatalf("old token accepted while the topic is missing: %+v", a)
	}

	// Recreated by `tokens create` (a new client, as the command is a new process).
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := token.EnsureTopic(ctx, kadm.NewClient(cl), token.DefaultTopic); err != nil {
		t.Fatal(err)
	}
	admin2, _, err := token.Create(ctx, cl, token.DefaultTopic, token.Spec{Admin: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fresh, freshRec, err := token.Create(ctx, cl, token.DefaultTopic, token.Spec{Namespaces: []string{"team-a"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	until(t, "new token accepted", logs(fresh), func(a answer) bool { return a.status == 200 })
	until(t, "readyz after recreation", ready, func(a answer) bool { return a.status == 200 })
	// Tokens of the deleted topic are gone with it.
	for _, s := range []string{old, admin} {
		if a := logs(s)(); a.status != 401 {
			t.Fatalf("token of the deleted topic: %+v", a)
		}
	}

	// A revocation through the API goes to the new topic and takes effect at once.
	if a := e.do("DELETE", "/v1/tokens/"+freshRec.ID, admin2, ""); a.status != 200 {
		t.Fatalf("revoke: %+v", a)
	}
	if a := logs(fresh)(); a.status != 401 || a.code != "token_revoked" {
		t.Fatalf("revoked token: %+v", a)
	}
	// New tokens through the API work.
	resp := e.get("/v1/tokens", admin2)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.base+"/v1/tokens", strings.NewReader(`{"namespaces":["team-a"]}`))
	req.Header.Set("Authorization", "Bearer "+admin2)
	req.Header.Set("Content-Type", "application/json")
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Token string }
	_ = json.NewDecoder(cresp.Body).Decode(&created)
	cresp.Body.Close()
	if cresp.StatusCode != 201 || created.Token == "" {
		t.Fatalf("create: %d", cresp.StatusCode)
	}
	if a := logs(created.Token)(); a.status != 200 {
		t.Fatalf("token created through the API: %+v", a)
	}
}

// TestGatewayReadyzKafkaDown stops the broker under a running gateway: /readyz turns 503 and
// names Kafka; tokens are refused once the store is past its staleness bound; when the broker
// is back (with its data) both recover.
func TestGatewayReadyzKafkaDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cluster := start()
	t.Cleanup(func() { cluster.Close() })
	kcl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", port)), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	e := startGatewayOn(t, cluster, kcl, withStaleness(2*time.Second))
	e.createTopic("logs.team-a", 1)
	e.produce(seqLines("team-a", 0, 3, 1)...)
	tok, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	ready := func() answer { return e.do("GET", "/readyz", "", "") }
	logs := func() answer { return e.do("GET", "/v1/namespaces/team-a/logs?limit=3", tok, "") }
	if a := ready(); a.status != 200 {
		t.Fatalf("before: %+v", a)
	}

	cluster.Close()
	a := until(t, "readyz with Kafka down", ready, func(a answer) bool { return a.status == 503 })
	if !strings.Contains(a.detail, "kafka unreachable") {
		t.Fatalf("readyz reason %q does not name Kafka", a.detail)
	}
	until(t, "token refused past the staleness bound", logs, func(a answer) bool { return a.status == 503 && a.code == "unavailable" })

	cluster = start()
	until(t, "readyz after the broker is back", ready, func(a answer) bool { return a.status == 200 })
	until(t, "page after the broker is back", logs, func(a answer) bool { return a.status == 200 })
}
