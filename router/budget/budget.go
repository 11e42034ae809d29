// Package budget bounds the bytes the collector holds in flight (read but not yet acknowledged
// by Kafka) with one global budget shared fairly by namespaces: when Kafka is slow or down,
// reading pauses and memory stays flat, and one busy or failing namespace cannot take the whole
// budget while others wait.
package budget

import (
	"context"
	"sync"
)

// Budget is a byte semaphore with per-namespace fair shares.
type Budget struct {
	mu      sync.Mutex
	total   int64
	used    int64
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

// UsedBy returns the bytes held by namespace ns.
func (b *Budget) UsedBy(ns string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.ns[ns]; s != nil {
		return s.used
	}
	return 0
}

// Acquire blocks until n bytes can be held for namespace ns or ctx ends. A namespace may hold
// more than its fair share (total / namespaces holding or waiting) only while no other
// namespace waits. A request larger than the whole budget is granted when nothing else is held,
// so one giant line cannot deadlock the collector.
func (b *Budget) Acquire(ctx context.Context, ns string, n int64) error {
	b.mu.Lock()
	s := b.ns[ns]
	if s == nil {
		s = &nsState{}
		b.ns[ns] = s
	}
	for !b.fits(s, n) {
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
	s := b.ns[ns]
	if s == nil {
		s = &nsState{}
		b.ns[ns] = s
	}
	s.used += n
	b.used += n
	b.mu.Unlock()
}

// Release returns n bytes held for namespace ns.
func (b *Budget) Release(ns string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
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
