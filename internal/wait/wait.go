// Package wait is the tests' one way to wait for state: poll a condition
// until it holds, or fail the test at a deadline. No test sleeps a fixed
// time to let state settle.
package wait

import (
	"testing"
	"time"
)

// For polls cond every few milliseconds until it holds; after d it fails
// t, naming what it waited for.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
