package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
)

// benchEnv is a gateway over kfake preloaded with n records of about 300 bytes in logs.bench.
func benchEnv(b *testing.B, n, partitions int) (*gwEnv, string) {
	b.Helper()
	e := startGateway(b, int32(partitions), func(c *api.Config, _ *[]api.Option) {
		c.MaxStreamsPerToken = 0
		c.BytesPerSecond = 0
	})
	e.createTopic("logs.bench", int32(partitions))
	const batch = 10000
	ctx := context.Background()
	msg := strings.Repeat("x", 120)
	for i := 0; i < n; i += batch {
		rs := make([]*kgo.Record, 0, batch)
		now := time.Now()
		for j := i; j < min(i+batch, n); j++ {
			rs = append(rs, testRecord(line{ns: "bench", pod: "web-1", container: "app", msg: fmt.Sprintf("%s %08d", msg, j), partition: int32(j % partitions)}, now))
		}
		if err := e.kcl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	secret, _ := e.token(token.Spec{Namespaces: []string{"bench"}})
	return e, secret
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// streamCount reads an NDJSON/SSE stream from earliest until want records arrived, then
// disconnects; it returns how many record events it saw (counting lines, not parsing them, so the client costs little).
func streamCount(base, secret, accept string, want int) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/namespaces/bench/logs?from=earliest", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	marker := []byte(`{"type":"record"`)
	if accept == "text/event-stream" {
		marker = []byte("\ndata: ")
	}
	n := 0
	buf := make([]byte, 256<<10)
	var carry []byte
	for {
		k, err := resp.Body.Read(buf)
		chunk := append(carry, buf[:k]...)
		n += bytes.Count(chunk, marker)
		// Keep a tail so a marker split across reads is counted once.
		if len(chunk) >= len(marker) {
			carry = append(carry[:0], chunk[len(chunk)-len(marker)+1:]...)
		} else {
			carry = append(carry[:0], chunk...)
		}
		if n >= want || err == io.EOF {
			return n, nil // the client leaves once it has what it wanted
		}
		if err != nil {
			return n, err
		}
	}
}

// BenchmarkGatewayStreamOneClient: one client streams 200,000 records from earliest.
func BenchmarkGatewayStreamOneClient(b *testing.B) {
	const records = 200000
	e, secret := benchEnv(b, records, 3)
	for _, accept := range []string{"application/x-ndjson", "text/event-stream"} {
		b.Run(strings.TrimPrefix(strings.TrimPrefix(accept, "application/"), "text/"), func(b *testing.B) {
			cpu0, t0 := cpuTime(), time.Now()
			for i := 0; i < b.N; i++ {
				n, err := streamCount(e.base, secret, accept, records)
				if err != nil || n != records {
					b.Fatalf("got %d records, %v", n, err)
				}
			}
			el, cpu := time.Since(t0), cpuTime()-cpu0
			total := float64(records * b.N)
			b.ReportMetric(total/el.Seconds(), "records/s")
			b.ReportMetric(total/cpu.Seconds(), "records/cpu-s")
		})
	}
}

// BenchmarkGatewayStream100Clients: 100 concurrent clients each stream 20,000 records.
func BenchmarkGatewayStream100Clients(b *testing.B) {
	const records, clients = 20000, 100
	e, secret := benchEnv(b, records, 3)
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = clients
	// Peak live heap (as of the last GC) while the streams run, broker data included, sampled
	// every 100 ms; and peak heap in use (live plus garbage not yet collected).
	var peak, peakLive uint64
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			metrics.Read(live)
			peakLive = max(peakLive, live[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	cpu0, t0 := cpuTime(), time.Now()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := streamCount(e.base, secret, "application/x-ndjson", records)
				if err == nil && n != records {
					err = fmt.Errorf("got %d records", n)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(t0), cpuTime()-cpu0
	close(stop)
	<-sampled
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-inuse-MiB")
	b.ReportMetric(float64(peakLive)/(1<<20), "peak-heap-live-MiB")
	total := float64(records * clients * b.N)
	b.ReportMetric(total/el.Seconds(), "records/s")
	b.ReportMetric(total/cpu.Seconds(), "records/cpu-s")
}
