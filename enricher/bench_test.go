package enricher

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/router/filemeta"
)

// benchPod is fullPod (a realistic Deployment pod as the API returns it) made unique.
func benchPod(i int) *corev1.Pod {
	p := fullPod()
	p.Name = fmt.Sprintf("web-5d8f7c9b6-%05d", i)
	p.UID = types.UID(fmt.Sprintf("3f0c8a5e-0d7b-4a51-9c56-%012d", i))
	p.Namespace = fmt.Sprintf("ns-%d", i%50)
	return p
}

// benchEnricher fills an enricher the way the informer does (transform, store, handler) with
// n pods and opens one file per pod. Run is not started: no API server is involved.
func benchEnricher(tb testing.TB, n int) (*Enricher, []filemeta.Handle, cache.Indexer) {
	cfg := DefaultConfig()
	cfg.NodeName = node
	e, err := New(cfg, fake.NewClientset(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tr := podTransform(allowlist.MustParse(cfg.PodLabels), allowlist.MustParse(cfg.PodAnnotations))
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	nsTr := namespaceTransform(allowlist.MustParse(cfg.NamespaceLabels))
	for i := range 50 {
		ns, _ := nsTr(namespace(fmt.Sprintf("ns-%d", i), map[string]string{"team": "t", "tier": "gold"}, nil))
		e.namespaceChanged(ns)
	}
	hs := make([]filemeta.Handle, 0, n)
	for i := range n {
		obj, _ := tr(benchPod(i))
		if err := store.Add(obj); err != nil {
			tb.Fatal(err)
		}
		e.podChanged(nil, obj)
		p := obj.(*podMeta)
		hs = append(hs, e.Open(filemeta.PathMeta{Namespace: p.Namespace, Pod: p.Name, PodUID: string(p.UID), Container: "app",
			ContainerID: "containerd://" + string(p.UID), File: "/var/log/pods/" + p.Namespace + "_" + p.Name + "_" + string(p.UID) + "/app/0.log"}))
	}
	return e, hs, store
}

// BenchmarkLoad is the per-line cost of enrichment for the collector: one Load per read chunk
// (here: per line, the worst case), round-robin over every open file.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{110, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			_, hs, _ := benchEnricher(b, n)
			i := 0
			var s *filemeta.Snapshot
			for b.Loop() {
				s = hs[i].Load()
				i++
				if i == len(hs) {
					i = 0
				}
			}
			if s == nil {
				b.Fatal("nil snapshot")
			}
		})
	}
}

// BenchmarkLoadAndCopy adds the copy of the snapshot's fragment into the record value, the
// rest of what metadata costs per line.
func BenchmarkLoadAndCopy(b *testing.B) {
	for _, n := range []int{110, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			_, hs, _ := benchEnricher(b, n)
			buf := make([]byte, 0, 4096)
			frag := len(hs[0].Load().Fragment)
			i := 0
			for b.Loop() {
				buf = append(buf[:0], hs[i].Load().Fragment...)
				i++
				if i == len(hs) {
					i = 0
				}
			}
			b.ReportMetric(float64(frag), "fragment-bytes")
		})
	}
}

// BenchmarkCacheMemory reports the heap the metadata of one pod takes: the informer's store
// of transformed pods plus the enricher's entries ("cache-B/pod"), plus one open file's
// rendered snapshot ("with-file-B/pod"); and, for comparison, an untransformed pod
// ("full-pod-B").
func BenchmarkCacheMemory(b *testing.B) {
	for _, n := range []int{110, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			var cacheB, fileB, fullB float64
			for b.Loop() {
				cacheB, fileB, fullB = cacheMemory(b, n)
			}
			b.ReportMetric(cacheB, "cache-B/pod")
			b.ReportMetric(fileB, "with-file-B/pod")
			b.ReportMetric(fullB, "full-pod-B")
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func cacheMemory(tb testing.TB, n int) (cacheB, fileB, fullB float64) {
	cfg := DefaultConfig()
	cfg.NodeName = node
	e, err := New(cfg, fake.NewClientset(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tr := podTransform(allowlist.MustParse(cfg.PodLabels), allowlist.MustParse(cfg.PodAnnotations))
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})

	before := heap()
	full := make([]*corev1.Pod, n)
	for i := range n {
		full[i] = benchPod(i)
	}
	fullB = float64(heap()-before) / float64(n)
	runtime.KeepAlive(full)
	full = nil

	before = heap()
	pods := make([]*podMeta, 0, n)
	for i := range n {
		obj, _ := tr(benchPod(i))
		if err := store.Add(obj); err != nil {
			tb.Fatal(err)
		}
		e.podChanged(nil, obj)
		pods = append(pods, obj.(*podMeta))
	}
	cacheB = float64(heap()-before) / float64(n)

	hs := make([]filemeta.Handle, 0, n)
	for _, p := range pods {
		hs = append(hs, e.Open(filemeta.PathMeta{Namespace: p.Namespace, Pod: p.Name, PodUID: string(p.UID), Container: "app",
			ContainerID: "containerd://" + string(p.UID), File: "/var/log/pods/" + p.Namespace + "_" + p.Name + "_" + string(p.UID) + "/app/0.log"}))
	}
	pods = nil
	fileB = float64(heap()-before) / float64(n)
	runtime.KeepAlive(hs)
	runtime.KeepAlive(store)
	runtime.KeepAlive(e)
	_ = full
	_ = pods
	return cacheB, fileB, fullB
}

// TestBenchmarkSetup keeps the benchmark's setup honest in ordinary test runs: every file
// gets its pod's full metadata.
func TestBenchmarkSetup(t *testing.T) {
	_, hs, store := benchEnricher(t, 110)
	if len(store.List()) != 110 {
		t.Fatalf("store has %d pods", len(store.List()))
	}
	for _, h := range hs {
		if !enriched(h)() {
			t.Fatalf("file not enriched: %v", h.Load())
		}
	}
	if k := decode(t, hs[0].Load()).Kubernetes; k.OwnerKind != "Deployment" || k.NamespaceLabels["tier"] != "gold" {
		t.Errorf("k8s = %+v", k)
	}
}

// BenchmarkPodUpdate is the cost of a pod change that records carry (a label change): the
// event handler re-renders the snapshot of each of the pod's open files (2 here). Status-only
// updates, the common kind, stop at the comparison (BenchmarkPodStatusUpdate).
func BenchmarkPodUpdate(b *testing.B) {
	e, _, _ := benchEnricher(b, 110)
	tr := podTransform(allowlist.MustParse("*"), allowlist.MustParse(AnnotationPrefix+"*"))
	p := benchPod(7)
	e.Open(filemeta.PathMeta{Namespace: p.Namespace, Pod: p.Name, PodUID: string(p.UID), Container: "proxy"})
	objs := [2]any{}
	for i := range objs {
		q := benchPod(7)
		q.Labels["version"] = fmt.Sprint(i)
		objs[i], _ = tr(q)
	}
	i := 0
	for b.Loop() {
		e.podChanged(objs[i], objs[1-i])
		i = 1 - i
	}
}

func BenchmarkPodStatusUpdate(b *testing.B) {
	e, _, _ := benchEnricher(b, 110)
	tr := podTransform(allowlist.MustParse("*"), allowlist.MustParse(AnnotationPrefix+"*"))
	a, _ := tr(benchPod(7))
	c, _ := tr(benchPod(7))
	for b.Loop() {
		e.podChanged(a, c)
	}
}
