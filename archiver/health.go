package archiver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Readiness thresholds: one failure or a few seconds without a broker are ordinary (retries
// and reconnects cure them); more means the archiver is not archiving.
const (
	unreadyUploadFailures = 5
	kafkaUnreachableAfter = 20 * time.Second
)

// health is what Ready and the health metrics report. It has its own lock so that a readiness
// probe never waits for the archiver's main lock.
type health struct {
	mu sync.Mutex
	// uploadFailures counts failed archive attempts since the last success, of any range.
	uploadFailures int
	lastUploadErr  error
	// kafkaOK is the last successful round trip to a broker (the group's heartbeats make one
	// every few seconds while Kafka is up); kafkaErr the last failure since.
	kafkaOK  time.Time
	kafkaErr error
	// kafkaGrace is kafkaUnreachableAfter (tests shorten it).
	kafkaGrace time.Duration
}

func newHealth(now time.Time) *health {
	return &health{kafkaOK: now, kafkaGrace: kafkaUnreachableAfter}
}

// Ready reports whether the archiver is archiving: nil, or why not, for /readyz. It is cheap.
func (a *Archiver) Ready() error {
	h := a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if h.uploadFailures >= unreadyUploadFailures {
		errs = append(errs, fmt.Errorf("%d consecutive upload failures: %v", h.uploadFailures, h.lastUploadErr))
	}
	if d := time.Since(h.kafkaOK); d >= h.kafkaGrace {
		err := fmt.Errorf("cannot reach Kafka for %v", d.Truncate(time.Second))
		if h.kafkaErr != nil {
			err = fmt.Errorf("%w: %v", err, h.kafkaErr)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// uploadResult records the outcome of one archive attempt.
func (a *Archiver) uploadResult(err error) {
	h := a.health
	h.mu.Lock()
	if err == nil {
		h.uploadFailures, h.lastUploadErr = 0, nil
	} else {
		h.uploadFailures++
		h.lastUploadErr = err
	}
	n := h.uploadFailures
	h.mu.Unlock()
	a.m.uploadFailures.Set(float64(n))
}

func (h *health) kafkaContactAge() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Since(h.kafkaOK).Seconds()
}

// OnBrokerE2E implements kgo.HookBrokerE2E: every answered request proves Kafka reachable.
func (h *health) OnBrokerE2E(_ kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	h.kafkaRoundTrip(e2e.Err())
}

// OnBrokerConnect implements kgo.HookBrokerConnect: while brokers are down, dials fail.
func (h *health) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.kafkaRoundTrip(err)
	}
}

func (h *health) kafkaRoundTrip(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.kafkaOK, h.kafkaErr = time.Now(), nil
	} else {
		h.kafkaErr = err
	}
}

// oldestUnarchivedAge is how long ago (Kafka time) the oldest record this archiver holds but has
// not archived yet was written: 0 when it holds none.
func (a *Archiver) oldestUnarchivedAge() float64 {
	a.mu.Lock()
	oldest := int64(-1)
	for _, p := range a.parts {
		if !p.owned {
			continue
		}
		// The first range of the current generation (pending[0] may be an abandoned upload
		// in flight) holds the partition's oldest unarchived record.
		for _, s := range append(p.pending, p.cur) {
			if s != nil && s.gen == p.gen {
				if oldest < 0 || s.firstMs < oldest {
					oldest = s.firstMs
				}
				break
			}
		}
	}
	a.mu.Unlock()
	if oldest < 0 {
		return 0
	}
	return max(0, time.Since(time.UnixMilli(oldest)).Seconds())
}
