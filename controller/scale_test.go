package controller

import (
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// scaleObjects returns namespaces prefix-0... and pipelines spread over them round-robin
// (namespaces first, so that they exist before their pipelines).
func scaleObjects(prefix string, namespaces, pipelines int) []client.Object {
	var objs []client.Object
	for i := range namespaces {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)}})
	}
	for i := range pipelines {
		ns := fmt.Sprintf("%s-%d", prefix, i%namespaces)
		objs = append(objs, regexPipeline(ns, fmt.Sprintf("p-%d", i), goodRegex, "", 0))
	}
	return objs
}

// createMany creates objects with a few concurrent clients: namespaces first.
func (e *env) createMany(t testing.TB, objs []client.Object) {
	t.Helper()
	var nss, rest []client.Object
	for _, o := range objs {
		if _, ok := o.(*corev1.Namespace); ok {
			nss = append(nss, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, batch := range [][]client.Object{nss, rest} {
		ch := make(chan client.Object)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for o := range ch {
					if err := e.c.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("create %s/%s: %w", o.GetNamespace(), o.GetName(), err)
						}
						mu.Unlock()
					}
				}
			}()
		}
		for _, o := range batch {
			ch <- o
		}
		close(ch)
		wg.Wait()
		if firstErr != nil {
			t.Fatal(firstErr)
		}
	}
}

