//go:build race

package testbin

// The tests run with the race detector: so do the binaries they build.
func init() { raceEnabled = true }
