package absence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/pgtest"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

var ctx = context.Background()

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, firmware.KST)
	if err != nil {
		panic(err)
	}
	return t
}

func date(s string) firmware.Date {
	d, err := firmware.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// testSource: a centre open Mon–Fri 13:00–19:00, closed on Christmas;
// c1 books every weekday 14:00–18:00 (two guardians who get texts), c2
// Mon/Wed/Fri 15:00–18:00, c3's booking is still 이용예정.
func testSource(t *testing.T, tell bool) *source.Source {
	t.Helper()
	wk := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	win := func(a, b string) firmware.Window {
		x, _ := firmware.ParseClock(a)
		y, _ := firmware.ParseClock(b)
		return firmware.Window{Start: x, End: y}
	}
	r := &firmware.Roster{Revision: 1,
		Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동",
			Terms:  []firmware.Term{{Name: "2학기", From: date("2026-09-01"), To: date("2026-12-31"), Hours: win("13:00", "19:00")}},
			Closed: []firmware.Date{date("2026-12-25")}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}},
		Bookings: []firmware.Booking{
			{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: date("2026-09-01"), To: date("2026-12-31"), Weekdays: wk, Window: win("14:00", "18:00")},
			{ID: "b2", ChildID: "c2", Type: firmware.Regular, Status: firmware.InUse, From: date("2026-09-01"), To: date("2026-12-31"),
				Weekdays: []time.Weekday{time.Monday, time.Wednesday, time.Friday}, Window: win("15:00", "18:00")},
			{ID: "b3", ChildID: "c3", Type: firmware.Regular, Status: firmware.Scheduled, From: date("2026-09-01"), To: date("2026-12-31"), Weekdays: wk, Window: win("14:00", "18:00")},
		}}
	src := &source.Source{Roster: r, Guardians: map[string][]source.Guardian{"c1": {{Name: "엄마", Phone: "010-1234-5678", Texts: true}, {Name: "아빠", Phone: "010-2222-3333", Texts: true}}},
		NotArrived: &source.NotArrived{Guardians: tell}}
	if err := src.Validate(); err != nil {
		t.Fatal(err)
	}
	return src
}

// site is a store, a settable clock and watches on it (instances).
type site struct {
	t      *testing.T
	st     store.Store
	src    *source.Source
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	raised []Alert
}

func newSite(t *testing.T, tell bool) *site {
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &site{t: t, st: b.Contract(), src: testSource(t, tell)}
}

func (s *site) clock() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.now }

func (s *site) set(when string) { s.mu.Lock(); s.now = at(when); s.mu.Unlock() }

// watch is one bridge instance's watch.
func (s *site) watch() *Watch {
	w, err := New(Options{Reg: s.st, Events: s.st, Texts: s.st, Centres: func() []string { return []string{"mangwon1"} },
		Source: func(c string) *source.Source { return s.src }, Now: s.clock,
		Raised: func(a Alert) { s.mu.Lock(); s.raised = append(s.raised, a); s.mu.Unlock() }})
	if err != nil {
		s.t.Fatal(err)
	}
	return w
}

