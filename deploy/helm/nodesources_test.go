package helm

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// collectorPod renders the chart with vals and returns the collector DaemonSet's pod.
func collectorPod(t *testing.T, vals map[string]any) corev1.PodSpec {
	t.Helper()
	if vals == nil {
		vals = map[string]any{}
	}
	vals["kafka"] = map[string]any{"brokers": "kafka-0.kafka:9092"}
	vals["bucket"] = map[string]any{"url": "s3://logs?region=eu-west-1"}
	for _, o := range decodeAll(t, renderCase{name: "node sources", release: defaultRelease, values: vals}) {
		if ds, ok := o.(*appsv1.DaemonSet); ok {
			return ds.Spec.Template.Spec
		}
	}
	t.Fatal("no collector DaemonSet")
	return corev1.PodSpec{}
}

// TestChartMountsNodeSources: the collector mounts what the journal source reads, read-only,
// from the host paths journald uses, never creating /var/log/journal or /etc/machine-id; and
// nothing of it when the journal is off.
func TestChartMountsNodeSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		// want maps mount paths to their host path and hostPath type ("" for no mount).
		want   map[string][2]string
		env    map[string]string
		absent []string
	}{
		{"default", nil,
			map[string][2]string{"/var/log": {"/var/log", "Directory"}, "/run/log/journal": {"/run/log/journal", "DirectoryOrCreate"}, "/etc/machine-id": {"/etc/machine-id", "File"}},
			map[string]string{"LOGROUTER_JOURNAL": "true", "LOGROUTER_JOURNAL_MAX_PRIORITY": "7"},
			[]string{"/var/log/journal", "LOGROUTER_JOURNAL_UNITS"}},
		{"other log dir", map[string]any{"collector": map[string]any{"hostLogDir": "/data/log", "journal": map[string]any{"units": []any{"kubelet.service", "containerd.service"}, "maxPriority": 5, "fields": []any{"SYSLOG_IDENTIFIER"}, "topic": "node-journal"}}},
			map[string][2]string{"/var/log": {"/data/log", "Directory"}, "/var/log/journal": {"/var/log/journal", "Directory"}, "/run/log/journal": {"/run/log/journal", "DirectoryOrCreate"}, "/etc/machine-id": {"/etc/machine-id", "File"}},
			map[string]string{"LOGROUTER_JOURNAL": "true", "LOGROUTER_JOURNAL_UNITS": "kubelet.service,containerd.service", "LOGROUTER_JOURNAL_MAX_PRIORITY": "5", "LOGROUTER_JOURNAL_FIELDS": "SYSLOG_IDENTIFIER", "LOGROUTER_JOURNAL_TOPIC": "node-journal"},
			nil},
		{"node files", map[string]any{"collector": map[string]any{"nodeFiles": []any{
			map[string]any{"name": "audit", "paths": []any{"/var/log/kube-apiserver/audit*.log"}, "parser": "kube-audit"},
			map[string]any{"name": "etcd", "paths": []any{"/var/lib/etcd-logs/*.log", "/var/lib/etcd-logs/*.log.1", "/srv/etcd/old/*.log"}, "topic": "platform.etcd"},
		}}},
			// /var/log/kube-apiserver is in the /var/log mount; the others are mounted once each.
			map[string][2]string{"/var/log": {"/var/log", "Directory"}, "/var/lib/etcd-logs": {"/var/lib/etcd-logs", "DirectoryOrCreate"}, "/srv/etcd/old": {"/srv/etcd/old", "DirectoryOrCreate"}},
			map[string]string{"LOGROUTER_NODE_FILES_CONFIG": "/etc/logrouter/node-files/node-files.yaml"},
			[]string{"/var/log/kube-apiserver"}},
		{"node files, other log dir", map[string]any{"collector": map[string]any{"hostLogDir": "/data/log", "nodeFiles": []any{
			map[string]any{"name": "audit", "paths": []any{"/var/log/kube-apiserver/audit*.log"}, "parser": "kube-audit"},
		}}},
			map[string][2]string{"/var/log": {"/data/log", "Directory"}, "/var/log/kube-apiserver": {"/var/log/kube-apiserver", "DirectoryOrCreate"}},
			map[string]string{"LOGROUTER_NODE_FILES_CONFIG": "/etc/logrouter/node-files/node-files.yaml"},
			nil},
		{"journal off", map[string]any{"collector": map[string]any{"journal": map[string]any{"enabled": false}}},
			map[string][2]string{"/var/log": {"/var/log", "Directory"}},
			map[string]string{"LOGROUTER_JOURNAL": "false"},
			[]string{"/run/log/journal", "/etc/machine-id", "/var/log/journal", "LOGROUTER_JOURNAL_MAX_PRIORITY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := collectorPod(t, tc.vals)
			vols := map[string]*corev1.HostPathVolumeSource{}
			for _, v := range pod.Volumes {
				vols[v.Name] = v.HostPath
			}
			c := pod.Containers[0]
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			for path, host := range tc.want {
				m, ok := mounts[path]
				if !ok {
					t.Fatalf("no mount at %s", path)
				}
				hp := vols[m.Name]
				if hp == nil || hp.Path != host[0] || hp.Type == nil || string(*hp.Type) != host[1] {
					t.Fatalf("%s: host path %+v, want %v", path, hp, host)
				}
				if !m.ReadOnly {
					t.Fatalf("%s is mounted writable", path)
				}
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			for k, v := range tc.env {
				if env[k] != v {
					t.Fatalf("%s = %q, want %q", k, env[k], v)
				}
			}
			if _, ok := env["LOGROUTER_NODE_FILES_CONFIG"]; ok != (tc.env["LOGROUTER_NODE_FILES_CONFIG"] != "") {
				t.Fatalf("LOGROUTER_NODE_FILES_CONFIG set: %v", ok)
			}
			for _, a := range tc.absent {
				if _, ok := mounts[a]; ok {
					t.Fatalf("unexpected mount %s", a)
				}
				if _, ok := env[a]; ok && strings.HasPrefix(a, "LOGROUTER_") {
					t.Fatalf("unexpected %s", a)
				}
			}
		})
	}
}

