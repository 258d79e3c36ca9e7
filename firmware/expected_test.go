package firmware

import (
	"fmt"
	"testing"
)

// The children booked for a day, with the day's window: none on a closed
// day or a weekend, none whose bookings are not in use or not for the day
// (Q21), the widest window of two bookings, the centre's morning opening
// on a discretionary day.
func TestExpectedOn(t *testing.T) {
	r := testRoster(t)
	for _, tc := range []struct {
		day  string
		want string
	}{
		// Mon: c1 (M/W/F 14–18), c5 (weekdays to the 23rd), c6 (sick-child
		// 09–17 and its regular Tue/Thu: 09–17), c8 (weekdays 09–18).
		{"2026-11-23", "[{c1 14:00–18:00} {c5 13:00–18:00} {c6 09:00–17:00} {c8 09:00–18:00}]"},
		// Tue: c1 not a usage day; c5's booking over; c6 regular.
		{"2026-11-24", "[{c6 14:00–18:00} {c8 09:00–18:00}]"},
		// Wed: c2's temporary date.
		{"2026-11-25", "[{c1 14:00–18:00} {c2 10:00–15:00} {c8 09:00–18:00}]"},
		// A discretionary day (Fri): vacation hours open c1's window.
		{"2026-11-20", "[{c1 09:00–18:00} {c5 09:00–18:00} {c8 09:00–18:00}]"},
		{"2026-10-09", "[]"}, // Hangul Day: closed
		{"2026-11-28", "[]"}, // Saturday
		// Mon 2026-11-30: c7's booking only applied (신청), c3's scheduled.
		{"2026-11-30", "[{c1 14:00–18:00} {c8 09:00–18:00}]"},
	} {
		var got []string
		for _, e := range ExpectedOn(r, d(tc.day)) {
			got = append(got, fmt.Sprintf("{%s %s}", e.ChildID, e.Window))
		}
		if s := fmt.Sprint(got); s != tc.want && !(len(got) == 0 && tc.want == "[]") {
			t.Errorf("%s: %s, want %s", tc.day, s, tc.want)
		}
	}
}