// arrive stores c's arrival at the site's clock.
func (s *site) arrive(child string) {
	s.seq++
	e := protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", s.seq), Centre: "mangwon1", Device: "door", Log: "L", Seq: s.seq, Time: s.clock(), ClockSynced: true,
		Child: child, Outcome: string(firmware.CheckIn), Reason: string(firmware.ReasonArrival)}
	if _, err := s.st.Put(ctx, []protocol.Event{e}, store.Plan{}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) check(w *Watch) {
	s.t.Helper()
	if err := w.Check(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// open lists the open alerts of the day as "child@due".
func (s *site) alerts(w *Watch, day string) []string {
	s.t.Helper()
	as, err := w.Alerts(ctx, "mangwon1", date(day))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		st := "open"
		if !a.Open() {
			st = "arrived " + a.Arrived.In(firmware.KST).Format("15:04")
		}
		out = append(out, a.Child+"@"+a.Due.In(firmware.KST).Format("15:04")+" "+st)
	}
	return out
}

// texts lists the not-arrived texts queued.
func (s *site) texts() []string {
	var out []string
	s.st.CentreJobs(ctx, "mangwon1", at("2026-01-01 00:00"), func(j store.Job) bool {
		if j.Kind == "not_arrived" {
			out = append(out, j.ID+" "+j.To+" "+j.At.In(firmware.KST).Format("15:04"))
		}
		return true
	})
	return out
}

// The rule on a settable clock: the alert comes at the window's start
// plus the grace and not before; a child who arrived, or whose booking is
// not in use, gets none; a later arrival ends it; the guardians' messages
// are queued once, where the centre enables them.
func TestAlertAtWindowStartPlusGrace(t *testing.T) {
	s := newSite(t, true)
	w := s.watch()
	s.set("2026-12-02 14:29") // Wed: c1 from 14:00, c2 from 15:00
	s.check(w)
	if got := s.alerts(w, "2026-12-02"); len(got) != 0 {
		t.Fatalf("alerts before the grace passed: %v", got)
	}
	s.set("2026-12-02 14:30")
	s.check(w)
	if got := s.alerts(w, "2026-12-02"); !slices.Equal(got, []string{"c1@14:30 open"}) {
		t.Fatalf("at 14:30: %v", got)
	}
	want := []string{"na/mangwon1/2026-12-02/c1/0 01012345678 14:00", "na/mangwon1/2026-12-02/c1/1 01022223333 14:00"}
	if got := s.texts(); !slices.Equal(got, want) {
		t.Fatalf("the guardians' messages: %v, want %v", got, want)
	}
	s.set("2026-12-02 14:50")
	s.arrive("c2") // before its window: no alert for c2
	s.check(w)
	s.set("2026-12-02 15:40")
	s.check(w)
	if got := s.alerts(w, "2026-12-02"); !slices.Equal(got, []string{"c1@14:30 open"}) {
		t.Fatalf("c2 arrived, c3 only scheduled: %v", got)
	}
	s.arrive("c1")
	s.check(w)
	if got := s.alerts(w, "2026-12-02"); !slices.Equal(got, []string{"c1@14:30 arrived 15:40"}) {
		t.Fatalf("after c1's arrival: %v", got)
	}
	if got := s.texts(); len(got) != 2 {
		t.Errorf("the guardians' messages after the arrival: %v", got)
	}
	if len(s.raised) != 2 || !s.raised[0].Open() || s.raised[1].Open() {
		t.Errorf("told of %+v, want the alert then its end", s.raised)
	}
}

// No alert on a day the centre is closed, on a day that is not a usage
// day of the booking (Q21), or for a child marked absent beforehand; a
// mark for a day the child is not booked is refused.
func TestNoAlert(t *testing.T) {
	s := newSite(t, true)
	w := s.watch()
	s.set("2026-12-25 17:00") // Christmas, a Friday
	s.check(w)
	if got := s.alerts(w, "2026-12-25"); len(got) != 0 {
		t.Errorf("on a closed day: %v", got)
	}
	s.set("2026-12-05 17:00") // Saturday
	s.check(w)
	s.set("2026-12-03 17:00") // Thursday: c2 books Mon/Wed/Fri
	if err := w.MarkAbsent(ctx, "mangwon1", "c1", date("2026-12-03"), "mangwon.kim", "병원 진료"); err != nil {
		t.Fatal(err)
	}
	s.check(w)
	if got := s.alerts(w, "2026-12-03"); len(got) != 0 {
		t.Errorf("c1 marked absent, c2 not a usage day: %v", got)
	}
	if got := s.texts(); len(got) != 0 {
		t.Errorf("texts queued: %v", got)
	}
	marks, _ := w.Marks(ctx, "mangwon1", date("2026-12-03"))
	if len(marks) != 1 || marks[0].By != "mangwon.kim" || marks[0].Note != "병원 진료" {
		t.Errorf("marks: %+v", marks)
	}
	if err := w.MarkAbsent(ctx, "mangwon1", "c2", date("2026-12-03"), "mangwon.kim", ""); !errors.Is(err, ErrNotBooked) {
		t.Errorf("a mark on a day c2 is not booked: %v", err)
	}
	if err := w.Unmark(ctx, "mangwon1", "c1", date("2026-12-03")); err != nil {
		t.Fatal(err)
	}
	s.check(w)
	if got := s.alerts(w, "2026-12-03"); !slices.Equal(got, []string{"c1@14:30 open"}) {
		t.Errorf("after the mark is taken back: %v", got)
	}
}

// Staff only, where the centre does not tell guardians.
func TestStaffOnly(t *testing.T) {
	s := newSite(t, false)
	w := s.watch()
	s.set("2026-12-02 16:00")
	s.check(w)
	if got := s.alerts(w, "2026-12-02"); len(got) != 2 {
		t.Errorf("alerts: %v", got)
	}
	if got := s.texts(); len(got) != 0 {
		t.Errorf("guardians told though the centre does not: %v", got)
	}
}

// Exactly once per child and day: across a restart (a new watch on the
// same store), and across two instances checking at once, the alert is
// raised once and each guardian's message queued once.
func TestExactlyOnce(t *testing.T) {
	s := newSite(t, true)
	s.set("2026-12-02 14:30")
	first := s.watch()
	s.check(first)
	restarted := s.watch()
	s.set("2026-12-02 14:31")
	s.check(restarted)
	a, b := s.watch(), s.watch()
	s.set("2026-12-02 15:30")
	var wg sync.WaitGroup
	for _, w := range []*Watch{a, b, a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); s.check(w) }()
	}
	wg.Wait()
	if got := s.alerts(restarted, "2026-12-02"); !slices.Equal(got, []string{"c1@14:30 open", "c2@15:30 open"}) {
		t.Errorf("alerts: %v", got)
	}
	if got := s.texts(); len(got) != 2 {
		t.Errorf("the guardians' messages: %v, want one each", got)
	}
	if open, err := a.Open(ctx, date("2026-12-02")); err != nil || len(open) != 2 {
		t.Errorf("the day's open alerts of every centre: %+v %v", open, err)
	}
	if open, _ := a.Open(ctx, date("2026-12-03")); len(open) != 0 {
		t.Errorf("the next day's: %+v", open)
	}
	opened := 0
	for _, r := range s.raised {
		if r.Child == "c2" {
			opened++
		}
	}
	if opened != 1 {
		t.Errorf("c2's alert raised %d times", opened)
	}
}