// sumCounter sums a counter family's children in reg.
func sumCounter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkControllerScale measures, against the real kube-apiserver, the time to reconcile
// every pipeline after a controller start (first: every status written; restart: nothing to
// write), the time for one change to reach its status, and the controller's heap. Run once:
//
//	go test -run '^$' -bench BenchmarkControllerScale -benchtime 1x ./controller/
//
// LOGROUTER_BENCH_PIPELINES and LOGROUTER_BENCH_NAMESPACES change the size (5,000 in 2,000);
// LOGROUTER_BENCH_WORKERS and LOGROUTER_BENCH_KUBE_QPS the controller's --workers and
// --kube-api-qps (burst twice that), for experiments.
func BenchmarkControllerScale(b *testing.B) {
	pipelines := envInt("LOGROUTER_BENCH_PIPELINES", 5000)
	namespaces := envInt("LOGROUTER_BENCH_NAMESPACES", 2000)
	e := startEnv(b)
	// Experiments only (the figures in docs/benchmarks.md are of the defaults).
	workers, qps := envInt("LOGROUTER_BENCH_WORKERS", 0), envInt("LOGROUTER_BENCH_KUBE_QPS", 0)
	e.tune = func(c *Config) {
		if workers > 0 {
			c.Workers = workers
		}
		if qps > 0 {
			c.KubeQPS, c.KubeBurst = float64(qps), 2*qps
		}
		b.Logf("controller: %d workers, %v QPS (burst %d) to the API server", c.Workers, c.KubeQPS, c.KubeBurst)
	}
	ctx := context.Background()
	began := time.Now()
	e.createMany(b, scaleObjects("bench", namespaces, pipelines))
	b.Logf("created %d pipelines in %d namespaces in %v", pipelines, namespaces, time.Since(began).Round(time.Millisecond))

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	b.ResetTimer()
	wait := func(r *running, what string, done func() bool) time.Duration {
		start := time.Now()
		for !done() {
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%s: not done after 10 minutes", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	// First start: every pipeline needs its status written.
	cpu0 := cpuSeconds(b)
	r := e.start(b, 10*time.Second)
	first := wait(r, "first start", func() bool {
		return sumCounter(b, r.reg, "logrouter_controller_status_writes_total") >= float64(pipelines)
	})
	cpu := cpuSeconds(b).since(cpu0)
	b.Logf("first start: %v reconciles, %s; CPU-seconds during it: %s (of %.1f on %d cores)", sumCounter(b, r.reg, "logrouter_controller_reconciles_total"), histSum(b, r.reg),
		cpu, first.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU())
	after := heap()
	var l v1alpha1.LogPipelineList
	if err := e.c.List(ctx, &l); err != nil {
		b.Fatal(err)
	}
	for _, p := range l.Items {
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			b.Fatalf("%s/%s not ready: %+v", p.Namespace, p.Name, p.Status)
		}
	}

	// One change among them, five times.
	var changes []time.Duration
	for i := range 5 {
		var lp v1alpha1.LogPipeline
		key := types.NamespacedName{Namespace: fmt.Sprintf("bench-%d", (i*397)%namespaces), Name: fmt.Sprintf("p-%d", (i*397)%namespaces)}
		if err := e.c.Get(ctx, key, &lp); err != nil {
			b.Fatal(err)
		}
		pattern := badRegex
		if i%2 == 1 {
			pattern = goodRegex
		}
		lp.Spec.Steps[0].Regex.Pattern = pattern
		t0 := time.Now()
		if err := e.c.Update(ctx, &lp); err != nil {
			b.Fatal(err)
		}
		gen := lp.Generation
		for {
			var got v1alpha1.LogPipeline
			if err := e.c.Get(ctx, key, &got); err != nil {
				b.Fatal(err)
			}
			if got.Status.ObservedGeneration == gen {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		changes = append(changes, time.Since(t0))
	}

	// Restart: a new instance reconciles everything and has nothing to write.
	r.stop(b)
	r2 := e.start(b, 10*time.Second)
	restart := wait(r2, "restart", func() bool {
		return sumCounter(b, r2.reg, "logrouter_controller_reconciles_total") >= float64(pipelines)
	})
	writes := sumCounter(b, r2.reg, "logrouter_controller_status_writes_total")
	r2.stop(b)

	// The API server alone: the same number of status patches, each as large as a first
	// start's (conditions, observedGeneration, accepted), from 16 goroutines through a client
	// without a rate limit. Its time is the floor of any controller's first start.
	bare, bareCPU := bareStatusPatches(b, e, l.Items)
	b.Logf("bare status patches: %d in %v; CPU-seconds during them: %s", len(l.Items), bare.Round(time.Millisecond), bareCPU)
	b.StopTimer()

	slices.Sort(changes)
	b.ReportMetric(first.Seconds(), "first_start_s")
	b.ReportMetric(restart.Seconds(), "restart_s")
	b.ReportMetric(writes, "restart_status_writes")
	b.ReportMetric(bare.Seconds(), "bare_patches_s")
	b.ReportMetric(changes[len(changes)-1].Seconds()*1000, "change_max_ms")
	b.ReportMetric(changes[len(changes)/2].Seconds()*1000, "change_median_ms")
	b.ReportMetric(float64(after-before)/(1<<20), "controller_heap_MiB")
	b.Logf("pipelines %d namespaces %d: first start %v, restart %v (%v status writes), one change %v (max of %d), controller heap %.1f MiB",
		pipelines, namespaces, first.Round(time.Millisecond), restart.Round(time.Millisecond), writes, changes[len(changes)-1].Round(time.Millisecond), len(changes), float64(after-before)/(1<<20))
}

// bareStatusPatches patches the status of every item (a new Ready message, so that every
// patch is a real write) with the fields a first start writes, 16 at a time.
func bareStatusPatches(b *testing.B, e *env, items []v1alpha1.LogPipeline) (time.Duration, cpuUse) {
	b.Helper()
	rc := rest.CopyConfig(e.rc)
	rc.QPS, rc.Burst = 1e6, 1e6
	scheme, err := Scheme()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan *v1alpha1.LogPipeline)
	var wg sync.WaitGroup
	var failed atomic.Int64
	cpu0 := cpuSeconds(b)
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				base := p.DeepCopy()
				base.Status.Conditions, base.Status.Accepted, base.Status.ObservedGeneration = nil, nil, 0
				for i := range p.Status.Conditions {
					p.Status.Conditions[i].Message += " (bench)"
				}
				if err := cl.Status().Patch(context.Background(), p, client.MergeFrom(base)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range items {
		ch <- &items[i]
	}
	close(ch)
	wg.Wait()
	took := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d bare status patches failed", n)
	}
	return took, cpuSeconds(b).since(cpu0)
}

// cpuUse is CPU-seconds by process: this test process (the controller, kfake) and its
// children (kube-apiserver, etcd), read from /proc; the whole machine's from /proc/stat.
type cpuUse map[string]float64

// cpuSeconds reads cpuUse now (Linux: clock ticks of 1/100 s).
func cpuSeconds(t testing.TB) cpuUse {
	t.Helper()
	const tick = 100.0
	out := cpuUse{}
	stat := func(path string) (comm string, ppid int, sec float64, ok bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", 0, 0, false
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			return "", 0, 0, false
		}
		f := strings.Fields(s[close+2:])
		if len(f) < 13 {
			return "", 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return s[open+1 : close], ppid, (ut + st) / tick, true
	}
	if _, _, sec, ok := stat("/proc/self/stat"); ok {
		out["test process (controller, kfake)"] = sec
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if pid, err := strconv.Atoi(d.Name()); err == nil {
			if comm, ppid, sec, ok := stat(fmt.Sprintf("/proc/%d/stat", pid)); ok && ppid == os.Getpid() {
				out[comm] += sec
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		busy := 0.0
		for i, v := range f[1:] {
			if n, err := strconv.ParseFloat(v, 64); err == nil && i != 3 && i != 4 { // not idle, iowait
				busy += n / tick
			}
		}
		out["machine (every process)"] = busy
	}
	return out
}

func (c cpuUse) since(before cpuUse) cpuUse {
	out := cpuUse{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

func (c cpuUse) String() string {
	keys := slices.Sorted(maps.Keys(c))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1f", k, c[k])
	}
	return strings.Join(parts, ", ")
}

// histSum describes the reconcile duration histogram.
func histSum(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "logrouter_controller_reconcile_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			return fmt.Sprintf("mean reconcile %.1f ms", 1000*h.GetSampleSum()/float64(max(h.GetSampleCount(), 1)))
		}
	}
	return ""
}
