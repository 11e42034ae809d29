package token

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logrouter/logrouter/api/params"
)

func TestParse(t *testing.T) {
	tok, rec, err := Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := Parse(tok)
	if err != nil || id != rec.ID || !rec.Verify(secret) {
		t.Fatalf("Parse(%q) = %q, %q, %v", tok, id, secret, err)
	}
	bad := []string{
		"", "lrt_", tok[:len(tok)-1], tok + "A", "LRT_" + tok[4:], strings.Replace(tok, "_", "-", 2),
		"lrt_ABCDEF0123456789_" + tok[len(tok)-43:],             // uppercase id
		tok[:len(tok)-1] + "=",                                  // not base64url
		"lrt_0123456789abcdef_" + strings.Repeat("A", 42) + "B", // non-canonical trailing bits
	}
	for _, b := range bad {
		if _, _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", b, err)
		}
	}
	// Change the secret's last character to each of several others: the secret is random, so
	// a single fixed replacement ("A") was no change at all whenever the secret ended in it.
	last := secret[len(secret)-1]
	changed := 0
	for _, c := range []byte("AQgw-_") {
		if c == last {
			continue
		}
		changed++
		if wrong := secret[:len(secret)-1] + string(c); rec.Verify(wrong) {
			t.Fatalf("wrong secret %q verified (real %q)", wrong, secret)
		}
	}
	if changed < 5 {
		t.Fatalf("only %d changed secrets tried", changed)
	}
}

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90d", 90 * 24 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"0", 0, true},
		{"1d", 24 * time.Hour, true},
		{"0d", 0, false},
		{"-1h", 0, false},
		{"d", 0, false},
		{"9999d", 0, false},
		{"1.5d", 0, false},
		{"", 0, false},
		{"forever", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseTTL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"one namespace", Spec{Namespaces: []string{"team-a"}}, true},
		{"admin only", Spec{Admin: true}, true},
		{"none", Spec{}, false},
		{"invalid namespace", Spec{Namespaces: []string{"Team"}}, false},
		{"duplicate", Spec{Namespaces: []string{"a", "a"}}, false},
		{"negative ttl", Spec{Namespaces: []string{"a"}, TTL: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.spec.Validate(params.Namespace); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	tok, _, _ := Generate(time.Now())
	f.Add(tok)
	f.Add("lrt_0123456789abcdef_x")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := Parse(s)
		if err != nil {
			return
		}
		if !ValidID(id) || s != Prefix+id+"_"+secret {
			t.Fatalf("Parse(%q) accepted inconsistent parts %q %q", s, id, secret)
		}
	})
}

func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"90d", "1h", "0", "-5d", "99999999999999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTTL(s)
		if err == nil && (d < 0 || d > MaxTTL) {
			t.Fatalf("ParseTTL(%q) = %v out of range", s, d)
		}
	})
}

