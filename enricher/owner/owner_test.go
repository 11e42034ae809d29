package owner

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ref(apiVersion, kind, name string, controller bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &controller}
}

func TestResolve(t *testing.T) {
	hash := map[string]string{PodTemplateHashLabel: "5d8f7c9b6"}
	for _, tc := range []struct {
		name   string
		refs   []metav1.OwnerReference
		labels map[string]string
		want   Workload
	}{
		{"bare pod", nil, nil, Workload{}},
		{"deployment", []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "web-5d8f7c9b6", true)}, hash, Workload{"Deployment", "web"}},
		{"deployment with dashes", []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "my-web-app-5d8f7c9b6", true)}, hash, Workload{"Deployment", "my-web-app"}},
		{"replicaset by hand", []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "web", true)}, nil, Workload{"ReplicaSet", "web"}},
		{"hash label does not match name", []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "web-abc", true)}, hash, Workload{"ReplicaSet", "web-abc"}},
		{"name is only the hash", []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "-5d8f7c9b6", true)}, hash, Workload{"ReplicaSet", "-5d8f7c9b6"}},
		{"cronjob", []metav1.OwnerReference{ref("batch/v1", "Job", "nightly-backup-29012345", true)}, nil, Workload{"CronJob", "nightly-backup"}},
		{"job by hand", []metav1.OwnerReference{ref("batch/v1", "Job", "migrate", true)}, nil, Workload{"Job", "migrate"}},
		{"job with small number", []metav1.OwnerReference{ref("batch/v1", "Job", "migrate-2", true)}, nil, Workload{"Job", "migrate-2"}},
		{"job with date suffix", []metav1.OwnerReference{ref("batch/v1", "Job", "backup-20250101", true)}, nil, Workload{"Job", "backup-20250101"}},
		{"job with plus sign", []metav1.OwnerReference{ref("batch/v1", "Job", "x-+29012345", true)}, nil, Workload{"Job", "x-+29012345"}},
		{"job ending in dash", []metav1.OwnerReference{ref("batch/v1", "Job", "x-", true)}, nil, Workload{"Job", "x-"}},
		{"statefulset", []metav1.OwnerReference{ref("apps/v1", "StatefulSet", "db", true)}, nil, Workload{"StatefulSet", "db"}},
		{"daemonset", []metav1.OwnerReference{ref("apps/v1", "DaemonSet", "agent", true)}, nil, Workload{"DaemonSet", "agent"}},
		{"node owns static pod", []metav1.OwnerReference{ref("v1", "Node", "node-1", true)}, nil, Workload{"Node", "node-1"}},
		{"custom ReplicaSet kind elsewhere", []metav1.OwnerReference{ref("example.com/v1", "ReplicaSet", "web-5d8f7c9b6", true)}, hash, Workload{"ReplicaSet", "web-5d8f7c9b6"}},
		{"controller wins over first", []metav1.OwnerReference{ref("v1", "ConfigMap", "cfg", false), ref("apps/v1", "StatefulSet", "db", true)}, nil, Workload{"StatefulSet", "db"}},
		{"no controller: first", []metav1.OwnerReference{ref("v1", "ConfigMap", "cfg", false), ref("apps/v1", "StatefulSet", "db", false)}, nil, Workload{"ConfigMap", "cfg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(tc.refs, tc.labels); got != tc.want {
				t.Errorf("Resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("apps/v1", "ReplicaSet", "web-5d8f7c9b6", "5d8f7c9b6")
	f.Add("batch/v1", "Job", "nightly-29012345", "")
	f.Add("batch/v1", "Job", "-29012345", "")
	f.Add("v1", "Node", "n", "")
	f.Fuzz(func(t *testing.T, apiVersion, kind, name, hash string) {
		ctrl := true
		refs := []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &ctrl}}
		w := Resolve(refs, map[string]string{PodTemplateHashLabel: hash})
		switch w.Kind {
		case "Deployment":
			if kind != "ReplicaSet" || w.Name == "" || w.Name+"-"+hash != name {
				t.Fatalf("Resolve(%q %q %q, hash %q) = %+v", apiVersion, kind, name, hash, w)
			}
		case "CronJob":
			if kind != "Job" || w.Name == "" || !strings.HasPrefix(name, w.Name+"-") {
				t.Fatalf("Resolve(%q %q %q) = %+v", apiVersion, kind, name, w)
			}
		default:
			if w.Kind != kind || w.Name != name {
				t.Fatalf("Resolve(%q %q %q) = %+v, want the reference itself", apiVersion, kind, name, w)
			}
		}
		// Resolving the result again changes nothing (the informer transform relies on it).
		again := Resolve([]metav1.OwnerReference{{APIVersion: apiVersion, Kind: w.Kind, Name: w.Name, Controller: &ctrl}}, nil)
		if w.Kind != "" && again != w {
			t.Fatalf("second Resolve = %+v, want %+v", again, w)
		}
	})
}
