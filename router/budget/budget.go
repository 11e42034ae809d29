// Package budget bounds the bytes the collector holds for lines with one global budget shared
// fairly by namespaces: bytes in flight (read but not yet acknowledged by Kafka) and bytes held
// (parts of lines waiting for their end). When Kafka is slow or down, reading pauses and memory
// stays flat, and one busy or failing namespace cannot take the whole budget while others wait.
//
// In-flight bytes come back by themselves once Kafka answers; held bytes only when their
// owner lets them go. So that held bytes can never leave every reader waiting, an owner asks
// with AcquireHolding, which tells it (ErrHeld) when only held bytes could make room: it then
// sends what it holds on and asks again.
package budget

import (
	"context"
	"errors"
	"sync"
)

// ErrHeld is returned by AcquireHolding when the request can be granted only once held bytes
// are let go: the caller should let go of what it holds (send it on) and ask again.
var ErrHeld = errors.New("budget: only held bytes can make room")

// Budget is a byte semaphore with per-namespace fair shares.
type Budget struct {
	mu      sync.Mutex
	total   int64
	used    int64 // in flight and held
	held    int64
	ns      map[string]*nsState
	waiting int           // namespaces with a blocked Acquire
	wake    chan struct{} // closed and replaced when bytes are released
}

type nsState struct {
	used    int64
	waiters int
}

// New returns a budget of total bytes.
func New(total int64) *Budget {
	return &Budget{total: total, ns: map[string]*nsState{}, wake: make(chan struct{})}
}

// Used returns the bytes held.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Held returns the bytes held (part of Used) by Hold.
func (b *Budget) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// UsedBy returns the bytes held by namespace ns.
func (b *Budget) UsedBy(ns string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.ns[ns]; s != nil {
		return s.used
	}
	return 0
}

// Waiting reports whether an Acquire of namespace ns is blocked.
func (b *Budget) Waiting(ns string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.ns[ns]
	return s != nil && s.waiters > 0
}

// Acquire blocks until n bytes can be held for namespace ns or ctx ends. A namespace may hold
// more than its fair share (total / namespaces holding or waiting) only while no other
// namespace waits. A request larger than the whole budget is granted when nothing else is held,
// so one giant line cannot deadlock the collector.
func (b *Budget) Acquire(ctx context.Context, ns string, n int64) error {
	return b.acquire(ctx, ns, n, false)
}

// AcquireHolding is Acquire for a caller that holds bytes (Hold). Instead of waiting for room
// that only held bytes could make, it returns ErrHeld: when the request cannot fit even with
// nothing in flight, or when nothing is in flight and a request (its own or another's) waits.
func (b *Budget) AcquireHolding(ctx context.Context, ns string, n int64) error {
	return b.acquire(ctx, ns, n, true)
}

func (b *Budget) acquire(ctx context.Context, ns string, n int64, holding bool) error {
	b.mu.Lock()
	s := b.ns[ns]
	if s == nil {
		s = &nsState{}
		b.ns[ns] = s
	}
	for {
		if holding {
			others := b.waiting
			if s.waiters > 0 {
				others--
			}
			idle := b.used == b.held // nothing in flight: no release will come by itself
			if b.held+n > b.total || idle && (others > 0 || !b.fits(s, n)) {
				b.forget(ns, s)
				b.mu.Unlock()
				return ErrHeld
			}
		}
		if b.fits(s, n) {
			break
		}
		if s.waiters == 0 {
			b.waiting++
		}
		s.waiters++
		wake := b.wake
		b.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-wake:
		}
		b.mu.Lock()
		s.waiters--
		if s.waiters == 0 {
			b.waiting--
		}
		if err != nil {
			b.forget(ns, s)
			b.mu.Unlock()
			return err
		}
	}
	s.used += n
	b.used += n
	b.mu.Unlock()
	return nil
}

func (b *Budget) fits(s *nsState, n int64) bool {
	if b.used == 0 {
		return true
	}
	if b.used+n > b.total {
		return false
	}
	if s.used == 0 {
		// A namespace holding nothing may always take one request: with many namespaces a
		// fair share can be smaller than one read, and no namespace would ever fit it.
		return true
	}
	others := b.waiting
	if s.waiters > 0 {
		others--
	}
	if others == 0 {
		return true
	}
	active := int64(0)
	for _, o := range b.ns {
		if o.used > 0 || o.waiters > 0 || o == s {
			active++
		}
	}
	return s.used+n <= b.total/active
}

// Force holds n more bytes for ns without waiting: for memory already allocated (a chunk that
// came out larger than its reservation), so the budget says what is really held and further
// reads wait.
func (b *Budget) Force(ns string, n int64) {
	b.mu.Lock()
	b.force(ns, n)
	b.mu.Unlock()
}

func (b *Budget) force(ns string, n int64) {
	s := b.ns[ns]
	if s == nil {
		s = &nsState{}
		b.ns[ns] = s
	}
	s.used += n
	b.used += n
}

// Hold counts n more bytes held for ns without waiting: memory a reader keeps between reads (a
// line waiting for its end), already allocated. Held bytes come back only with Unhold.
func (b *Budget) Hold(ns string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.force(ns, n)
	b.held += n
	b.mu.Unlock()
}

// Unhold returns n bytes counted by Hold.
func (b *Budget) Unhold(ns string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	if b.held < n {
		b.mu.Unlock()
		panic("budget: unhold of bytes not held")
	}
	b.held -= n
	b.release(ns, n)
}

// Release returns n bytes acquired or forced for namespace ns.
func (b *Budget) Release(ns string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.release(ns, n)
}

// release returns n bytes of ns and unlocks b.mu.
func (b *Budget) release(ns string, n int64) {
	s := b.ns[ns]
	if s == nil || s.used < n {
		b.mu.Unlock()
		panic("budget: release of bytes not acquired")
	}
	s.used -= n
	b.used -= n
	b.forget(ns, s)
	if b.waiting > 0 {
		close(b.wake)
		b.wake = make(chan struct{})
	}
	b.mu.Unlock()
}

func (b *Budget) forget(ns string, s *nsState) {
	if s.used == 0 && s.waiters == 0 {
		delete(b.ns, ns)
	}
}
