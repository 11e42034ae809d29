//go:build race

package system

// raceEnabled: the race detector slows the test process (the in-process broker and the
// accounting) several times, so the short version writes fewer lines under it.
const raceEnabled = true
