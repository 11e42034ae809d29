// Package enricher supplies Kubernetes metadata for the collector's log files: it implements
// filemeta.Provider from client-go shared informers (this node's pods, all namespaces), so every
// record carries the pod's UID, image, labels, selected annotations, owner workload and its
// namespace's labels, and a namespace can opt out (logrouter.io/exclude) or set its topic's
// retention (logrouter.io/retention).
//
// The collector never waits on the API server: Open and Load only touch memory, each file's
// snapshot is rendered when its pod or namespace changes and Load is one atomic pointer load.
// A file whose pod or namespace is not known yet is held back for at most Config.MetadataWait,
// then ships with what is known, marked partial, until the rest shows up. A deleted pod's metadata stays
// until its files are fully read (Handle.Close) plus Config.DeletedPodGrace.
package enricher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/logrouter/logrouter/enricher/allowlist"
	"github.com/logrouter/logrouter/enricher/retention"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router/filemeta"
)

// ErrAlreadyRunning is returned by a second call of Run.
var ErrAlreadyRunning = errors.New("enricher: already running")

// Enricher is the Kubernetes metadata provider. It is safe for concurrent use.
type Enricher struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time // a test clock in tests

	podFactory informers.SharedInformerFactory
	nsFactory  informers.SharedInformerFactory
	podsSynced cache.InformerSynced
	nsSynced   cache.InformerSynced
	running    atomic.Bool

	mu         sync.Mutex
	pods       map[types.UID]*podEntry
	podsByName map[string]types.UID // "ns/name" -> the newest pod of that name
	namespaces map[string]*nsEntry
	handles    map[string]map[*handle]struct{} // open files by namespace
	// Files not bound to a pod yet (waiting, or shipping partial), by the pod UID in their
	// path, or by "ns/name" when the path has none.
	waitUID  map[types.UID]map[*handle]struct{}
	waitName map[string]map[*handle]struct{}
}

// podEntry is a pod's metadata (shared with the informer's store) and its open files.
type podEntry struct {
	*podMeta
	handles  map[*handle]struct{}
	deleted  bool
	expireAt time.Time // set when deleted and no file is open
}

type nsEntry struct {
	labels    map[string]string
	excluded  bool
	retention time.Duration
	// raw annotation values, to report an invalid value once per change
	rawExclude, rawRetention string
	deleted                  bool
	expireAt                 time.Time
}

// New returns an enricher for cfg. It does not contact the API server: Run starts the
// informers. reg may be nil (metrics then go nowhere); log may be nil (discarded) and is used as
// given (the caller adds the component attribute).
func New(cfg Config, client kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (*Enricher, error) {
	if !cfg.Enabled {
		return nil, fmt.Errorf("%w: Enabled is false: use filemeta.PathOnly", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%w: nil Kubernetes client", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	podLabels := allowlist.MustParse(cfg.PodLabels) // validated above
	podAnn := allowlist.MustParse(cfg.PodAnnotations)
	nsLabels := allowlist.MustParse(cfg.NamespaceLabels)
	e := &Enricher{
		cfg: cfg, log: log, metrics: m, now: time.Now,
		pods:       map[types.UID]*podEntry{},
		podsByName: map[string]types.UID{},
		namespaces: map[string]*nsEntry{},
		handles:    map[string]map[*handle]struct{}{},
		waitUID:    map[types.UID]map[*handle]struct{}{},
		waitName:   map[string]map[*handle]struct{}{},
	}
	nodeSelector := fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	e.podFactory = informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = nodeSelector }),
		informers.WithTransform(podTransform(podLabels, podAnn)))
	e.nsFactory = informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTransform(namespaceTransform(nsLabels)))

	// The stores hold *podMeta and *nsMeta (see transform.go), not API types: the factories'
	// typed Listers must not be used on them.
	podInf := e.podFactory.Core().V1().Pods().Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.podChanged(nil, obj) },
		UpdateFunc: func(old, obj any) { e.podChanged(old, obj) },
		DeleteFunc: e.podDeleted,
	}); err != nil {
		return nil, fmt.Errorf("enricher: pod event handler: %w", err)
	}
	nsInf := e.nsFactory.Core().V1().Namespaces().Informer()
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    e.namespaceChanged,
		UpdateFunc: func(_, obj any) { e.namespaceChanged(obj) },
		DeleteFunc: e.namespaceDeleted,
	}); err != nil {
		return nil, fmt.Errorf("enricher: namespace event handler: %w", err)
	}
	for _, x := range []struct {
		inf      cache.SharedIndexInformer
		resource string
	}{{podInf, "pods"}, {nsInf, "namespaces"}} {
		if err := x.inf.SetWatchErrorHandlerWithContext(e.watchErrorHandler(x.resource)); err != nil {
			return nil, fmt.Errorf("enricher: %s watch error handler: %w", x.resource, err)
		}
	}
	e.podsSynced, e.nsSynced = podInf.HasSynced, nsInf.HasSynced
	return e, nil
}

