package main

import (
	"slices"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/protocol"
)

type protocolEvent = protocol.Event

// demoSource is the centre's roster source for today: 김민준, 이서연 and
// 정서준 in use every day; 박지호 only scheduled; 최하은 in use on every
// weekday but today's; teacher 박선생's staff card opens card enrolment. Opening hours 13:00–19:00, so a child who never
// taps out is checked out automatically at 19:30. The not-arrived alert
// comes 45 minutes after a booked window starts (13:45: 정서준, who
// comes at 14:00), and guardians are told.
func demoSource(today firmware.Date, uid func(string) []byte) *source.Source {
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	notToday := slices.DeleteFunc(slices.Clone(all), func(d time.Weekday) bool { return d == today.Weekday() })
	from, to := today.AddDays(-30), today.AddDays(60)
	hours := firmware.Window{Start: 13 * 60, End: 19 * 60}
	booked := firmware.Window{Start: 13 * 60, End: 18 * 60}
	key := func(card string) string { return firmware.CardKey(centreKey, uid(card)) }
	since := time.Date(today.Year, today.Month, today.Day, 0, 0, 0, 0, firmware.KST).AddDate(0, -1, 0)
	r := &firmware.Roster{
		Revision: 1,
		Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: from, To: to, Hours: hours, Weekdays: all},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}, {ID: "c4", Name: "최하은"}, {ID: "c5", Name: "정서준"}},
		Cards: []firmware.Card{
			{Key: key("minjun"), ChildID: "c1", State: firmware.CardActive, Since: since},
			{Key: key("seoyeon"), ChildID: "c2", State: firmware.CardActive, Since: since},
			{Key: key("jiho"), ChildID: "c3", State: firmware.CardActive, Since: since},
			{Key: key("haeun"), ChildID: "c4", State: firmware.CardActive, Since: since},
			{Key: key("seojun"), ChildID: "c5", State: firmware.CardActive, Since: since},
		},
		Bookings: []firmware.Booking{
			{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: booked},
			{ID: "b2", ChildID: "c2", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: booked},
			{ID: "b3", ChildID: "c3", Type: firmware.Regular, Status: firmware.Scheduled, From: from, To: to, Weekdays: all, Window: booked},
			{ID: "b4", ChildID: "c4", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: notToday, Window: booked},
			{ID: "b5", ChildID: "c5", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: booked},
		},
		Staff: []firmware.Staff{{ID: "t1", Name: "박선생", Key: key("teacher")}},
	}
	return &source.Source{Roster: r, Guardians: map[string][]source.Guardian{
		"c1": {{Name: "김지현", Phone: "01012345678", Texts: true}, {Name: "김도윤", Phone: "01098765432", Texts: true}},
		"c2": {{Name: "이수진", Phone: "01022223333", Texts: true}},
		"c3": {{Name: "박미경", Phone: "01044445555", Texts: true}},
		"c4": {{Name: "최영호", Phone: "01066667777", Texts: true}},
		"c5": {{Name: "정은지", Phone: "01088889999", Texts: true}, {Name: "정우성", Phone: "01011112222", Texts: false}},
	}, NotArrived: &source.NotArrived{GraceMinutes: 45, Guardians: true}}
}
