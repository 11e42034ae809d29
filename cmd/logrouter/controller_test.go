//go:build !collector

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/logrouter/logrouter/controller"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

func TestControllerFlags(t *testing.T) {
	var stderr syncbuf.Buffer
	code := run(context.Background(), []string{"controller", "--kubeconfig", "/nonexistent", "--metrics-addr", ""}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "kubeconfig /nonexistent") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestControllerCommand runs `logrouter controller` as a user would, against a real
// kube-apiserver and kfake: a pipeline gets its status, /metrics serves the controller's
// metrics, and SIGTERM (the context) stops it cleanly.
func TestControllerCommand(t *testing.T) {
	s := kubeapiserver.Start(t)
	if _, err := envtest.InstallCRDs(s.Config, envtest.CRDInstallOptions{Paths: []string{"../../deploy/crds"}, ErrorIfPathMissing: true, MaxTime: time.Minute}); err != nil {
		t.Fatal(err)
	}
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	scheme, err := controller.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	lp := &v1alpha1.LogPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
		Spec: v1alpha1.LogPipelineSpec{Steps: []v1alpha1.Step{{Regex: &v1alpha1.RegexStep{Pattern: `(?P<x>[a-z`}}}}}
	if err := c.Create(ctx, lp); err != nil {
		t.Fatal(err)
	}
	maddr := freeAddr(t)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(rctx, []string{"controller", "--kubeconfig", s.WriteKubeconfig(t, s.Token(kubeapiserver.AdminUser)),
			"--kafka-brokers", strings.Join(kafka.ListenAddrs(), ","), "--leader-election-namespace", "default",
			"--metrics-addr", maddr}, io.Discard, &stderr)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var got v1alpha1.LogPipeline
		if err := c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "web"}, &got); err != nil {
			t.Fatal(err)
		}
		if cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted); cond != nil {
			if cond.Status != metav1.ConditionFalse || !strings.HasPrefix(cond.Message, "steps[0].regex") {
				t.Errorf("Accepted = %+v", cond)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The reconcile is counted after its status write returns: the status can be seen first.
	for mdeadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://%s/metrics", maddr))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `logrouter_controller_reconciles_total{result="invalid"}`) {
			break
		}
		if time.Now().After(mdeadline) {
			t.Fatalf("/metrics lacks the controller's reconciles:\n%.2000s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the controller did not stop")
	}
}
