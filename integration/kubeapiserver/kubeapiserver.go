// Package kubeapiserver starts a real etcd and kube-apiserver for tests: the enricher's
// informers, the tenant-config controller and the gateway's TokenReview checks run against it.
//
// The binaries come from .ci/provision-kube-apiserver.sh (a kube-apiserver built from the
// k8s.io/kubernetes module, Debian's etcd-server). Start skips the test when they are absent.
// Lookup order: $LOGROUTER_KUBE_APISERVER and $LOGROUTER_ETCD, then
// ${LOGROUTER_CACHE:-$HOME/.cache/logrouter}/kube-apiserver/bin/, then etcd on $PATH.
//
// There is no scheduler, controller manager or kubelet: pods stay Pending where they are put
// (set spec.nodeName), ReplicaSets create no pods, namespaces are not finalized on delete.
package kubeapiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Environment variables naming the binaries.
const (
	EnvKubeAPIServer = "LOGROUTER_KUBE_APISERVER"
	EnvEtcd          = "LOGROUTER_ETCD"
	EnvCache         = "LOGROUTER_CACHE"
)

// AdminUser is the identity of Server.Config: a member of system:masters.
const AdminUser = "logrouter-admin"

// User is a static identity the server accepts a bearer token for.
type User struct {
	Name   string
	UID    string
	Groups []string
}

// Options configure Start.
type Options struct {
	// Users get static tokens (see Server.ConfigFor). They have no permissions until the test
	// grants them with RBAC objects.
	Users []User
	// ExtraArgs are appended to the kube-apiserver command line.
	ExtraArgs []string
	// Audit, when set, makes kube-apiserver write its audit log (the log backend).
	Audit *Audit
}

// Audit configures kube-apiserver's audit log backend.
type Audit struct {
	// Path is --audit-log-path; kube-apiserver rotates it to <name>-<time>.<ext> in its directory.
	Path string
	// Policy is the audit policy (YAML of audit.k8s.io/v1 Policy); empty: DefaultAuditPolicy.
	Policy string
	// MaxSizeMB is --audit-log-maxsize: the size in megabytes at which the log rotates (0: never).
	MaxSizeMB int
	// MaxBackups is --audit-log-maxbackup: rotated files kept (0: all).
	MaxBackups int
}

