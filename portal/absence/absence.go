// Package absence owns the not-arrived alert (미등원 알림) and the
// absence marks (결석) that suppress it.
//
// The rule: a child booked for today (firmware.ExpectedOn: a booking in
// use covers the day, and the centre opens) whose booked window started
// more than the centre's grace ago (source.Source.Grace, 30 minutes by
// default) with no arrival recorded today is reported to the centre's
// staff (the staff page, kiumbridge status, kiumctl alerts) and, where
// the centre's source enables it (not_arrived.guardians), to the guardians
// who get texts, with one message each. Never on a day the centre is
// closed or that is not a usage day of the child's bookings; never for a
// child staff marked absent for the day beforehand; a later arrival ends
// the alert (and the guardians get the arrival text as usual).
//
// Exactly once per child and day, whatever the number of bridge
// instances or restarts: the alert is recorded in the store's registry
// (table "notarrived", one key per centre, day and child) in a
// transaction that finds none there first, and the guardians' messages
// are queued by IDs of that key (store.TextQueue.Enqueue skips an ID
// queued already); the record says when they are queued, so a crash
// between the two queues them at the next check.
package absence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
)

// The registry's tables.
const (
	tAlerts = "notarrived" // day \0 centre \0 child → Alert
	tMarks  = "absent"     // day \0 centre \0 child → Mark
)

// Alert is a not-arrived alert.
type Alert struct {
	Centre string          `json:"centre"`
	Day    string          `json:"day"` // 2026-12-01 (KST)
	Child  string          `json:"child"`
	Window firmware.Window `json:"window"` // the day's booked window
	// Due is when the alert was due (the window's start and the grace);
	// Raised when an instance raised it.
	Due    time.Time `json:"due"`
	Raised time.Time `json:"raised"`
	// Guardians: the centre tells its guardians; Told: their messages are
	// queued (how many).
	Guardians bool `json:"guardians,omitempty"`
	Told      int  `json:"told,omitempty"`
	// Arrived is the arrival that ended the alert; zero while it is open.
	Arrived time.Time `json:"arrived,omitzero"`
}

// Open reports whether no arrival has ended the alert.
func (a Alert) Open() bool { return a.Arrived.IsZero() }

