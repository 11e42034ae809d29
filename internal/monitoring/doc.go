// Package monitoring holds the tests that keep docs/metrics.md and deploy/monitoring (alert
// rules, dashboard) true to the metrics the components register. It has no code of its own.
package monitoring