// DefaultAuditPolicy logs every request at Metadata level at every stage but RequestReceived.
const DefaultAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`

// Server is a running etcd + kube-apiserver.
type Server struct {
	// URL is the API server's https URL.
	URL string
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config

	caData []byte
	tokens map[string]string // user name -> token
	dir    string
}

// Binaries returns the kube-apiserver and etcd paths, or why they cannot be used.
func Binaries() (apiserver, etcd string, err error) {
	cache := os.Getenv(EnvCache)
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "logrouter")
	}
	bin := filepath.Join(cache, "kube-apiserver", "bin")
	apiserver = os.Getenv(EnvKubeAPIServer)
	if apiserver == "" {
		apiserver = filepath.Join(bin, "kube-apiserver")
	}
	etcd = os.Getenv(EnvEtcd)
	if etcd == "" {
		etcd = filepath.Join(bin, "etcd")
		if !executable(etcd) {
			if p, err := exec.LookPath("etcd"); err == nil {
				etcd = p
			}
		}
	}
	var errs []error
	if !executable(apiserver) {
		errs = append(errs, fmt.Errorf("no kube-apiserver at %s (set %s or run .ci/provision-kube-apiserver.sh)", apiserver, EnvKubeAPIServer))
	}
	if !executable(etcd) {
		errs = append(errs, fmt.Errorf("no etcd at %s (set %s or install Debian etcd-server)", etcd, EnvEtcd))
	}
	return apiserver, etcd, errors.Join(errs...)
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start starts etcd and kube-apiserver for the test and stops them when it ends. It skips the
// test when the binaries are absent and fails it when they do not start.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	apiserverBin, etcdBin, err := Binaries()
	if err != nil {
		t.Skipf("real kube-apiserver not available: %v", err)
	}
	var o Options
	for _, x := range opts {
		o.Users = append(o.Users, x.Users...)
		o.ExtraArgs = append(o.ExtraArgs, x.ExtraArgs...)
		if x.Audit != nil {
			o.Audit = x.Audit
		}
	}
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		// etcd fsyncs every write; memory-backed storage keeps a test's setup fast.
		if d, err := os.MkdirTemp("/dev/shm", "logrouter-kube-"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	s := &Server{dir: dir, tokens: map[string]string{}}

	etcdURL := startEtcd(t, etcdBin, dir)
	tokenFile := filepath.Join(dir, "tokens.csv")
	var csv strings.Builder
	users := append([]User{{Name: AdminUser, UID: "admin", Groups: []string{"system:masters"}}}, o.Users...)
	for _, u := range users {
		tok := randomToken(t)
		s.tokens[u.Name] = tok
		fmt.Fprintf(&csv, "%s,%s,%s,%q\n", tok, u.Name, u.UID, strings.Join(u.Groups, ","))
	}
	writeFile(t, tokenFile, []byte(csv.String()))
	saKey := filepath.Join(dir, "sa.key")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))

	certDir := filepath.Join(dir, "certs")
	port := freePort(t)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	if a := o.Audit; a != nil {
		policy := a.Policy
		if policy == "" {
			policy = DefaultAuditPolicy
		}
		policyFile := filepath.Join(dir, "audit-policy.yaml")
		writeFile(t, policyFile, []byte(policy))
		args = append(args, "--audit-policy-file="+policyFile, "--audit-log-path="+a.Path, "--audit-log-format=json",
			"--audit-log-maxsize="+strconv.Itoa(a.MaxSizeMB), "--audit-log-maxbackup="+strconv.Itoa(a.MaxBackups),
			"--audit-log-mode=blocking") // every event written before the response: none dropped under load
	}
	args = append(args, o.ExtraArgs...)
	proc := startProcess(t, "kube-apiserver", apiserverBin, args, dir)
	s.URL = "https://127.0.0.1:" + strconv.Itoa(port)

	// The serving certificate is self-signed at start; its file holds the chain with the CA.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err == nil && len(b) > 0 {
			s.caData = b
			break
		}
		proc.checkAlive(t)
		if time.Now().After(deadline) {
			proc.fail(t, "no serving certificate in %s", certDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Config = s.ConfigForToken(s.tokens[AdminUser])
	s.waitReady(t, proc, deadline)
	return s
}

// ConfigFor returns a client configuration authenticating as a static user given in Options.
func (s *Server) ConfigFor(user string) *rest.Config {
	tok, ok := s.tokens[user]
	if !ok {
		panic(fmt.Sprintf("kubeapiserver: no static user %q (add it to Options.Users)", user))
	}
	return s.ConfigForToken(tok)
}

// ConfigForToken returns a client configuration using a bearer token.
func (s *Server) ConfigForToken(token string) *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.caData},
		QPS:             100,
		Burst:           200,
	}
}

// Token returns a static user's bearer token.
func (s *Server) Token(user string) string { return s.tokens[user] }

// Client returns an admin clientset.
func (s *Server) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ServiceAccountToken creates the service account (if needed) and returns a token for it
// from the TokenRequest API, as a pod's projected token would be.
func (s *Server) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	c := s.Client(t)
	_, err := c.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", namespace, name, err)
	}
	exp := int64(3600)
	tr, err := c.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// WriteKubeconfig writes a kubeconfig file for a bearer token and returns its path.
func (s *Server) WriteKubeconfig(t testing.TB, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.caData}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *Server) waitReady(t testing.TB, proc *process, deadline time.Time) {
	t.Helper()
	rc := rest.CopyConfig(s.Config)
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.tokens[AdminUser])
		resp, err := hc.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		proc.checkAlive(t)
		if time.Now().After(deadline) {
			proc.fail(t, "kube-apiserver not ready: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startEtcd(t testing.TB, bin, dir string) string {
	t.Helper()
	client, peer := freePort(t), freePort(t)
	clientURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	proc := startProcess(t, "etcd", bin, []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--log-level=warn",
	}, dir)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(clientURL + "/health")
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"health":"true"`) {
				return clientURL
			}
		}
		proc.checkAlive(t)
		if time.Now().After(deadline) {
			proc.fail(t, "etcd not healthy at %s", clientURL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func startProcess(t testing.TB, name, bin string, args []string, dir string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Die with the test binary even if it is killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(logPath, 4000))
		}
	})
	return p
}

func (p *process) checkAlive(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		t.Fatalf("%s exited: %v\n%s", p.name, err, tail(p.log, 4000))
	default:
	}
}

func (p *process) fail(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("%s\n%s log (tail):\n%s", fmt.Sprintf(format, args...), p.name, tail(p.log, 4000))
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
