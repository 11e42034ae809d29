package logpath

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/logrouter/logrouter/router/filemeta"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseContainerLink(t *testing.T) {
	tests := []struct {
		path string
		want filemeta.PathMeta
	}{
		{"/var/log/containers/web-7d9f8b6c5-x2x4z_shop_nginx-" + id + ".log",
			filemeta.PathMeta{Namespace: "shop", Pod: "web-7d9f8b6c5-x2x4z", Container: "nginx", ContainerID: id}},
		{"coredns-5d78c9869d-abcde_kube-system_coredns-" + id + ".log",
			filemeta.PathMeta{Namespace: "kube-system", Pod: "coredns-5d78c9869d-abcde", Container: "coredns", ContainerID: id}},
		{"/var/log/containers/kube-apiserver-node1.example.com_kube-system_kube-apiserver-" + id + ".log",
			filemeta.PathMeta{Namespace: "kube-system", Pod: "kube-apiserver-node1.example.com", Container: "kube-apiserver", ContainerID: id}},
		{"a_b_c-" + id + ".log", filemeta.PathMeta{Namespace: "b", Pod: "a", Container: "c", ContainerID: id}},
		{"p_" + strings.Repeat("n", 63) + "_" + strings.Repeat("c", 63) + "-" + id + ".log",
			filemeta.PathMeta{Namespace: strings.Repeat("n", 63), Pod: "p", Container: strings.Repeat("c", 63), ContainerID: id}},
	}
	for _, tt := range tests {
		got, err := ParseContainerLink(tt.path)
		if err != nil {
			t.Errorf("ParseContainerLink(%q): %v", tt.path, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseContainerLink(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

func TestParseContainerLinkErrors(t *testing.T) {
	tests := []struct{ path, want string }{
		{"", `containers path "": file name "" does not end in .log`},
		{"/var/log/containers/", `file name "" does not end in .log`},
		{"web_shop_nginx-" + id + ".log.1", `does not end in .log`},
		{"web_shop_nginx-" + id, `does not end in .log`},
		{"webshop_nginx-" + id + ".log", `is not <pod>_<namespace>_<container>-<id>.log`},
		{"web_shop_nginx_x-" + id + ".log", `is not <pod>_<namespace>_<container>-<id>.log`},
		{"web_shop_nginx" + id + ".log", `has no -<container id>`},
		{"web_Shop_nginx-" + id + ".log", `namespace "Shop" is not a DNS-1123 label: 'S' at 0`},
		{"web_shop.x_nginx-" + id + ".log", `namespace "shop.x" is not a DNS-1123 label: '.' at 4`},
		{"web_" + strings.Repeat("n", 64) + "_nginx-" + id + ".log", `is not a DNS-1123 label: 64 characters, at most 63`},
		{"web__nginx-" + id + ".log", `namespace "" is not a DNS-1123 label: empty label`},
		{"web_-shop_nginx-" + id + ".log", `namespace "-shop" is not a DNS-1123 label: '-' at 0`},
		{"web._shop_nginx-" + id + ".log", `pod "web." is not a DNS-1123 subdomain: empty label at 4`},
		{"Web_shop_nginx-" + id + ".log", `pod "Web" is not a DNS-1123 subdomain`},
		{"a.-b_shop_nginx-" + id + ".log", `pod "a.-b" is not a DNS-1123 subdomain: '-' at 2`},
		{strings.Repeat("p", 254) + "_shop_nginx-" + id + ".log", `254 characters, at most 253`},
		{"web_shop_-" + id + ".log", `container "" is not a DNS-1123 label`},
		{"web_shop_nginx--" + id + ".log", `container "nginx-" is not a DNS-1123 label: '-' at 5`},
		{"web_shop_nginx-" + id[:63] + ".log", `container id "` + id[:63] + `" is 63 characters long, want 64`},
		{"web_shop_nginx-" + strings.ToUpper(id) + ".log", `has 'A' at 10, want lowercase hex`},
	}
	for _, tt := range tests {
		got, err := ParseContainerLink(tt.path)
		if err == nil {
			t.Errorf("ParseContainerLink(%q) = %+v, want error", tt.path, got)
			continue
		}
		var pe *PathError
		if !errors.Is(err, ErrInvalidPath) || !errors.As(err, &pe) || pe.Kind != "containers" || pe.Path != tt.path {
			t.Errorf("ParseContainerLink(%q) error %#v is not a containers *PathError", tt.path, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseContainerLink(%q) error\n  %q\nwant it to contain\n  %q", tt.path, err, tt.want)
		}
	}
}

const uid = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

func TestParsePodLog(t *testing.T) {
	dir := "/var/log/pods/shop_web-7d9f8b6c5-x2x4z_" + uid + "/nginx/"
	want := func(file string) filemeta.PathMeta {
		return filemeta.PathMeta{Namespace: "shop", Pod: "web-7d9f8b6c5-x2x4z", PodUID: uid, Container: "nginx", File: dir + file}
	}
	for _, file := range []string{"0.log", "12.log", "0.log.20240101-120000", "3.log.20240101-120000.gz", "0.log.20240101-120000.tmp", "0.log.20240101-120000.zst"} {
		got, err := ParsePodLog(dir + file)
		if err != nil {
			t.Errorf("ParsePodLog(%q): %v", dir+file, err)
		} else if got != want(file) {
			t.Errorf("ParsePodLog(%q) = %+v, want %+v", dir+file, got, want(file))
		}
	}
	// Relative paths and static pods (name with dots, UID a config hash).
	p := "kube-system_etcd-node1.example.com_9f4c2e0d1b3a5c7e9f4c2e0d1b3a5c7e/etcd/0.log"
	got, err := ParsePodLog(p)
	wantStatic := filemeta.PathMeta{Namespace: "kube-system", Pod: "etcd-node1.example.com", PodUID: "9f4c2e0d1b3a5c7e9f4c2e0d1b3a5c7e", Container: "etcd", File: p}
	if err != nil || got != wantStatic {
		t.Errorf("ParsePodLog(%q) = %+v, %v; want %+v", p, got, err, wantStatic)
	}
}

func TestParsePodLogErrors(t *testing.T) {
	tests := []struct{ path, want string }{
		{"", `pods path "": want <namespace>_<pod>_<uid>/<container>/<file>`},
		{"0.log", `want <namespace>_<pod>_<uid>/<container>/<file>`},
		{"nginx/0.log", `want <namespace>_<pod>_<uid>/<container>/<file>`},
		{"/nginx/0.log", `directory "" is not <namespace>_<pod>_<uid>`},
		{"/var/log/pods/shop_web/nginx/0.log", `directory "shop_web" is not <namespace>_<pod>_<uid>`},
		{"/var/log/pods/shop_web_" + uid + "_x/nginx/0.log", `is not <namespace>_<pod>_<uid>`},
		{"/var/log/pods/shop_web_/nginx/0.log", `empty pod UID`},
		{"/var/log/pods/Shop_web_" + uid + "/nginx/0.log", `namespace "Shop" is not a DNS-1123 label`},
		{"/var/log/pods/shop_web!_" + uid + "/nginx/0.log", `pod "web!" is not a DNS-1123 subdomain: '!' at 3`},
		{"/var/log/pods/shop_web_" + uid + "/Nginx/0.log", `container "Nginx" is not a DNS-1123 label`},
		{"/var/log/pods/shop_web_" + uid + "//0.log", `container "" is not a DNS-1123 label`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/", `file "" is not <restart count>.log`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/x.log", `file "x.log" is not <restart count>.log`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/0.txt", `file "0.txt" is not`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/0.log.", `file "0.log." is not`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/0.log.2024", `file "0.log.2024" is not`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/-1.log", `file "-1.log" is not`},
		{"/var/log/pods/shop_web_" + uid + "/nginx/0.log.1", `file "0.log.1" is not`},
	}
	for _, tt := range tests {
		got, err := ParsePodLog(tt.path)
		if err == nil {
			t.Errorf("ParsePodLog(%q) = %+v, want error", tt.path, got)
			continue
		}
		var pe *PathError
		if !errors.Is(err, ErrInvalidPath) || !errors.As(err, &pe) || pe.Kind != "pods" {
			t.Errorf("ParsePodLog(%q) error %#v is not a pods *PathError", tt.path, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePodLog(%q) error\n  %q\nwant it to contain\n  %q", tt.path, err, tt.want)
		}
	}
}

func TestRotated(t *testing.T) {
	dockerLive := id + "-json.log"
	tests := []struct {
		live, name          string
		rotated, compressed bool
	}{
		{"0.log", "0.log.20240101-120000", true, false},
		{"0.log", "0.log.20240101-120000.gz", true, true},
		{"0.log", "0.log.20240101-120000.tmp", true, true},
		{"0.log", "0.log.20240101-120000.zst", true, true},
		{"0.log", "0.log.20240101-120000.xz", true, true},
		{"0.log", "0.log.20240101-120000.bz2", true, true},
		{"0.log", "0.log.20240101-120000.zip", true, true},
		{dockerLive, dockerLive + ".1", true, false},
		{dockerLive, dockerLive + ".12", true, false},
		{dockerLive, dockerLive + ".3.gz", true, true},
		{"0.log", "0.log", false, false},
		{"0.log", "1.log", false, false},
		{"0.log", "0.log.tmp", false, false},
		{"0.log", "0.log.gz", false, false},
		{"0.log", "0.log.2024010-1120000", false, false},
		{"0.log", "0.log.20240101-12000", false, false},
		{"0.log", "0.log.20240101_120000", false, false},
		{"0.log", "0.log.20240101-120000.gz.tmp", false, false},
		{"0.log", "0.log.20240101-120000.old", false, false},
		{"0.log", "0.log20240101-120000", false, false},
		{"0.log", "10.log.20240101-120000", false, false},
		{"1.log", "11.log.20240101-120000", false, false},
		{dockerLive, dockerLive + ".0", false, false},
		{dockerLive, dockerLive + ".1.tmp", false, false},
		{dockerLive, dockerLive + ".x", false, false},
		{"", ".1", false, false},
	}
	for _, tt := range tests {
		r, c := Rotated(tt.live, tt.name)
		if r != tt.rotated || c != tt.compressed {
			t.Errorf("Rotated(%q, %q) = %v, %v; want %v, %v", tt.live, tt.name, r, c, tt.rotated, tt.compressed)
		}
	}
}

// k8sLabel and k8sSubdomain are the API server's own checks: the parsers must agree with them.
func k8sLabel(s string) bool     { return len(validation.IsDNS1123Label(s)) == 0 }
func k8sSubdomain(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

func FuzzParseContainerLink(f *testing.F) {
	f.Add("web-1_shop_nginx", id)
	f.Add("a.b.c_kube-system_c-1", strings.ToUpper(id))
	f.Add("x__y", "1")
	f.Fuzz(func(t *testing.T, prefix, cid string) {
		for _, p := range []string{prefix, prefix + "-" + cid + ".log", "/var/log/containers/" + prefix + "-" + cid + ".log"} {
			m, err := ParseContainerLink(p)
			if err != nil {
				if !errors.Is(err, ErrInvalidPath) {
					t.Fatalf("ParseContainerLink(%q): error %v does not wrap ErrInvalidPath", p, err)
				}
				continue
			}
			// Round trip, and Kubernetes agrees with every name.
			base := p[strings.LastIndexByte(p, '/')+1:]
			if got := m.Pod + "_" + m.Namespace + "_" + m.Container + "-" + m.ContainerID + ".log"; got != base {
				t.Fatalf("ParseContainerLink(%q) = %+v, which names %q", p, m, got)
			}
			if !k8sSubdomain(m.Pod) || !k8sLabel(m.Namespace) || !k8sLabel(m.Container) || checkContainerID(m.ContainerID) != nil {
				t.Fatalf("ParseContainerLink(%q) accepted %+v, which Kubernetes rejects", p, m)
			}
		}
		// Conversely: names Kubernetes accepts parse.
		parts := strings.SplitN(prefix, "_", 3)
		if len(parts) == 3 && k8sSubdomain(parts[0]) && k8sLabel(parts[1]) && k8sLabel(parts[2]) && checkContainerID(cid) == nil {
			p := prefix + "-" + cid + ".log"
			if _, err := ParseContainerLink(p); err != nil {
				t.Fatalf("ParseContainerLink(%q): %v, but Kubernetes accepts the names", p, err)
			}
		}
	})
}

func FuzzParsePodLog(f *testing.F) {
	f.Add("/var/log/pods/shop_web-1_"+uid+"/nginx/0.log", "shop", "web-1", uid, "nginx", "0.log")
	f.Add("x", "kube-system", "etcd-a.b", "abc", "etcd", "3.log.20240101-120000.gz")
	f.Fuzz(func(t *testing.T, raw, ns, pod, puid, container, file string) {
		if _, err := ParsePodLog(raw); err != nil && !errors.Is(err, ErrInvalidPath) {
			t.Fatalf("ParsePodLog(%q): error %v does not wrap ErrInvalidPath", raw, err)
		}
		p := "/var/log/pods/" + ns + "_" + pod + "_" + puid + "/" + container + "/" + file
		m, err := ParsePodLog(p)
		valid := k8sLabel(ns) && k8sSubdomain(pod) && puid != "" && !strings.ContainsAny(puid, "_/") &&
			k8sLabel(container) && !strings.Contains(file, "/")
		if err != nil {
			if valid && (file == "0.log" || file == "1.log.20240101-120000") {
				t.Fatalf("ParsePodLog(%q): %v, but Kubernetes accepts the names", p, err)
			}
			return
		}
		if !valid {
			t.Fatalf("ParsePodLog(%q) = %+v, but Kubernetes rejects a name", p, m)
		}
		want := filemeta.PathMeta{Namespace: ns, Pod: pod, PodUID: puid, Container: container, File: p}
		if m != want {
			t.Fatalf("ParsePodLog(%q) = %+v, want %+v", p, m, want)
		}
	})
}
