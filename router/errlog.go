package router

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// errLog logs one kind of error that can repeat (every scan, every file, every second) at a
// bounded rate; the metric next to it counts every occurrence. A line after a quiet period says
// how many were left out.
type errLog struct {
	log        *slog.Logger
	level      slog.Level
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// newErrLog allows a burst of 5 lines, then one per interval.
func newErrLog(log *slog.Logger, level slog.Level, interval time.Duration) *errLog {
	return &errLog{log: log, level: level, lim: rate.NewLimiter(rate.Every(interval), 5)}
}

func (e *errLog) Log(msg string, args ...any) {
	if !e.lim.Allow() {
		e.suppressed.Add(1)
		return
	}
	if n := e.suppressed.Swap(0); n > 0 {
		args = append(args, "similar_lines_suppressed", n)
	}
	e.log.Log(context.Background(), e.level, msg, args...)
}
