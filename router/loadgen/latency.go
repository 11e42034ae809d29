package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
)

// Latencies are write-to-consume latencies of live lines, rounded to milliseconds.
type Latencies struct {
	P50, P99, Max time.Duration
	N, Sent       int // lines that arrived, lines written
}

// LiveLatency measures write -> collector -> Kafka -> consumer: it consumes the topics that
// match the regular expression topics from their end, writes rate LiveMessages of about size
// bytes per second for seconds over conts (round robin, paced every 10 ms), and takes each one's
// latency when it arrives, waiting up to 10 s after the last write.
func LiveLatency(ctx context.Context, brokers, topics string, conts []*Container, seconds, rate, size int) (Latencies, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(topics),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		return Latencies{}, err
	}
	defer cl.Close()
	// Let the consumer join every partition at its end before writing.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cl.PollFetches(pctx)
	cancel()
	sent := seconds * rate
	var lats []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Duration(seconds)*time.Second + 10*time.Second)
		for time.Now().Before(deadline) && len(lats) < sent && ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if rec, err := record.Decode(r.Value); err == nil {
					if wt, ok := LiveWriteTime(rec.Message); ok {
						lats = append(lats, now.Sub(wt))
					}
				}
			})
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var werr error
	start := time.Now()
	for i := 0; i < sent && werr == nil; {
		<-tick.C
		// As many as the rate allows by now: also right for rates below 100 lines/s.
		for target := min(sent, int(time.Since(start).Seconds()*float64(rate))); i < target && werr == nil; i++ {
			now := time.Now()
			werr = conts[i%len(conts)].Write(now, "stdout", LiveMessage(now, i, size))
		}
	}
	<-done
	if werr != nil {
		return Latencies{}, werr
	}
	if len(lats) == 0 {
		return Latencies{}, errors.New("loadgen: no live line arrived")
	}
	slices.Sort(lats)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return Latencies{P50: ms(lats[len(lats)/2]), P99: ms(lats[len(lats)*99/100]), Max: ms(lats[len(lats)-1]), N: len(lats), Sent: sent}, nil
}

func (l Latencies) String() string {
	return fmt.Sprintf("p50 %s p99 %s max %s (%d of %d lines)", l.P50, l.P99, l.Max, l.N, l.Sent)
}
