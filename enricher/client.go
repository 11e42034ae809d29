package enricher

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent identifies the collector to the API server (audit logs, priority and fairness).
const UserAgent = "logrouter-collector"

// ClientFromConfig returns a client for cfg: the in-cluster service account by default, the
// kubeconfig file when cfg.Kubeconfig is set.
func ClientFromConfig(cfg Config) (kubernetes.Interface, error) {
	rc, err := RESTConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("enricher: kubernetes client: %w", err)
	}
	return c, nil
}

// RESTConfig returns the client configuration ClientFromConfig uses.
func RESTConfig(cfg Config) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("enricher: kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("enricher: in-cluster config (use --kubeconfig outside a cluster): %w", err)
		}
	}
	rc.UserAgent = UserAgent
	return rc, nil
}
