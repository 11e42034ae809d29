// Package crds holds the CustomResourceDefinitions of logrouter.io, generated from the Go
// types in pipeline/api/v1alpha1. Regenerate with `go generate ./deploy/crds`; a test fails
// when the files here (or the deepcopy file, or the Helm chart's copy) differ from what the
// types generate.
package crds

//go:generate go tool controller-gen object paths=../../pipeline/api/v1alpha1/...
//go:generate go tool controller-gen crd:maxDescLen=400 paths=../../pipeline/api/v1alpha1/... output:crd:dir=.
//go:generate go run ../render -root ../..
