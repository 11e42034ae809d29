//go:build race

package integration

// raceEnabled: the race detector slows the in-process collector and gateway several times,
// so load tests scale their rate down under it (their figures come from runs without it).
const raceEnabled = true
