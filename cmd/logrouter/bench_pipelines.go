package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// benchTypicalPipeline is the chain `bench collect --pipelines typical` runs on every line of
// every namespace: the per-line cost target of issue 9 (json, one regex, one CEL keep, one
// redact). It keeps every line of the benchmark's workload, so each line is still one record.
const benchTypicalPipeline = `apiVersion: logrouter.io/v1alpha1
kind: LogPipeline
metadata:
  namespace: %s
  name: typical
spec:
  steps:
  - json: {}
  - regex:
      pattern: '"path":"/api/(?P<api>v[0-9]+)/'
  - keep:
      if: 'record.fields.level != "debug"'
  - redact:
      fields: [src]
      hash: true
`

// writeBenchPipelines writes the typical pipeline for each of the benchmark's namespaces into
// dir and returns the collector flags that load them.
func writeBenchPipelines(dir string, namespaces int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for i := range namespaces {
		ns := fmt.Sprintf("bench-%d", i)
		if err := os.WriteFile(filepath.Join(dir, ns+".yaml"), []byte(fmt.Sprintf(benchTypicalPipeline, ns)), 0o644); err != nil {
			return nil, err
		}
	}
	return []string{"--pipelines-dir", dir}, nil
}
