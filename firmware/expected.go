package firmware

// Expected is a child booked for a day: a booking in use covers it, on a
// day the centre opens. Window is the day's booked window (the widest of
// its bookings for the day; on a school's discretionary day off the
// centre's opening starts it, as an arrival's early or late flag has it).
type Expected struct {
	ChildID string
	Window  Window
}

// ExpectedOn lists the children booked for d, in the roster's order:
// none on a day the centre is closed, and no child whose bookings do not
// cover d (not a usage day of the booking, Q21) or are not in use.
func ExpectedOn(r *Roster, d Date) []Expected {
	day := r.Centre.DayOf(d)
	if !day.Open {
		return nil
	}
	var out []Expected
	for _, c := range r.Children {
		var todays []*Booking
		for _, b := range r.BookingsOf(c.ID) {
			if o, _, _ := b.standing(d); o == CheckIn {
				todays = append(todays, b)
			}
		}
		if len(todays) > 0 {
			out = append(out, Expected{ChildID: c.ID, Window: bookedWindow(day, todays)})
		}
	}
	return out
}

// bookedWindow is the widest window of a day's bookings; on a
// discretionary day the centre's opening starts it.
func bookedWindow(day Day, todays []*Booking) Window {
	w := todays[0].Window
	for _, b := range todays[1:] {
		w.Start, w.End = min(w.Start, b.Window.Start), max(w.End, b.Window.End)
	}
	if day.Discretionary {
		w.Start = min(w.Start, day.Hours.Start)
	}
	return w
}