// TestChartReservesNodeFileNamespaces: with node file sources, the gateway is told their
// namespaces (node-<name>), so that RBAC in a Kubernetes namespace named so never opens their
// topics (the audit log); without them, only node-system is reserved, by the gateway itself.
func TestChartReservesNodeFileNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []any
		want  string // "" for no variable
	}{
		{"no node files", nil, ""},
		{"two node files", []any{
			map[string]any{"name": "audit", "paths": []any{"/var/log/kube-apiserver/audit*.log"}, "parser": "kube-audit"},
			map[string]any{"name": "etcd", "paths": []any{"/var/lib/etcd-logs/*.log"}, "topic": "platform.etcd"},
		}, "node-audit,node-etcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := map[string]any{
				"kafka":   map[string]any{"brokers": "kafka-0.kafka:9092"},
				"bucket":  map[string]any{"url": "s3://logs?region=eu-west-1"},
				"gateway": map[string]any{"kubeAuth": true},
			}
			if tc.files != nil {
				vals["collector"] = map[string]any{"nodeFiles": tc.files}
			}
			found := false
			for _, o := range decodeAll(t, renderCase{name: tc.name, release: defaultRelease, values: vals}) {
				d, ok := o.(*appsv1.Deployment)
				if !ok || !strings.HasSuffix(d.Name, "gateway") {
					continue
				}
				found = true
				got, ok := envOf(d.Spec.Template.Spec.Containers[0])["LOGROUTER_KUBE_RESERVED_NAMESPACES"]
				if got != tc.want || ok != (tc.want != "") {
					t.Errorf("LOGROUTER_KUBE_RESERVED_NAMESPACES = %q (set: %v), want %q", got, ok, tc.want)
				}
			}
			if !found {
				t.Fatal("no gateway Deployment")
			}
		})
	}
}
