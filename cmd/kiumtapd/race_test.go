//go:build race

package main

// The binaries the tests build are built with the race detector too.
func init() { raceEnabled = true }