// Mark is an absence (결석) staff recorded for a child and a day.
type Mark struct {
	Centre string    `json:"centre"`
	Day    string    `json:"day"`
	Child  string    `json:"child"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Note   string    `json:"note,omitempty"`
}

// Queue is where the guardians' messages go (store.TextQueue has it).
type Queue interface {
	Enqueue(ctx context.Context, jobs ...store.Job) (int, error)
}

// Options configure a Watch. Zero values take the documented defaults.
type Options struct {
	// Reg keeps the alerts and the marks (shared by every instance).
	// Required.
	Reg store.Registry
	// Events are the terminals' events: the arrivals. Required.
	Events store.Events
	// Centres lists the centres to watch and Source gives each one's
	// source (nil: not served). Required.
	Centres func() []string
	Source  func(centre string) *source.Source
	// Texts queues the guardians' messages; nil: none are sent.
	Texts Queue
	// Raised is told of each alert raised or ended (the staff page's
	// boards look again); nil: nobody.
	Raised func(Alert)
	// Every is how often Run checks; default 30 s.
	Every  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Watch raises the not-arrived alerts.
type Watch struct {
	o    Options
	mu   sync.Mutex // one Check at a time
	days map[string]*store.DayEvents
}

// New checks the options.
func New(o Options) (*Watch, error) {
	if o.Reg == nil || o.Events == nil || o.Centres == nil || o.Source == nil {
		return nil, errors.New("absence: Reg, Events, Centres and Source are required")
	}
	if o.Every <= 0 {
		o.Every = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watch{o: o, days: map[string]*store.DayEvents{}}, nil
}

// Run checks every Every until ctx ends.
func (w *Watch) Run(ctx context.Context) error {
	t := time.NewTicker(w.o.Every)
	defer t.Stop()
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.o.Logger.Warn("absence: checking for children not arrived; trying again", "err", err, "in", w.o.Every)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check raises the alerts due now, ends those a later arrival answered,
// and queues the guardians' messages not yet queued, for every centre.
func (w *Watch) Check(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, c := range w.o.Centres() {
		if err := w.check(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("centre %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// key is an alert's or a mark's: the day first, so that a day's alerts
// of every centre are one range of the table (Watch.Today).
func key(centre, day, child string) []byte { return []byte(day + "\x00" + centre + "\x00" + child) }

func dayStart(now time.Time) time.Time {
	d := now.In(firmware.KST)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, firmware.KST)
}

func (w *Watch) check(ctx context.Context, centre string) error {
	src := w.o.Source(centre)
	if src == nil {
		return nil
	}
	now := w.o.Now()
	today := firmware.DateOf(now)
	day := today.String()
	expected := firmware.ExpectedOn(src.Roster, today)
	if len(expected) == 0 {
		return nil
	}
	d := w.days[centre]
	if d == nil {
		d = &store.DayEvents{}
		w.days[centre] = d
	}
	evs, err := d.Read(ctx, w.o.Events, centre, dayStart(now))
	if err != nil {
		return err
	}
	arrived := map[string]time.Time{}
	for _, e := range evs {
		if firmware.Outcome(e.Outcome) == firmware.CheckIn && e.Child != "" {
			if t, ok := arrived[e.Child]; !ok || e.Time.Before(t) {
				arrived[e.Child] = e.Time
			}
		}
	}
	grace, tell := src.Grace(), src.TellGuardians() && w.o.Texts != nil
	var changed, toTell []Alert
	err = w.o.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		changed, toTell = changed[:0], toTell[:0]
		for _, e := range expected {
			k := key(centre, day, e.ChildID)
			a, err := getAlert(tx, k)
			if err != nil {
				return err
			}
			in, came := arrived[e.ChildID]
			switch {
			case a != nil && a.Open() && came:
				a.Arrived = in
				if err := putJSON(tx, tAlerts, k, a); err != nil {
					return err
				}
				changed = append(changed, *a)
			case a != nil && a.Guardians && a.Told == 0 && a.Open():
				toTell = append(toTell, *a) // raised, its messages not yet queued
			case a != nil, came:
			default:
				due := today.At(e.Window.Start).Add(grace)
				if now.Before(due) {
					continue
				}
				if m, err := tx.Get(tMarks, k); err != nil || m != nil {
					if err != nil {
						return err
					}
					continue // marked absent: no alert
				}
				a := &Alert{Centre: centre, Day: day, Child: e.ChildID, Window: e.Window, Due: due, Raised: now, Guardians: tell}
				if err := putJSON(tx, tAlerts, k, a); err != nil {
					return err
				}
				changed = append(changed, *a)
				if tell {
					toTell = append(toTell, *a)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the alerts: %w", err)
	}
	for _, a := range changed {
		if a.Open() {
			w.o.Logger.Warn("absence: a child booked for today has not arrived", "centre", centre, "child", a.Child, "window", a.Window.String(), "due", a.Due)
		}
		if w.o.Raised != nil {
			w.o.Raised(a)
		}
	}
	for _, a := range toTell {
		if err := w.tell(ctx, src, a); err != nil {
			return err
		}
	}
	return nil
}

// tell queues the guardians' messages of an alert, then records them
// queued.
func (w *Watch) tell(ctx context.Context, src *source.Source, a Alert) error {
	start := firmware.DateOf(a.Due).At(a.Window.Start)
	now := w.o.Now()
	var jobs []store.Job
	for i, to := range src.Phones(a.Child) {
		jobs = append(jobs, store.Job{ID: fmt.Sprintf("na/%s/%s/%s/%d", a.Centre, a.Day, a.Child, i), EventID: "not_arrived/" + a.Day, Centre: a.Centre, Child: a.Child,
			Kind: "not_arrived", At: start, To: to, Created: now, State: store.JobPending, NextAt: now})
	}
	if len(jobs) > 0 {
		if _, err := w.o.Texts.Enqueue(ctx, jobs...); err != nil {
			return fmt.Errorf("queueing the guardians' messages: %w", err)
		}
	}
	k := key(a.Centre, a.Day, a.Child)
	return w.o.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		cur, err := getAlert(tx, k)
		if err != nil || cur == nil {
			return err
		}
		cur.Told = max(len(jobs), 1)
		return putJSON(tx, tAlerts, k, cur)
	})
}

func getAlert(tx store.RegistryTx, k []byte) (*Alert, error) {
	raw, err := tx.Get(tAlerts, k)
	if err != nil || raw == nil {
		return nil, err
	}
	var a Alert
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("a stored alert %q: %w", k, err)
	}
	return &a, nil
}

func putJSON(tx store.RegistryTx, table string, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(table, k, raw)
}

// Alerts are a centre's alerts of a day, by child.
func (w *Watch) Alerts(ctx context.Context, centre string, day firmware.Date) ([]Alert, error) {
	var out []Alert
	err := w.o.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out = out[:0]
		return tx.Scan(tAlerts, []byte(day.String()+"\x00"+centre+"\x00"), func(k, v []byte) error {
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("a stored alert %q: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Open are the alerts of a day still open, of every centre: one range
// of the table, whatever the number of centres.
func (w *Watch) Open(ctx context.Context, day firmware.Date) ([]Alert, error) {
	var out []Alert
	err := w.o.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out = out[:0]
		return tx.Scan(tAlerts, []byte(day.String()+"\x00"), func(k, v []byte) error {
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("a stored alert %q: %w", k, err)
			}
			if a.Open() {
				out = append(out, a)
			}
			return nil
		})
	})
	return out, err
}

// ErrNotBooked: an absence marked for a child not booked that day.
var ErrNotBooked = errors.New("absence: the child is not booked for that day")

// MarkAbsent records a child absent (결석) for a day, so that no alert
// is raised for it; an alert already raised stays (staff see both).
func (w *Watch) MarkAbsent(ctx context.Context, centre, child string, day firmware.Date, by, note string) error {
	src := w.o.Source(centre)
	if src == nil {
		return fmt.Errorf("absence: no centre %q here", centre)
	}
	if !slices.ContainsFunc(firmware.ExpectedOn(src.Roster, day), func(e firmware.Expected) bool { return e.ChildID == child }) {
		return fmt.Errorf("%w: %s on %s (a day the centre is closed, or not a usage day of the child's bookings)", ErrNotBooked, child, day)
	}
	m := Mark{Centre: centre, Day: day.String(), Child: child, By: by, At: w.o.Now(), Note: strings.TrimSpace(note)}
	return w.o.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		return putJSON(tx, tMarks, key(centre, m.Day, child), m)
	})
}

// Unmark takes an absence back.
func (w *Watch) Unmark(ctx context.Context, centre, child string, day firmware.Date) error {
	return w.o.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		return tx.Delete(tMarks, key(centre, day.String(), child))
	})
}

// Marks are a centre's absences of a day.
func (w *Watch) Marks(ctx context.Context, centre string, day firmware.Date) ([]Mark, error) {
	var out []Mark
	err := w.o.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out = out[:0]
		return tx.Scan(tMarks, []byte(day.String()+"\x00"+centre+"\x00"), func(k, v []byte) error {
			var m Mark
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("a stored absence %q: %w", k, err)
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}
