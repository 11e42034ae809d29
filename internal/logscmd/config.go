package logscmd

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// File is ~/.config/logrouter/config.yaml: named contexts, like a kubeconfig, each a gateway
// and how to authenticate to it.
//
//	current-context: shop-prod
//	contexts:
//	- name: shop-prod
//	  gateway: https://logs.example.com
//	  namespace: shop
//	  token-file: ~/.config/logrouter/shop.token
//	- name: shop-kube
//	  gateway: https://logs.example.com
//	  namespace: shop
//	  kubeconfig: ~/.kube/config
//	  kube-context: prod
type File struct {
	CurrentContext string    `json:"current-context,omitempty"`
	Contexts       []Context `json:"contexts"`
}

// Context is one named set of defaults.
type Context struct {
	Name      string `json:"name"`
	Gateway   string `json:"gateway,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// TokenFile holds a logrouter token or a Kubernetes token (~ expands to the home directory).
	TokenFile string `json:"token-file,omitempty"`
	// Kubeconfig and KubeContext use a kubeconfig's identity (its bearer token, or its exec
	// plugin's), which the gateway checks through TokenReview.
	Kubeconfig  string `json:"kubeconfig,omitempty"`
	KubeContext string `json:"kube-context,omitempty"`
}

// DefaultConfigPath is where the config file lives: $XDG_CONFIG_HOME/logrouter/config.yaml,
// else ~/.config/logrouter/config.yaml.
func DefaultConfigPath(env func(string) (string, bool), home string) string {
	if x, ok := env("XDG_CONFIG_HOME"); ok && x != "" {
		return filepath.Join(x, "logrouter", "config.yaml")
	}
	return filepath.Join(home, ".config", "logrouter", "config.yaml")
}

// LoadFile reads path strictly: unknown fields, duplicate names and a current-context that
// names no context are errors. A missing file at the default path is no error (missingOK).
func LoadFile(path string, missingOK bool) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && missingOK {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return &f, nil
}

// Validate reports every problem of the file.
func (f *File) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range f.Contexts {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("contexts[%d]: name is required", i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("contexts[%d]: duplicate name %q", i, c.Name))
		}
		seen[c.Name] = true
		if c.Gateway != "" {
			if u, err := url.Parse(c.Gateway); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
				errs = append(errs, fmt.Errorf("context %q: gateway %q is not an http(s) URL", c.Name, c.Gateway))
			}
		}
		if c.TokenFile != "" && (c.Kubeconfig != "" || c.KubeContext != "") {
			errs = append(errs, fmt.Errorf("context %q: token-file and kubeconfig/kube-context are two identities; keep one", c.Name))
		}
	}
	if f.CurrentContext != "" && !seen[f.CurrentContext] {
		errs = append(errs, fmt.Errorf("current-context %q names no context", f.CurrentContext))
	}
	return errors.Join(errs...)
}

// Context returns the context called name ("" = current-context; none at all = zero Context).
func (f *File) Context(name string) (Context, error) {
	if name == "" {
		name = f.CurrentContext
	}
	if name == "" {
		return Context{}, nil
	}
	var names []string
	for _, c := range f.Contexts {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return Context{}, fmt.Errorf("no context %q in the config file (contexts: %s)", name, strings.Join(names, ", "))
}

// expandHome expands a leading ~/ to home.
func expandHome(p, home string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}
