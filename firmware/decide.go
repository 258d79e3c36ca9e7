package firmware

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// Outcome is what a tap amounts to.
type Outcome string

// Outcomes.
const (
	CheckIn      Outcome = "check_in"      // 입실
	CheckOut     Outcome = "check_out"     // 퇴실
	Duplicate    Outcome = "duplicate"     // the same child again within the window
	NoData       Outcome = "no_data"       // 노데이터: in use, but not a usage day (Q21)
	NotInUse     Outcome = "not_in_use"    // no booking in use (Q17, Q19)
	UnknownCard  Outcome = "unknown_card"  // not bound to any child (Q17)
	ReplacedCard Outcome = "replaced_card" // replaced or revoked (Q20)
	AutoCheckOut Outcome = "auto_check_out"
	// CardBound is not a tap: a card bound to a child (card enrolment).
	CardBound Outcome = "card_bound"
)

func (o Outcome) String() string { return string(o) }

// Accepted reports whether the outcome changes presence (and texts parents).
func (o Outcome) Accepted() bool { return o == CheckIn || o == CheckOut || o == AutoCheckOut }

// Reason says why, for staff.
type Reason string

// Reasons.
const (
	ReasonArrival          Reason = "arrival"
	ReasonDeparture        Reason = "departure"
	ReasonWithinWindow     Reason = "within_duplicate_window"
	ReasonCentreClosed     Reason = "centre_closed"
	ReasonNotUsageDay      Reason = "not_a_usage_day"
	ReasonNoBooking        Reason = "no_booking"
	ReasonApplied          Reason = "booking_applied"
	ReasonScheduled        Reason = "booking_scheduled"
	ReasonRejected         Reason = "booking_rejected"
	ReasonCancelled        Reason = "booking_cancelled"
	ReasonEnded            Reason = "booking_ended"
	ReasonPeriodOver       Reason = "booking_period_over"
	ReasonNotYetStarted    Reason = "booking_not_started"
	ReasonCardUnbound      Reason = "card_not_registered"
	ReasonCardReplaced     Reason = "card_replaced"
	ReasonCardRevoked      Reason = "card_revoked"
	ReasonCardConflict     Reason = "card_bound_elsewhere" // lost a conflict (docs/protocol.md)
	ReasonChildNotInRoster Reason = "child_not_in_roster"
	ReasonClosingTime      Reason = "closing_time"
	ReasonDayRolledOver    Reason = "day_rolled_over"
	// After closing time plus the grace period (운영 종료): a child who
	// was not inside cannot arrive; one checked out automatically today
	// leaves, and that departure corrects the automatic one.
	ReasonAfterClosing     Reason = "after_closing"
	ReasonCorrectsAutoExit Reason = "departure_after_auto_check_out"
)

// Flag qualifies an outcome.
type Flag string

// Flags.
const (
	FlagEarly       Flag = "early"        // arrival before the booked window
	FlagLate        Flag = "late"         // arrival after the booked window
	FlagRosterStale Flag = "roster_stale" // decided on a roster older than Settings.StaleAfter
	FlagAuto        Flag = "auto_check_out"
)

// Settings are the centre's knobs for decisions.
type Settings struct {
	// DuplicateWindow: a second tap of the same child within it is a
	// duplicate, like a time clock's duplicate punch period. Default 60 s.
	DuplicateWindow time.Duration
	// StaleAfter: a roster older than this still decides; events get the
	// roster_stale flag. Default 72 h.
	StaleAfter time.Duration
	// CloseGrace: children still inside at closing time plus this get an
	// auto_check_out. Default 30 min.
	CloseGrace time.Duration
}

// WithDefaults returns s with zero fields set to their defaults.
func (s Settings) WithDefaults() Settings {
	if s.DuplicateWindow == 0 {
		s.DuplicateWindow = 60 * time.Second
	}
	if s.StaleAfter == 0 {
		s.StaleAfter = 72 * time.Hour
	}
	if s.CloseGrace == 0 {
		s.CloseGrace = 30 * time.Minute
	}
	return s
}

// Presence is a child's state for a day, as the store keeps it.
type Presence struct {
	Day     Date      `json:"day"`
	Inside  bool      `json:"inside"`
	Since   time.Time `json:"since,omitzero"`    // last accepted tap
	LastTap time.Time `json:"last_tap,omitzero"` // last tap of any outcome that named the child
	// AutoOut: the child's last move today was an automatic check-out at
	// closing; their next tap today is the real departure.
	AutoOut bool `json:"auto_out,omitempty"`
}

// After returns the presence that follows a decision taken at time at: an
// accepted tap moves the child in or out, any tap naming the child is its
// last tap, and a new day starts from nothing (an auto_check_out closes the
// day it belongs to). A card no child holds changes nothing.
func (p Presence) After(d Decision, at time.Time) Presence {
	if d.ChildID == "" || d.Outcome == UnknownCard {
		return p
	}
	if day := DateOf(at); p.Day != day && d.Outcome != AutoCheckOut {
		p = Presence{Day: day}
	}
	switch d.Outcome {
	case CheckIn:
		p.Inside, p.Since, p.AutoOut = true, at, false
	case CheckOut:
		p.Inside, p.Since, p.AutoOut = false, at, false
	case AutoCheckOut:
		p.Inside, p.Since, p.AutoOut = false, at, true
	}
	p.LastTap = at
	return p
}

