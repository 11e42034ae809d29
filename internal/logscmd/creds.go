package logscmd

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// bearer adds a fixed bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// readToken reads a token file: one token, surrounding whitespace ignored.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one word; it must hold one token", path)
	}
	return t, nil
}

// errNoCredentials: nothing said how to authenticate.
var errNoCredentials = errors.New("no credentials: pass --token-file, set LOGROUTER_TOKEN, set token-file or kubeconfig in a context of the config file, or have a kubeconfig whose current context has a bearer token (see docs/teams.md)")

// kubeTransport authenticates with the identity of a kubeconfig's context: its bearer token
// (token or tokenFile) or exec/auth-provider plugin, which client-go's wrappers add to each
// request. The gateway checks that token with a TokenReview. Client certificates cannot be
// forwarded, so a context that has only those is refused with what to do instead.
func kubeTransport(path, context string, base http.RoundTripper) (http.RoundTripper, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	rc, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errNoCredentials
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if rc.BearerToken == "" && rc.BearerTokenFile == "" && rc.ExecProvider == nil && rc.AuthProvider == nil {
		return nil, errors.New("the kubeconfig's context has no bearer token (it may use a client certificate, which the gateway cannot check): use a ServiceAccount token (kubectl create token NAME -n NS > token; --token-file token) or a logrouter token")
	}
	rt, err := rest.HTTPWrappersForConfig(rc, base)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rt, nil
}
