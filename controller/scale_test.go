package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
