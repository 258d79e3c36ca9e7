package fleet

import (
	"encoding/binary"
	"fmt"
	"time"

	"kiumtap/firmware"
)

// Roster is a simulated centre's roster, revision 1: open every day of
// the 61 around today, all day, with children k1…kN, each with an active
// card (the key of CardUID under key) and a regular booking in use every
// day. Children[i] and Cards[i] are the same child's.
func Roster(centre string, children int, key []byte, today firmware.Date) *firmware.Roster {
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	from, to := today.AddDays(-30), today.AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	r := &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: centre, Name: "키움센터 " + centre,
		Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}}}
	for i := range children {
		id := fmt.Sprintf("k%d", i+1)
		r.Children = append(r.Children, firmware.Child{ID: id, Name: fmt.Sprintf("아동%d", i+1)})
		r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(key, CardUID(centre, i)), ChildID: id, State: firmware.CardActive})
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse,
			From: from, To: to, Weekdays: all, Window: day})
	}
	return r
}

// CardUID is the 7-byte UID of the card of a simulated centre's i-th
// child: unique per centre and child.
func CardUID(centre string, i int) []byte {
	var h uint32 = 2166136261 // FNV-1a of the centre
	for k := 0; k < len(centre); k++ {
		h = (h ^ uint32(centre[k])) * 16777619
	}
	uid := []byte{0x04, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(uid[1:5], h)
	binary.BigEndian.PutUint16(uid[5:7], uint16(i))
	return uid
}
