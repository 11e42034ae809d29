package budget

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, "a", 60); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, "a", 40); err != nil {
		t.Fatal(err)
	}
	if b.Used() != 100 || b.UsedBy("a") != 100 {
		t.Fatalf("used %d", b.Used())
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Acquire(cctx, "a", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full budget: err = %v", err)
	}
	b.Release("a", 100)
	if b.Used() != 0 || len(b.ns) != 0 {
		t.Fatalf("after release: %d %v", b.Used(), b.ns)
	}
}

func TestOversizedRequestGrantedWhenIdle(t *testing.T) {
	b := New(10)
	if err := b.Acquire(context.Background(), "a", 1000); err != nil {
		t.Fatal(err)
	}
	b.Release("a", 1000)
}

// A namespace holding the whole budget cannot keep it from another that waits: once the hog
// releases, the waiter is served before the hog can take more than its share.
func TestFairShare(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, "hog", 100); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(ctx, "small", 30) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 1 })
	b.Release("hog", 40) // hog now holds 60 > its share of 50 while small waits
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("small namespace not served")
	}
	b.Release("hog", 60)
	b.Release("small", 30)
}

func TestWaiterBlocksHogOverShare(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	b.Acquire(ctx, "hog", 50)
	b.Acquire(ctx, "other", 50)
	// other waits for 40 more; hog, at its share, must not get in first when bytes free up.
	done := make(chan struct{})
	go func() { b.Acquire(ctx, "other", 40); close(done) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 1 })
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := b.Acquire(cctx, "hog", 10); err == nil {
		t.Fatal("hog over its share while another namespace waits")
	}
	b.Release("hog", 50)
	<-done
	if b.UsedBy("other") != 90 {
		t.Fatalf("other holds %d", b.UsedBy("other"))
	}
}

func TestConcurrent(t *testing.T) {
	b := New(1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := string(rune('a' + g%3))
			for range 2000 {
				if err := b.Acquire(context.Background(), ns, 64); err != nil {
					t.Error(err)
					return
				}
				if u := b.Used(); u > 1000 {
					t.Errorf("used %d over budget", u)
				}
				b.Release(ns, 64)
			}
		}()
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("leaked %d", b.Used())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

// With more namespaces than reads fit in their fair shares, each namespace still gets one read
// in flight at a time instead of all waiting for each other.
func TestShareSmallerThanOneRequest(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, "a", 40); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, "b", 40); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 2)
	go func() { got <- b.Acquire(ctx, "c", 40) }() // does not fit the total yet
	go func() { got <- b.Acquire(ctx, "d", 40) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 2 })
	b.Release("a", 40) // room for one: c or d, though 40 > 100/3
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a namespace holding nothing was not given a request that fits the total")
	}
}

// Held bytes count against the budget like in-flight ones, and a holder is told to let go
// (ErrHeld) exactly when only held bytes could make room, so held bytes never leave every
// reader waiting.
func TestHoldAndAcquireHolding(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		held      int64 // held by "a" (the caller)
		heldOther int64 // held by "b"
		inFlight  int64 // acquired by "c"
		waiter    int64 // a blocked request of "d" (0: none)
		n         int64
		want      error // nil: granted; errWait: blocks
	}{
		{name: "fits", held: 30, n: 40},
		{name: "fits though others hold", held: 10, heldOther: 40, n: 40},
		{name: "never fits while held", held: 30, heldOther: 40, inFlight: 20, n: 40, want: ErrHeld},
		{name: "request over the budget", held: 1, n: 200, want: ErrHeld},
		{name: "waits for in-flight bytes", held: 30, inFlight: 60, n: 40, want: errWait},
		{name: "nothing in flight, does not fit", held: 30, heldOther: 40, n: 31, want: ErrHeld},
		{name: "nothing in flight, another waits", held: 30, heldOther: 40, waiter: 50, n: 10, want: ErrHeld},
		{name: "in flight, another waits", held: 10, inFlight: 50, waiter: 50, n: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(100)
			b.Hold("a", tt.held)
			b.Hold("b", tt.heldOther)
			if tt.inFlight > 0 {
				if err := b.Acquire(ctx, "c", tt.inFlight); err != nil {
					t.Fatal(err)
				}
			}
			if b.Used() != tt.held+tt.heldOther+tt.inFlight || b.Held() != tt.held+tt.heldOther || b.UsedBy("a") != tt.held {
				t.Fatalf("used %d held %d", b.Used(), b.Held())
			}
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			if tt.waiter > 0 {
				go func() {
					if b.Acquire(wctx, "d", tt.waiter) == nil {
						b.Release("d", tt.waiter)
					}
				}()
				waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 1 })
			}
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			err := b.AcquireHolding(cctx, "a", tt.n)
			if errors.Is(err, context.DeadlineExceeded) {
				err = errWait
			}
			if !errors.Is(err, tt.want) && err != tt.want {
				t.Fatalf("AcquireHolding(%d) = %v, want %v", tt.n, err, tt.want)
			}
			if err == nil {
				b.Release("a", tt.n)
			}
			wcancel()
			b.Unhold("a", tt.held)
			b.Unhold("b", tt.heldOther)
			b.Release("c", tt.inFlight)
			waitFor(t, func() bool { return b.Used() == 0 && b.Held() == 0 })
		})
	}
}

var errWait = errors.New("waits")

// A holder blocked on in-flight bytes is told to let go once they are back and another
// request still waits for room only held bytes could make.
func TestAcquireHoldingWakesWhenInFlightDrains(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	b.Hold("a", 30)
	b.Hold("b", 30)
	if err := b.Acquire(ctx, "c", 30); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan error, 1)
	go func() { waiter <- b.Acquire(ctx, "d", 50) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 1 })
	got := make(chan error, 1)
	go func() { got <- b.AcquireHolding(ctx, "a", 20) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiting == 2 })
	b.Release("c", 30)
	select {
	case err := <-got:
		if !errors.Is(err, ErrHeld) {
			t.Fatalf("err = %v, want ErrHeld", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("holder still waiting with nothing in flight")
	}
	// Once it lets go, the waiter is served.
	b.Unhold("a", 30)
	if err := <-waiter; err != nil {
		t.Fatal(err)
	}
	b.Release("d", 50)
	b.Unhold("b", 30)
	if b.Used() != 0 || b.Held() != 0 {
		t.Fatalf("used %d held %d", b.Used(), b.Held())
	}
}
