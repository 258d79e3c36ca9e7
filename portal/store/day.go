package store

import (
	"context"
	"slices"
	"sync"
	"time"

	"kiumtap/protocol"
)

// DayEvents are a centre's events of a day as read so far, and each log's
// last sequence read: a board reads only what was stored since it last
// looked (Events.EventsAfter), not the centre's history.
type DayEvents struct {
	mu    sync.Mutex
	start time.Time
	marks map[LogID]uint64
	evs   []protocol.Event
}

// Read brings the day's events up to date and returns them, for the day
// starting at start.
func (d *DayEvents) Read(ctx context.Context, events Events, centre string, start time.Time) ([]protocol.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if start.Before(d.start) { // the clock went back: read afresh
		d.marks, d.evs = nil, nil
	}
	if !start.Equal(d.start) {
		d.start = start
		d.evs = slices.DeleteFunc(d.evs, func(e protocol.Event) bool { return e.Time.Before(start) })
	}
	if d.marks == nil {
		d.marks = map[LogID]uint64{}
	}
	err := events.EventsAfter(ctx, centre, d.marks, func(e protocol.Event) bool {
		id := LogID{Device: e.Device, Log: e.Log}
		d.marks[id] = max(d.marks[id], e.Seq)
		if !e.Time.Before(start) {
			d.evs = append(d.evs, e)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(d.evs), nil
}