// TestStoreLifecycle runs two stores (two gateway replicas) against kfake: a token created
// through one client authenticates on both; a revocation reaches both; expiry is enforced.
func TestStoreLifecycle(t *testing.T) {
	opts := fakeKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A token written before the replicas start must be there once they are ready.
	cl, err := kgo.NewClient(append(opts, kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := EnsureTopic(ctx, kadm.NewClient(cl), DefaultTopic); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	early, earlyRec, err := Create(ctx, cl, DefaultTopic, Spec{Namespaces: []string{"team-a"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Garbage in the topic is skipped and counted, nothing else is lost.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: DefaultTopic, Key: []byte("junk"), Value: []byte("{")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var stores []*Store
	for i := 0; i < 2; i++ {
		stores = append(stores, runStore(t, opts, log))
	}
	for i, s := range stores {
		r, err := s.Authenticate(early, now)
		if err != nil || r.ID != earlyRec.ID || !r.Allows("team-a") || r.Allows("team-b") {
			t.Fatalf("store %d: Authenticate = %+v, %v", i, r, err)
		}
		if got := testutil.ToFloat64(s.invalid); got != 1 {
			t.Fatalf("store %d: invalid records = %v, want 1", i, got)
		}
	}

	short, shortRec, err := Create(ctx, cl, DefaultTopic, Spec{Namespaces: []string{"team-b"}, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		if err := s.WaitFor(ctx, shortRec.ID, func(r *Record) bool { return r != nil }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"valid", short, now, nil},
		{"expired", short, now.Add(time.Hour), ErrExpired},
		{"unknown", "lrt_0123456789abcdef_" + short[len(short)-43:], now, ErrUnknown},
		{"wrong secret", short[:len(short)-43] + early[len(early)-43:], now, ErrUnknown},
		{"malformed", "Bearer " + short, now, ErrMalformed},
	}
	for _, tt := range tests {
		for i, s := range stores {
			if _, err := s.Authenticate(tt.tok, tt.at); !errors.Is(err, tt.want) {
				t.Errorf("%s: store %d: Authenticate = %v, want %v", tt.name, i, err, tt.want)
			}
		}
	}

	if _, err := Revoke(ctx, cl, DefaultTopic, earlyRec, now); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if err := s.WaitFor(ctx, earlyRec.ID, func(r *Record) bool { return r != nil && !r.RevokedAt.IsZero() }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(early, now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("store %d: revoked token: %v", i, err)
		}
		if err := s.Recheck(earlyRec.ID, now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("store %d: Recheck = %v", i, err)
		}
		list := s.List()
		if len(list) != 2 || list[0].Hash != "" {
			t.Fatalf("store %d: List = %+v", i, list)
		}
	}
}

// lineCounter is a slog handler that counts records by message.
type lineCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *lineCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Message]++
	c.mu.Unlock()
	return nil
}
func (c *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *lineCounter) WithGroup(string) slog.Handler      { return c }
func (c *lineCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeKafka starts an in-memory kfake broker for the test and returns client options for it.
func fakeKafka(t *testing.T) []kgo.Opt {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}

func runStore(t *testing.T, opts []kgo.Opt, log *slog.Logger, sopts ...StoreOption) *Store {
	t.Helper()
	s, err := NewStore(opts, DefaultTopic, prometheus.NewRegistry(), log, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("store never ready")
	}
	return s
}

// TestStoreFollowsRecreatedTopic deletes the token topic under a running store, recreates it
// the way `logrouter tokens create` does, revokes and creates tokens: the store refuses tokens
// while the topic is gone, says why in Health, logs rarely, and reads the new topic.
func TestStoreFollowsRecreatedTopic(t *testing.T) {
	opts := fakeKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lines := &lineCounter{n: map[string]int{}}
	s := runStore(t, opts, slog.New(lines), WithMaxStaleness(2*time.Second))
	now := func() time.Time { return time.Now() }

	old, oldRec, err := Create(ctx, cl, DefaultTopic, Spec{Namespaces: []string{"team-a"}}, now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, oldRec.ID, func(r *Record) bool { return r != nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(old, now()); err != nil {
		t.Fatalf("before deletion: %v", err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("before deletion: Health = %v", err)
	}

	// Step 1: the topic is deleted. Tokens are refused (the store cannot be read), Health
	// names the missing topic, and the store does not recreate it by itself.
	deleted := time.Now()
	if _, err := adm.DeleteTopic(ctx, DefaultTopic); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old token refused after deletion", func() bool {
		_, err := s.Authenticate(old, now())
		return errors.Is(err, ErrStoreUnavailable)
	})
	if err := s.Health(); !errors.Is(err, ErrTopicMissing) {
		t.Fatalf("after deletion: Health = %v, want ErrTopicMissing", err)
	}
	if err := s.Recheck(oldRec.ID, now()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("after deletion: Recheck = %v", err)
	}
	// Several probes fail while the topic is missing; the log says so once per 10 s.
	eventually(t, "repeated probe failures", func() bool {
		return testutil.ToFloat64(s.failures.WithLabelValues("topic_missing")) >= 5
	})
	if _, err := s.Authenticate(old, now()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("token accepted while the topic is missing: %v", err)
	}
	// (kadm's ListTopics answers from a metadata cache; ask the broker.)
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(DefaultTopic)
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx, cl); err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("the topic exists again (recreated by the store?): %+v, %v", resp, err)
	}
	allowed := 1 + int(time.Since(deleted)/(10*time.Second))
	if n := lines.count("token store cannot read its topic"); n < 1 || n > allowed {
		t.Fatalf("%d error lines in %s, want 1 to %d", n, time.Since(deleted), allowed)
	}

	// Step 2: `tokens create` recreates the topic and writes a new token.
	if err := EnsureTopic(ctx, adm, DefaultTopic); err != nil {
		t.Fatal(err)
	}
	fresh, freshRec, err := Create(ctx, cl, DefaultTopic, Spec{Namespaces: []string{"team-b"}}, now())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "new token accepted", func() bool {
		_, err := s.Authenticate(fresh, now())
		return err == nil
	})
	if err := s.Health(); err != nil {
		t.Fatalf("after recreation: Health = %v", err)
	}
	// The old token lived only in the deleted topic: it is gone.
	if _, err := s.Authenticate(old, now()); !errors.Is(err, ErrUnknown) {
		t.Fatalf("old token after recreation: %v, want ErrUnknown", err)
	}

	// Step 3: a revocation written to the new topic takes effect.
	if _, err := Revoke(ctx, cl, DefaultTopic, freshRec, now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revocation applied", func() bool {
		_, err := s.Authenticate(fresh, now())
		return errors.Is(err, ErrRevoked)
	})

	// Step 4: more tokens work as usual.
	more, _, err := Create(ctx, cl, DefaultTopic, Spec{Admin: true}, now())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "another token accepted", func() bool {
		_, err := s.Authenticate(more, now())
		return err == nil
	})
}

// TestStoreFailsClosed stops Kafka under a running store whose clock is frozen at the last
// confirmation: tokens stay valid up to the staleness bound and are refused past it; when the
// broker is back (with its data) the store confirms again.
func TestStoreFailsClosed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	defer func() { c.Close() }()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var offset atomic.Int64
	t0 := time.Now()
	clock := func() time.Time { return t0.Add(time.Duration(offset.Load())) }
	const bound = 2 * time.Second
	s := runStore(t, opts, slog.New(slog.DiscardHandler), WithMaxStaleness(bound), WithClock(clock))
	tok, rec, err := Create(ctx, cl, DefaultTopic, Spec{Namespaces: []string{"team-a"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, rec.ID, func(r *Record) bool { return r != nil }); err != nil {
		t.Fatal(err)
	}
	// Wait for a confirmation that covers the token (every confirmation is at t0).
	eventually(t, "token confirmed", func() bool {
		_, err := s.Authenticate(tok, time.Now())
		return err == nil
	})

	c.Close()
	eventually(t, "Health reports Kafka", func() bool { return errors.Is(s.Health(), ErrKafkaUnreachable) })
	offset.Store(int64(bound))
	if _, err := s.Authenticate(tok, time.Now()); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	offset.Store(int64(bound + time.Millisecond))
	if _, err := s.Authenticate(tok, time.Now()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("past the bound: %v, want ErrStoreUnavailable", err)
	}
	if err := s.Recheck(rec.ID, time.Now()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("past the bound: Recheck = %v", err)
	}

	c = start()
	eventually(t, "confirmed again after the broker is back", func() bool {
		_, err := s.Authenticate(tok, time.Now())
		return err == nil && s.Health() == nil
	})
}
