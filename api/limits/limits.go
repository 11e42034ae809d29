// Package limits enforces per-principal budgets: concurrent streams and bytes per second.
// A principal over either budget is refused with 429 and a Retry-After; an admitted stream is
// throttled (not cut) when it spends its byte budget faster than the rate.
package limits

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Errors returned by Acquire.
var (
	ErrTooManyStreams = errors.New("too many concurrent streams for this token")
	ErrRateLimited    = errors.New("byte budget exhausted for this token")
)

// Refusal is returned by Acquire with the seconds the client should wait.
type Refusal struct {
	Err        error
	RetryAfter int
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Config is the per-principal budget.
type Config struct {
	MaxStreams  int     // concurrent requests per principal; 0 = unlimited
	BytesPerSec float64 // sustained response bytes per second per principal; 0 = unlimited
	BurstBytes  int     // bucket size; defaults to one second's worth
}

// Limiter tracks every principal's budget. Entries of idle principals are dropped.
type Limiter struct {
	cfg Config
	mu  sync.Mutex
	m   map[string]*entry
	now func() time.Time
}

type entry struct {
	streams int
	lim     *rate.Limiter
	last    time.Time
}

// New returns a limiter.
func New(cfg Config) *Limiter {
	if cfg.BurstBytes <= 0 {
		cfg.BurstBytes = int(math.Min(cfg.BytesPerSec, math.MaxInt32))
	}
	return &Limiter{cfg: cfg, m: map[string]*entry{}, now: time.Now}
}

// Lease is one admitted request. Release it when the request ends.
type Lease struct {
	l    *Limiter
	key  string
	e    *entry
	once sync.Once
}

// Acquire admits one request of principal key, or returns a *Refusal.
func (l *Limiter) Acquire(key string) (*Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.m[key]
	if e == nil {
		e = &entry{}
		if l.cfg.BytesPerSec > 0 {
			e.lim = rate.NewLimiter(rate.Limit(l.cfg.BytesPerSec), l.cfg.BurstBytes)
		}
		l.m[key] = e
		l.gc(now)
	}
	e.last = now
	if l.cfg.MaxStreams > 0 && e.streams >= l.cfg.MaxStreams {
		return nil, &Refusal{Err: ErrTooManyStreams, RetryAfter: 5}
	}
	if e.lim != nil {
		if tok := e.lim.TokensAt(now); tok < 1 {
			// The bucket is in debt: refuse until it is back above zero.
			secs := int(math.Ceil((1 - tok) / l.cfg.BytesPerSec))
			return nil, &Refusal{Err: ErrRateLimited, RetryAfter: max(secs, 1)}
		}
	}
	e.streams++
	return &Lease{l: l, key: key, e: e}, nil
}

// gc drops idle entries; it runs under l.mu when a new principal arrives, so the map stays
// bounded by the principals active in the last minute.
func (l *Limiter) gc(now time.Time) {
	if len(l.m) < 1024 {
		return
	}
	for k, e := range l.m {
		if e.streams == 0 && now.Sub(e.last) > time.Minute {
			delete(l.m, k)
		}
	}
}

// Spend charges n bytes, waiting while the principal is over its rate. The bytes are charged
// even when ctx ends first, so a client that disconnects cannot reset its debt.
func (ls *Lease) Spend(ctx context.Context, n int) error {
	lim := ls.e.lim
	if lim == nil || n <= 0 {
		return nil
	}
	now := ls.l.now()
	var d time.Duration
	// Charges above the burst size are booked in burst-sized pieces; the last one carries the
	// longest delay.
	for rest := n; rest > 0; rest -= ls.l.cfg.BurstBytes {
		r := lim.ReserveN(now, min(rest, ls.l.cfg.BurstBytes))
		d = max(d, r.DelayFrom(now))
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release ends the request.
func (ls *Lease) Release() {
	ls.once.Do(func() {
		ls.l.mu.Lock()
		ls.e.streams--
		ls.e.last = ls.l.now()
		ls.l.mu.Unlock()
	})
}
