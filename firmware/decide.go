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
		p.Inside, p.Since = true, at
	case CheckOut, AutoCheckOut:
		p.Inside, p.Since = false, at
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
		p = Presence{Day: today} // yesterday's presence does not carry over
	}
	if !p.Since.IsZero() && now.Sub(p.Since) >= 0 && now.Sub(p.Since) < s.DuplicateWindow {
		return Decision{Outcome: Duplicate, Reason: ReasonWithinWindow, ChildID: child}
	}
	if p.Inside {
		// A child inside may always leave.
		return Decision{Outcome: CheckOut, Reason: ReasonDeparture, ChildID: child}
	}
	return arrival(r, child, now, today)
}

// arrival decides a tap of a child who is not inside.
func arrival(r *Roster, child string, now time.Time, today Date) Decision {
	refuse := func(o Outcome, why Reason) Decision { return Decision{Outcome: o, Reason: why, ChildID: child} }
	var inUse []*Booking
	why := ReasonNoBooking
	rank := func(x Reason) int { return slices.Index(notInUseOrder, x) }
	for _, b := range r.BookingsOf(child) {
		var w Reason
		switch {
		case b.Status != InUse:
			w = statusReason[b.Status]
		case b.To.Before(today):
			w = ReasonPeriodOver
		case today.Before(b.From):
			w = ReasonNotYetStarted
		default:
			inUse = append(inUse, b)
			continue
		}
		if rank(w) < rank(why) {
			why = w
		}
	}
	if len(inUse) == 0 {
		return refuse(NotInUse, why)
	}
	day := r.Centre.DayOf(today)
	if !day.Open {
		return refuse(NoData, ReasonCentreClosed)
	}
	var todays []*Booking
	for _, b := range inUse {
		if b.usesDay(today) {
			todays = append(todays, b)
		}
	}
	if len(todays) == 0 {
		return refuse(NoData, ReasonNotUsageDay)
	}
	d := Decision{Outcome: CheckIn, Reason: ReasonArrival, ChildID: child}
	// Early or late against the widest window booked for today; on a
	// discretionary day children come in the morning: the centre's hours
	// open the window.
	start, end := todays[0].Window.Start, todays[0].Window.End
	for _, b := range todays[1:] {
		start, end = min(start, b.Window.Start), max(end, b.Window.End)
	}
	if day.Discretionary {
		start = min(start, day.Hours.Start)
	}
	switch c := ClockOf(now); {
	case c < start:
		d.Flags = append(d.Flags, FlagEarly)
	case c >= end:
		d.Flags = append(d.Flags, FlagLate)
	}
	return d
}

// notInUseOrder ranks reasons for refusing a child with no booking in use:
// the first one a booking gives is the most useful to staff (a scheduled
// booking that only needs switching to in use beats an old cancelled one).
var notInUseOrder = []Reason{
	ReasonScheduled, ReasonApplied, ReasonNotYetStarted, ReasonPeriodOver,
	ReasonEnded, ReasonCancelled, ReasonRejected, ReasonNoBooking,
}

var statusReason = map[BookingStatus]Reason{
	Applied: ReasonApplied, Scheduled: ReasonScheduled, Rejected: ReasonRejected,
	Cancelled: ReasonCancelled, Ended: ReasonEnded,
}

// usesDay reports whether an in-use booking covers day d.
func (b *Booking) usesDay(d Date) bool {
	if d.Before(b.From) || b.To.Before(d) {
		return false
	}
	if b.Type == Regular {
		return slices.Contains(b.Weekdays, d.Weekday())
	}
	return slices.Contains(b.Dates, d)
}

// CloseDay returns the auto_check_out decisions due at now: children still
// inside at their day's closing time plus the grace period, and children
// left inside on an earlier day (the terminal was off at closing).
func CloseDay(r *Roster, presence map[string]Presence, now time.Time, s Settings) []Decision {
	s = s.WithDefaults()
	today := DateOf(now)
	var out []Decision
	ids := make([]string, 0, len(presence))
	for id := range presence {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := presence[id]
		if !p.Inside {
			continue
		}
		switch {
		case p.Day.Before(today):
			out = append(out, Decision{Outcome: AutoCheckOut, Reason: ReasonDayRolledOver, ChildID: id, Flags: []Flag{FlagAuto}})
		case p.Day == today:
			day := r.Centre.DayOf(today)
			closing := today.At(24 * 60)
			if day.Open {
				closing = today.At(day.Hours.End)
			}
			if !now.Before(closing.Add(s.CloseGrace)) {
				out = append(out, Decision{Outcome: AutoCheckOut, Reason: ReasonClosingTime, ChildID: id, Flags: []Flag{FlagAuto}})
			}
		}
	}
	return out
}

// CardKey is how the terminal names a card: HMAC-SHA256 of the UID under the
// centre's key, cut to 16 bytes, in hex. The roster and the events carry it
// instead of the UID.
func CardKey(centreKey, uid []byte) string {
	m := hmac.New(sha256.New, centreKey)
	m.Write(uid)
	return hex.EncodeToString(m.Sum(nil)[:16])
}
