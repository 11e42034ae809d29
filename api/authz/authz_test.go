package authz

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/api/kubeauth"
	"github.com/logrouter/logrouter/api/token"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		err     error
	}{
		{"ok", []string{"Bearer abc.def-ghi_jk~l+/="}, "abc.def-ghi_jk~l+/=", nil},
		{"lowercase scheme", []string{"bearer tok"}, "tok", nil},
		{"none", nil, "", ErrNoCredentials},
		{"twice", []string{"Bearer a", "Bearer b"}, "", ErrMalformedHeader},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", ErrUnsupportedScheme},
		{"no scheme", []string{"tok"}, "", ErrUnsupportedScheme},
		{"scheme only", []string{"Bearer"}, "", ErrMalformedHeader},
		{"empty token", []string{"Bearer "}, "", ErrMalformedHeader},
		{"two spaces", []string{"Bearer  tok"}, "", ErrMalformedHeader},
		{"space inside", []string{"Bearer a b"}, "", ErrMalformedHeader},
		{"comma", []string{"Bearer a,Bearer b"}, "", ErrMalformedHeader},
		{"control byte", []string{"Bearer a\x01"}, "", ErrMalformedHeader},
		{"oversized", []string{"Bearer " + strings.Repeat("a", MaxAuthorizationBytes)}, "", ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.headers {
				h.Add("Authorization", v)
			}
			got, err := BearerToken(h)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("BearerToken = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer lrt_0123456789abcdef_xyz")
	f.Add("bearer a b")
	f.Fuzz(func(t *testing.T, v string) {
		tok, err := BearerToken(http.Header{"Authorization": {v}})
		if err != nil {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,\"") || len(tok) > MaxAuthorizationBytes {
			t.Fatalf("accepted token %q from %q", tok, v)
		}
	})
}

func TestProxyToken(t *testing.T) {
	const name = "X-Forwarded-Access-Token"
	tests := []struct {
		name string
		vals []string
		want string
		err  error
	}{
		{"bare", []string{"lrt_0123456789abcdef_x"}, "lrt_0123456789abcdef_x", nil},
		{"bearer prefix", []string{"Bearer eyJ.a.b"}, "eyJ.a.b", nil},
		{"none", nil, "", ErrNoCredentials},
		{"twice", []string{"a", "b"}, "", ErrMalformedHeader},
		{"space", []string{"a b"}, "", ErrMalformedHeader},
		{"empty", []string{""}, "", ErrMalformedHeader},
		{"basic", []string{"Basic abc"}, "", ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.vals {
				h.Add(name, v)
			}
			got, err := ProxyToken(h, name)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("ProxyToken = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestPrincipalNamespaces(t *testing.T) {
	a := &Authenticator{}
	p := &Principal{rec: &token.Record{Namespaces: []string{"shop", "ads", "shop"}}}
	none := func(context.Context) ([]string, error) {
		t.Fatal("a token's list needs no candidates")
		return nil, nil
	}
	if got, complete, err := a.Namespaces(context.Background(), p, none); err != nil || !complete || strings.Join(got, ",") != "ads,shop" {
		t.Fatalf("token: %v %v %v", got, complete, err)
	}
	// A Kubernetes identity's list starts from the candidates; their failure is the list's
	// (kubeauth's TestAllowed covers the reviews).
	k := &Principal{kube: &kubeauth.Identity{Username: "system:serviceaccount:shop:ci"}}
	boom := errors.New("kafka down")
	if _, _, err := a.Namespaces(context.Background(), k, func(context.Context) ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("kube identity, candidates failing: %v", err)
	}
}