// Decision is the answer to a tap.
type Decision struct {
	Outcome Outcome
	Reason  Reason
	Flags   []Flag
	ChildID string
}

// Has reports whether the decision carries flag f.
func (d Decision) Has(f Flag) bool { return slices.Contains(d.Flags, f) }

// Tap is a card presented at a time.
type Tap struct {
	CardKey string    // the UID's HMAC, see CardKey
	At      time.Time // the terminal's best idea of now
}

// Input is all a decision depends on.
type Input struct {
	Tap       Tap
	Roster    *Roster // validated
	RosterAge time.Duration
	// Presence returns the stored presence of a child (zero if none).
	Presence func(childID string) Presence
	Settings Settings
}

// Decide decides a tap. It is a pure function of its input.
func Decide(in Input) Decision {
	s := in.Settings.WithDefaults()
	d := decide(in, s)
	if in.RosterAge > s.StaleAfter {
		d.Flags = append(d.Flags, FlagRosterStale)
	}
	return d
}

func decide(in Input, s Settings) Decision {
	r := in.Roster
	card := r.CardByKey(in.Tap.CardKey)
	switch {
	case card == nil:
		return Decision{Outcome: UnknownCard, Reason: ReasonCardUnbound}
	case card.State == CardReplaced:
		return Decision{Outcome: ReplacedCard, Reason: ReasonCardReplaced, ChildID: card.ChildID}
	case card.State == CardRevoked:
		return Decision{Outcome: ReplacedCard, Reason: ReasonCardRevoked, ChildID: card.ChildID}
	case card.State == CardConflict:
		return Decision{Outcome: ReplacedCard, Reason: ReasonCardConflict, ChildID: card.ChildID}
	case r.ChildByID(card.ChildID) == nil:
		return Decision{Outcome: UnknownCard, Reason: ReasonChildNotInRoster, ChildID: card.ChildID}
	}
	child := card.ChildID
	now := in.Tap.At
	today := DateOf(now)
	p := in.Presence(child)
	if p.Day != today {
		p = Presence{Day: today} // yesterday's presence does not carry over (the store closed it)
	}
	// An automatic check-out is not the child's tap: it opens no
	// duplicate window.
	if !p.AutoOut && !p.Since.IsZero() && now.Sub(p.Since) >= 0 && now.Sub(p.Since) < s.DuplicateWindow {
		return Decision{Outcome: Duplicate, Reason: ReasonWithinWindow, ChildID: child}
	}
	if p.Inside {
		// A child inside may always leave.
		return Decision{Outcome: CheckOut, Reason: ReasonDeparture, ChildID: child}
	}
	if closed, open := ClosedAt(r, today, s); open && !now.Before(closed) {
		// After closing plus the grace period (운영 종료): the day is over.
		if p.AutoOut {
			// Checked out automatically at closing, leaving now: the real
			// departure, which corrects the automatic one.
			return Decision{Outcome: CheckOut, Reason: ReasonCorrectsAutoExit, ChildID: child}
		}
		return Decision{Outcome: NoData, Reason: ReasonAfterClosing, ChildID: child}
	}
	return arrival(r, child, now, today)
}

// ClosedAt is when the centre's day ends for taps: its closing time on
// today plus the grace period, the moment children still inside are
// checked out automatically. open is false on a day the centre is closed.
func ClosedAt(r *Roster, today Date, s Settings) (at time.Time, open bool) {
	s = s.WithDefaults()
	day := r.Centre.DayOf(today)
	if !day.Open {
		return today.At(24 * 60).Add(s.CloseGrace), false
	}
	return today.At(day.Hours.End).Add(s.CloseGrace), true
}

// arrival decides a tap of a child who is not inside, on a day the centre
// has not yet closed: an arrival when a booking in use covers today, else
// the most actionable reason why not (refusalOrder).
func arrival(r *Roster, child string, now time.Time, today Date) Decision {
	day := r.Centre.DayOf(today)
	if !day.Open {
		return Decision{Outcome: NoData, Reason: ReasonCentreClosed, ChildID: child}
	}
	var todays []*Booking
	best, bestRank := Decision{Outcome: NotInUse, Reason: ReasonNoBooking, ChildID: child}, len(refusalOrder)
	for _, b := range r.BookingsOf(child) {
		o, why, forToday := b.standing(today)
		if o == CheckIn {
			todays = append(todays, b)
			continue
		}
		if k := refusalRank(why, forToday); k < bestRank {
			best, bestRank = Decision{Outcome: o, Reason: why, ChildID: child}, k
		}
	}
	if len(todays) == 0 {
		return best
	}
	d := Decision{Outcome: CheckIn, Reason: ReasonArrival, ChildID: child}
	// Early or late against the widest window booked for today; on a
	// discretionary day children come in the morning: the centre's hours
	// open the window.
	w := bookedWindow(day, todays)
	switch c := ClockOf(now); {
	case c < w.Start:
		d.Flags = append(d.Flags, FlagEarly)
	case c >= w.End:
		d.Flags = append(d.Flags, FlagLate)
	}
	return d
}

