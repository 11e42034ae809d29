package crds

import (
	"embed"
	"io/fs"
)

//go:embed logrouter.io_*.yaml
var files embed.FS

// Files returns the CRD manifests by file name (logrouter.io_logpipelines.yaml, ...), for
// tests and tools that install them (kubectl apply -f deploy/crds does the same).
func Files() map[string][]byte {
	out := map[string][]byte{}
	ents, err := fs.Glob(files, "*.yaml")
	if err != nil {
		panic(err) // the pattern is constant
	}
	for _, n := range ents {
		b, err := files.ReadFile(n)
		if err != nil {
			panic(err) // embedded
		}
		out[n] = b
	}
	return out
}
