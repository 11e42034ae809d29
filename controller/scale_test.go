package controller

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

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
// LOGROUTER_BENCH_PIPELINES and LOGROUTER_BENCH_NAMESPACES change the size (5,000 in 2,000).
func BenchmarkControllerScale(b *testing.B) {
	pipelines := envInt("LOGROUTER_BENCH_PIPELINES", 5000)
	namespaces := envInt("LOGROUTER_BENCH_NAMESPACES", 2000)
	e := startEnv(b)
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
	r := e.start(b, 10*time.Second)
	first := wait(r, "first start", func() bool {
		return sumCounter(b, r.reg, "logrouter_controller_status_writes_total") >= float64(pipelines)
	})
	b.Logf("first start: %v reconciles, %s", sumCounter(b, r.reg, "logrouter_controller_reconciles_total"), histSum(b, r.reg))
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
	b.StopTimer()

	slices.Sort(changes)
	b.ReportMetric(first.Seconds(), "first_start_s")
	b.ReportMetric(restart.Seconds(), "restart_s")
	b.ReportMetric(writes, "restart_status_writes")
	b.ReportMetric(changes[len(changes)-1].Seconds()*1000, "change_max_ms")
	b.ReportMetric(changes[len(changes)/2].Seconds()*1000, "change_median_ms")
	b.ReportMetric(float64(after-before)/(1<<20), "controller_heap_MiB")
	b.Logf("pipelines %d namespaces %d: first start %v, restart %v (%v status writes), one change %v (max of %d), controller heap %.1f MiB",
		pipelines, namespaces, first.Round(time.Millisecond), restart.Round(time.Millisecond), writes, changes[len(changes)-1].Round(time.Millisecond), len(changes), float64(after-before)/(1<<20))
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