// standing is what one booking says of an arrival today: CheckIn when it
// is in use and covers today; otherwise the outcome and reason it refuses
// with, and whether it is about today (a booking whose period and days
// cover today, whatever its status).
func (b *Booking) standing(today Date) (o Outcome, why Reason, forToday bool) {
	inPeriod := !today.Before(b.From) && !b.To.Before(today)
	forToday = inPeriod && b.onDay(today)
	switch {
	case b.Status != InUse:
		return NotInUse, statusReason[b.Status], forToday
	case forToday:
		return CheckIn, ReasonArrival, true
	case today.Before(b.From):
		return NotInUse, ReasonNotYetStarted, false
	case b.To.Before(today):
		return NotInUse, ReasonPeriodOver, false
	}
	return NoData, ReasonNotUsageDay, false // in use, on other days (Q21)
}

// refusalOrder ranks the reasons a child who is not inside cannot arrive,
// the most actionable for staff first: a booking for today that only
// needs switching to 이용중 (Q19) beats "not a usage day" (Q21) from a
// booking for other days, which beats a booking's period, which beats a
// booking that is only history. When a child's bookings give several
// reasons, the first in this order is the one decided and shown.
var refusalOrder = []string{
	"today:" + string(ReasonScheduled), // 이용예정 for today: switch it to 이용중 (Q19)
	"today:" + string(ReasonApplied),   // 신청 for today: approve it
	string(ReasonNotUsageDay),          // 이용중, but not on today's weekday or date (Q21)
	string(ReasonNotYetStarted),        // 이용중 from a later date
	string(ReasonPeriodOver),           // 이용중 until an earlier date: extend it (Q8)
	string(ReasonScheduled),            // 이용예정 for other days
	string(ReasonApplied),
	string(ReasonEnded),
	string(ReasonCancelled),
	string(ReasonRejected),
	string(ReasonNoBooking),
}

func refusalRank(why Reason, forToday bool) int {
	if forToday {
		if k := slices.Index(refusalOrder, "today:"+string(why)); k >= 0 {
			return k
		}
	}
	if k := slices.Index(refusalOrder, string(why)); k >= 0 {
		return k
	}
	return len(refusalOrder)
}

var statusReason = map[BookingStatus]Reason{
	Applied: ReasonApplied, Scheduled: ReasonScheduled, Rejected: ReasonRejected,
	Cancelled: ReasonCancelled, Ended: ReasonEnded,
}

// onDay reports whether the booking's days include d (its weekdays for
// regular care, its dates otherwise), whatever its period and status.
func (b *Booking) onDay(d Date) bool {
	if b.Type == Regular {
		return slices.Contains(b.Weekdays, d.Weekday())
	}
	return slices.Contains(b.Dates, d)
}

// CloseDay returns the auto_check_out decisions due at now: children still
// inside at their day's closing time plus the grace period, and children
// left inside on an earlier day (RollOver).
func CloseDay(r *Roster, presence map[string]Presence, now time.Time, s Settings) []Decision {
	out := RollOver(presence, now)
	today := DateOf(now)
	for _, id := range sortedIDs(presence) {
		p := presence[id]
		if !p.Inside || p.Day != today {
			continue
		}
		if closed, _ := ClosedAt(r, today, s); !now.Before(closed) {
			out = append(out, Decision{Outcome: AutoCheckOut, Reason: ReasonClosingTime, ChildID: id, Flags: []Flag{FlagAuto}})
		}
	}
	return out
}

// RollOver returns the auto_check_out decisions that close earlier days:
// children still inside on a day before now's. The midnight rule: a day
// ends at 00:00 KST, and the store closes every day left open before it
// decides the first tap of a new day, in the same record, so no session
// is ever left open or overwritten by the new day's.
func RollOver(presence map[string]Presence, now time.Time) []Decision {
	today := DateOf(now)
	var out []Decision
	for _, id := range sortedIDs(presence) {
		if p := presence[id]; p.Inside && p.Day.Before(today) {
			out = append(out, Decision{Outcome: AutoCheckOut, Reason: ReasonDayRolledOver, ChildID: id, Flags: []Flag{FlagAuto}})
		}
	}
	return out
}

func sortedIDs(presence map[string]Presence) []string {
	ids := make([]string, 0, len(presence))
	for id := range presence {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// CardKey is how the terminal names a card: HMAC-SHA256 of the UID under the
// centre's key, cut to 16 bytes, in hex. The roster and the events carry it
// instead of the UID.
func CardKey(centreKey, uid []byte) string {
	m := hmac.New(sha256.New, centreKey)
	m.Write(uid)
	return hex.EncodeToString(m.Sum(nil)[:16])
}