// watchErrorHandler reports list/watch failures in the component's log and metrics instead of
// klog. The informer retries on its own, with client-go's backoff.
func (e *Enricher) watchErrorHandler(resource string) cache.WatchErrorHandlerWithContext {
	return func(_ context.Context, _ *cache.Reflector, err error) {
		switch {
		case errors.Is(err, io.EOF):
			return // the server closed the watch normally
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			e.log.Debug("watch expired, relisting", "resource", resource, "error", err.Error())
			return
		}
		e.metrics.apiErrors.WithLabelValues(resource).Inc()
		e.log.Warn("kubernetes list/watch failed; retrying, files ship with what is known",
			"resource", resource, "error", err.Error())
	}
}

// Run starts the informers and runs until ctx ends, then stops them and waits for their
// goroutines. An unreachable API server is not an error: the informers retry (with client-go's
// backoff) while files ship with path metadata.
func (e *Enricher) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	e.podFactory.Start(ctx.Done())
	e.nsFactory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() {
		// Polled here rather than with cache.WaitForCacheSync, which logs through klog.
		start := e.now()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for !e.Synced() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		e.metrics.synced.Set(1)
		e.log.Info("kubernetes metadata synced", "node", e.cfg.NodeName, "after", e.now().Sub(start).String())
	})
	tick := time.NewTicker(sweepInterval(e.cfg.DeletedPodGrace))
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			e.sweep()
		}
	}
	e.podFactory.Shutdown()
	e.nsFactory.Shutdown()
	wg.Wait()
	return nil
}

func sweepInterval(grace time.Duration) time.Duration {
	return min(max(grace/4, time.Second), 30*time.Second)
}

// Synced reports whether both informers have listed their resources once.
func (e *Enricher) Synced() bool { return e.podsSynced() && e.nsSynced() }

// handle is one open file. Fields after snap are guarded by Enricher.mu.
type handle struct {
	e    *Enricher
	m    filemeta.PathMeta
	key  string // Kafka key, fixed at Open so a file's lines never change partition
	snap atomic.Pointer[filemeta.Snapshot]

	pod     *podEntry // bound pod, nil while unknown
	expired bool      // the metadata wait is over
	closed  bool
	timer   *time.Timer
}

// Load implements filemeta.Handle: one atomic load.
func (h *handle) Load() *filemeta.Snapshot { return h.snap.Load() }

// Open implements filemeta.Provider.
func (e *Enricher) Open(m filemeta.PathMeta) filemeta.Handle {
	h := &handle{e: e, m: m, key: record.Key(m.ContainerID, m.PodUID, m.Namespace, m.Pod, m.Container)}
	e.mu.Lock()
	defer e.mu.Unlock()
	addTo(e.handles, m.Namespace, h)
	e.metrics.filesOpen.Inc()
	if p := e.lookup(m); p != nil {
		e.bind(h, p)
	} else if m.PodUID != "" {
		// Unbound files stay here after their wait expired, so the pod still binds them when
		// it shows up.
		addTo(e.waitUID, types.UID(m.PodUID), h)
	} else {
		addTo(e.waitName, m.Namespace+"/"+m.Pod, h)
	}
	if e.cfg.MetadataWait <= 0 {
		h.expired = true
	}
	e.render(h)
	switch {
	case h.snap.Load() == nil:
		e.metrics.filesWaiting.Inc()
		h.timer = time.AfterFunc(e.cfg.MetadataWait, h.waitExpired)
	case h.expired:
		e.shippedIncomplete(h)
	}
	return h
}

// lookup finds a file's pod: by the UID in its path, else by namespace/name.
func (e *Enricher) lookup(m filemeta.PathMeta) *podEntry {
	if m.PodUID != "" {
		return e.pods[types.UID(m.PodUID)]
	}
	if uid, ok := e.podsByName[m.Namespace+"/"+m.Pod]; ok {
		return e.pods[uid]
	}
	return nil
}

// bind attaches h to its pod for good: a name-only file keeps the pod it was bound to even
// when the name is reused.
func (e *Enricher) bind(h *handle, p *podEntry) {
	if h.m.PodUID != "" {
		removeFrom(e.waitUID, types.UID(h.m.PodUID), h)
	} else {
		removeFrom(e.waitName, h.m.Namespace+"/"+h.m.Pod, h)
	}
	h.pod = p
	if p.handles == nil {
		p.handles = map[*handle]struct{}{}
	}
	p.handles[h] = struct{}{}
	p.expireAt = time.Time{}
}

