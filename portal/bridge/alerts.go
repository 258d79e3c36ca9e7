package bridge

import (
	"context"
	"errors"
	"fmt"

	"kiumtap/firmware"
	"kiumtap/portal/absence"
	"kiumtap/portal/api"
)

// dayOf reads a day (2026-12-01), today (KST) when empty.
func (b *Bridge) dayOf(day string) (firmware.Date, error) {
	if day == "" {
		return firmware.DateOf(b.o.Now()), nil
	}
	d, err := firmware.ParseDate(day)
	if err != nil {
		return d, badRequest(fmt.Sprintf("day %q: write it as 2026-12-01", day))
	}
	return d, nil
}

// Alerts returns a centre's not-arrived alerts and absences of a day
// (today when day is ""), names masked.
func (b *Bridge) Alerts(ctx context.Context, centre, day string) (*api.AlertsView, error) {
	src := b.source(centre)
	if src == nil {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	d, err := b.dayOf(day)
	if err != nil {
		return nil, err
	}
	as, err := b.absence.Alerts(ctx, centre, d)
	if err != nil {
		return nil, err
	}
	ms, err := b.absence.Marks(ctx, centre, d)
	if err != nil {
		return nil, err
	}
	name := func(child string) string {
		if c := src.Roster.ChildByID(child); c != nil {
			return firmware.MaskName(c.Name)
		}
		return child
	}
	v := &api.AlertsView{Centre: centre, Day: d.String(), Alerts: []api.AlertView{}, Absent: []api.AbsentView{}}
	for _, a := range as {
		v.Alerts = append(v.Alerts, alertView(a, name(a.Child)))
	}
	for _, m := range ms {
		v.Absent = append(v.Absent, api.AbsentView{Child: m.Child, Name: name(m.Child), By: m.By, At: m.At, Note: m.Note})
	}
	return v, nil
}

func alertView(a absence.Alert, name string) api.AlertView {
	return api.AlertView{Centre: a.Centre, Day: a.Day, Child: a.Child, Name: name, Window: a.Window.String(), Due: a.Due, Raised: a.Raised, Told: a.Told, Arrived: a.Arrived}
}

// MarkAbsent marks a child absent (결석) for a day, or takes it back.
func (b *Bridge) MarkAbsent(ctx context.Context, req api.AbsentRequest) error {
	if b.source(req.Centre) == nil {
		return fmt.Errorf("%w %q", api.ErrUnknownCentre, req.Centre)
	}
	d, err := b.dayOf(req.Day)
	if err != nil {
		return err
	}
	if req.Undo {
		return b.absence.Unmark(ctx, req.Centre, req.Child, d)
	}
	if req.By == "" {
		return badRequest("who marks the absence is required, kept with the mark (kiumctl: -by NAME)")
	}
	err = b.absence.MarkAbsent(ctx, req.Centre, req.Child, d, req.By, req.Note)
	if errors.Is(err, absence.ErrNotBooked) {
		return notBooked{err}
	}
	return err
}

// notArrived are today's open alerts of every centre served.
func (b *Bridge) notArrived() []api.AlertView {
	as, err := b.absence.Open(context.Background(), firmware.DateOf(b.o.Now()))
	if err != nil {
		b.log.Warn("bridge: reading the not-arrived alerts", "err", err)
		return nil
	}
	var out []api.AlertView
	for _, a := range as {
		src := b.source(a.Centre)
		if src == nil {
			continue
		}
		name := a.Child
		if ch := src.Roster.ChildByID(a.Child); ch != nil {
			name = firmware.MaskName(ch.Name)
		}
		out = append(out, alertView(a, name))
	}
	return out
}

// notBooked is an absence for a child not booked that day: a bad request
// that is absence.ErrNotBooked.
type notBooked struct{ error }

func (e notBooked) Unwrap() error { return e.error }

func (e notBooked) As(target any) bool {
	if br, ok := target.(*badRequest); ok {
		*br = badRequest(e.Error())
		return true
	}
	return false
}
