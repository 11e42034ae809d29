package limits

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStreams(t *testing.T) {
	l := New(Config{MaxStreams: 2})
	a, err := l.Acquire("tok-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire("tok-a"); err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire("tok-a")
	var ref *Refusal
	if !errors.As(err, &ref) || !errors.Is(err, ErrTooManyStreams) || ref.RetryAfter <= 0 {
		t.Fatalf("third stream: %v", err)
	}
	if _, err := l.Acquire("tok-b"); err != nil {
		t.Fatalf("other principal refused: %v", err)
	}
	a.Release()
	a.Release() // idempotent
	if _, err := l.Acquire("tok-a"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := l.Acquire("tok-a"); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("double release freed two slots: %v", err)
	}
}

func TestBytesBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Config{BytesPerSec: 1000})
	l.now = func() time.Time { return now }
	lease, err := l.Acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Spend(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
	// 3000 more bytes put the bucket 3000 in debt; the wait is cut by the context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lease.Spend(ctx, 3000); !errors.Is(err, context.Canceled) {
		t.Fatalf("Spend in debt = %v, want context.Canceled", err)
	}
	lease.Release()
	_, err = l.Acquire("k")
	var ref *Refusal
	if !errors.As(err, &ref) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Acquire in debt = %v", err)
	}
	if ref.RetryAfter < 3 || ref.RetryAfter > 4 {
		t.Fatalf("RetryAfter = %d, want 3-4", ref.RetryAfter)
	}
	if _, err := l.Acquire("other"); err != nil {
		t.Fatalf("other principal: %v", err)
	}
	now = now.Add(5 * time.Second)
	if _, err := l.Acquire("k"); err != nil {
		t.Fatalf("after the debt is paid: %v", err)
	}
}