// stopWaiting ends h's bounded wait: it has a snapshot, or it is closed.
func (e *Enricher) stopWaiting(h *handle) {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
		e.metrics.filesWaiting.Dec()
	}
}

func (h *handle) waitExpired() {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.closed || h.timer == nil {
		return // closed, or the metadata came in time
	}
	e.stopWaiting(h)
	h.expired = true
	e.render(h)
	e.shippedIncomplete(h)
}

// shippedIncomplete counts and reports a file whose wait ended without full metadata.
func (e *Enricher) shippedIncomplete(h *handle) {
	s := h.snap.Load()
	if s == nil || s.Excluded {
		return
	}
	e.metrics.partialFiles.Inc()
	missing := "pod"
	if h.pod != nil {
		missing = "namespace"
	}
	e.log.Warn("no "+missing+" metadata in time: shipping with what is known",
		"namespace", h.m.Namespace, "pod", h.m.Pod, "pod_uid", h.m.PodUID, "container", h.m.Container,
		"waited", e.cfg.MetadataWait.String())
}

// Close implements filemeta.Handle.
func (h *handle) Close() {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	e.stopWaiting(h)
	removeFrom(e.handles, h.m.Namespace, h)
	e.metrics.filesOpen.Dec()
	if p := h.pod; p != nil {
		delete(p.handles, h)
		if p.deleted && len(p.handles) == 0 {
			p.expireAt = e.now().Add(e.cfg.DeletedPodGrace)
		}
	} else if h.m.PodUID != "" {
		removeFrom(e.waitUID, types.UID(h.m.PodUID), h)
	} else {
		removeFrom(e.waitName, h.m.Namespace+"/"+h.m.Pod, h)
	}
	if ns := e.namespaces[h.m.Namespace]; ns != nil && ns.deleted && len(e.handles[h.m.Namespace]) == 0 {
		ns.expireAt = e.now().Add(e.cfg.DeletedPodGrace)
	}
}

// render publishes h's snapshot, or nothing while h waits. A file waits (at most
// MetadataWait) for its pod and its namespace, so that its first lines already carry the
// namespace labels the topic template may route by. Once a file has a snapshot it never goes
// back to nil.
func (e *Enricher) render(h *handle) {
	ns := e.namespaces[h.m.Namespace]
	shipping := h.expired || h.snap.Load() != nil
	var s *filemeta.Snapshot
	switch {
	case h.pod != nil && (ns != nil || shipping):
		p := h.pod
		k := &record.Kubernetes{
			Image: p.image(h.m.Container), Labels: p.Labels, Annotations: p.Annotations,
			OwnerKind: p.Owner.Kind, OwnerName: p.Owner.Name,
		}
		if ns != nil {
			k.NamespaceLabels = ns.labels
		}
		m := h.m
		if m.PodUID == "" {
			m.PodUID = string(p.UID)
		}
		s = filemeta.SnapshotFor(m, filemeta.Origin{Node: e.cfg.NodeName, Cluster: e.cfg.Cluster}, k, ns == nil)
	case shipping || (ns != nil && ns.excluded):
		s = filemeta.SnapshotFor(h.m, filemeta.Origin{Node: e.cfg.NodeName, Cluster: e.cfg.Cluster}, nil, true)
		if ns != nil {
			s.NamespaceLabels = ns.labels
		}
	default:
		return // still waiting
	}
	s.Key = h.key
	if ns != nil {
		s.Retention = ns.retention
		s.Excluded = ns.excluded
	}
	h.snap.Store(s)
	e.metrics.renders.Inc()
	e.stopWaiting(h)
}

func (e *Enricher) renderAll(hs map[*handle]struct{}) {
	for h := range hs {
		e.render(h)
	}
}

// podFrom returns the transformed pod an informer event carries, or nil.
func podFrom(obj any) *podMeta {
	switch o := obj.(type) {
	case *podMeta:
		return o
	case cache.DeletedFinalStateUnknown:
		p, _ := o.Obj.(*podMeta)
		return p
	}
	return nil
}

