package bridge

import (
	"testing"
	"time"

	"kiumtap/portal/api"
)

// A restart brings a new instance that never leaves for the old one: no
// clash. Two terminals with one ID take it in turn: an instance comes
// back, a clash, until the switches are older than ClashWindow.
func TestClashOfInstances(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		seq   []string
		clash bool
	}{
		{"one terminal", []string{"a", "a", "a"}, false},
		{"restarts", []string{"a", "b", "b", "c"}, false},
		{"a clone", []string{"a", "b", "a"}, true},
		{"three clones", []string{"a", "b", "c", "b"}, true},
	} {
		var w idWatch
		var got *api.Clash
		for i, inst := range tc.seq {
			got = w.online(inst, t0.Add(time.Duration(i)*time.Second))
		}
		if (got != nil) != tc.clash {
			t.Errorf("%s: clash %+v, want %v", tc.name, got, tc.clash)
		}
	}
	var w idWatch
	for i, inst := range []string{"a", "b", "a"} {
		w.online(inst, t0.Add(time.Duration(i)*time.Second))
	}
	if c := w.online("a", t0.Add(api.ClashWindow+time.Minute)); c != nil {
		t.Errorf("a clash long over still reported: %+v", c)
	}
}
