//go:build !race

package pipeline

// raceEnabled: the race detector changes escape analysis, so allocation counts differ.
const raceEnabled = false
