package topic

import (
	"fmt"
	"regexp"
)

// Counters is the compacted topic collectors publish per-pipeline counters to and the
// controller folds into each LogPipeline's status (package pipeline/counters).
const Counters = "logrouter.pipeline-counters"

// suffixRE is one RFC 1123 label: no dots, so a suffix topic can never be another namespace's
// topic (namespaces cannot contain dots either).
var suffixRE = regexp.MustCompile(`^` + NamespacePattern + `$`)

// ValidSuffix checks that suffix is one RFC 1123 label of at most 63 characters.
func ValidSuffix(suffix string) error {
	if len(suffix) > 63 || !suffixRE.MatchString(suffix) {
		return fmt.Errorf("invalid topic suffix %q: want one lowercase RFC 1123 label (a-z, 0-9, '-', no dots, at most 63 characters)", suffix)
	}
	return nil
}

// WithSuffix is a pipeline's output topic: the namespace's topic, or it plus "."+suffix.
func WithSuffix(namespaceTopic, suffix string) string {
	if suffix == "" {
		return namespaceTopic
	}
	return namespaceTopic + "." + suffix
}