// Exactly once on PostgreSQL too, with each instance on a connection pool
// of its own (as bridges on two hosts): four checks at once, from two
// instances, raise each alert once and queue each message once.
func TestExactlyOnceOnPostgreSQL(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	open := func() store.Store {
		st, err := pgstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	s := &site{t: t, st: open(), src: testSource(t, true)}
	other := &site{t: t, st: open(), src: s.src}
	s.set("2026-12-02 15:30")
	other.set("2026-12-02 15:30")
	a, b := s.watch(), other.watch()
	var wg sync.WaitGroup
	for _, w := range []*Watch{a, b, a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); s.check(w) }()
	}
	wg.Wait()
	if got := s.alerts(b, "2026-12-02"); !slices.Equal(got, []string{"c1@14:30 open", "c2@15:30 open"}) {
		t.Errorf("alerts: %v", got)
	}
	if got := s.texts(); len(got) != 2 {
		t.Errorf("the guardians' messages: %v, want one each", got)
	}
	if n := len(s.raised) + len(other.raised); n != 2 {
		t.Errorf("%d alerts raised, want 2", n)
	}
}

// A crash between raising the alert and queueing the guardians' messages:
// the next check queues them.
func TestToldAfterACrash(t *testing.T) {
	s := newSite(t, true)
	s.set("2026-12-02 14:30")
	w := s.watch()
	w.o.Texts = failing{}
	if err := w.Check(ctx); err == nil {
		t.Fatal("a queue that fails: no error")
	}
	if got := s.texts(); len(got) != 0 {
		t.Fatalf("queued: %v", got)
	}
	s.check(s.watch())
	if got := s.texts(); len(got) != 2 {
		t.Errorf("after the restart: %v", got)
	}
}

type failing struct{}

func (failing) Enqueue(context.Context, ...store.Job) (int, error) {
	return 0, errors.New("disk full")
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}