func (e *Enricher) podChanged(oldObj, obj any) {
	p := podFrom(obj)
	if p == nil || p.Node != e.cfg.NodeName {
		return // the field selector already scopes the watch; this guards a server that ignores it
	}
	if old := podFrom(oldObj); old != nil && old.UID != p.UID {
		// The name was reused and the watch missed the deletion (a relist): the old pod is gone.
		e.podDeleted(old)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	entry := e.pods[p.UID]
	if entry == nil {
		entry = &podEntry{podMeta: p}
		e.pods[p.UID] = entry
		e.metrics.pods.Inc()
	} else {
		changed := entry.deleted || !entry.sameData(p)
		// Always hold the informer's current object, so the old one can be collected.
		entry.podMeta, entry.deleted = p, false
		if !changed {
			return // a status change: nothing records carry changed
		}
	}
	name := p.Namespace + "/" + p.Name
	e.podsByName[name] = p.UID
	e.renderAll(entry.handles)
	// Files that were waiting for this pod, or already shipping partial.
	for h := range e.waitUID[p.UID] {
		e.bind(h, entry)
		e.render(h)
	}
	for h := range e.waitName[name] {
		e.bind(h, entry)
		e.render(h)
	}
}

func (p *podEntry) sameData(q *podMeta) bool {
	return p.Owner == q.Owner && maps.Equal(p.Labels, q.Labels) && maps.Equal(p.Annotations, q.Annotations) &&
		slices.Equal(p.Images, q.Images)
}

func (e *Enricher) podDeleted(obj any) {
	p := podFrom(obj)
	if p == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	entry := e.pods[p.UID]
	if entry == nil || entry.deleted {
		return
	}
	// Keep the metadata: its files may still have unread lines, or not be open yet.
	entry.deleted = true
	if len(entry.handles) == 0 {
		entry.expireAt = e.now().Add(e.cfg.DeletedPodGrace)
	}
}

// sweep drops deleted pods and namespaces whose files are all read and whose grace is over.
func (e *Enricher) sweep() {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for uid, p := range e.pods {
		if p.deleted && len(p.handles) == 0 && !now.Before(p.expireAt) {
			delete(e.pods, uid)
			if name := p.Namespace + "/" + p.Name; e.podsByName[name] == uid {
				delete(e.podsByName, name)
			}
			e.metrics.pods.Dec()
			e.metrics.podsExpired.Inc()
		}
	}
	for name, ns := range e.namespaces {
		if ns.deleted && len(e.handles[name]) == 0 && !now.Before(ns.expireAt) {
			delete(e.namespaces, name)
			e.metrics.namespaces.Dec()
		}
	}
}

func namespaceFrom(obj any) *nsMeta {
	switch o := obj.(type) {
	case *nsMeta:
		return o
	case cache.DeletedFinalStateUnknown:
		ns, _ := o.Obj.(*nsMeta)
		return ns
	}
	return nil
}

func (e *Enricher) namespaceChanged(obj any) {
	ns := namespaceFrom(obj)
	if ns == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.namespaces[ns.Name]
	isNew := prev == nil
	if isNew {
		prev = &nsEntry{}
		e.metrics.namespaces.Inc()
	}
	entry := &nsEntry{
		labels:       ns.Labels,
		rawExclude:   ns.Annotations[AnnotationExclude],
		rawRetention: ns.Annotations[AnnotationRetention],
		excluded:     prev.excluded,
		retention:    prev.retention,
	}
	// An invalid value is reported once per change and ignored: the previous valid setting
	// stays in force until it is fixed (or the annotation removed).
	if entry.rawExclude != prev.rawExclude {
		switch entry.rawExclude {
		case "true":
			entry.excluded = true
		case "", "false":
			entry.excluded = false
		default:
			e.invalidAnnotation(ns.Name, AnnotationExclude, entry.rawExclude,
				fmt.Errorf(`want "true" or "false"`))
		}
	}
	if entry.rawRetention != prev.rawRetention {
		if entry.rawRetention == "" {
			entry.retention = 0
		} else if d, err := retention.Parse(entry.rawRetention); err != nil {
			e.invalidAnnotation(ns.Name, AnnotationRetention, entry.rawRetention, err)
		} else {
			entry.retention = d
		}
	}
	e.namespaces[ns.Name] = entry
	if isNew || prev.excluded != entry.excluded || prev.retention != entry.retention || !maps.Equal(prev.labels, entry.labels) || prev.deleted {
		e.renderAll(e.handles[ns.Name])
	}
}

func (e *Enricher) invalidAnnotation(ns, key, value string, err error) {
	e.metrics.invalidAnnotations.WithLabelValues(key).Inc()
	e.log.Warn("ignoring invalid namespace annotation", "namespace", ns, "annotation", key, "value", value, "error", err.Error())
}

func (e *Enricher) namespaceDeleted(obj any) {
	ns := namespaceFrom(obj)
	if ns == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if entry := e.namespaces[ns.Name]; entry != nil && !entry.deleted {
		entry.deleted = true
		if len(e.handles[ns.Name]) == 0 {
			entry.expireAt = e.now().Add(e.cfg.DeletedPodGrace)
		}
	}
}

func addTo[K comparable](m map[K]map[*handle]struct{}, k K, h *handle) {
	s := m[k]
	if s == nil {
		s = map[*handle]struct{}{}
		m[k] = s
	}
	s[h] = struct{}{}
}

func removeFrom[K comparable](m map[K]map[*handle]struct{}, k K, h *handle) {
	if s := m[k]; s != nil {
		delete(s, h)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}
