// Package firmware owns the rules of a care centre: which tap is an arrival,
// a departure, a refusal and why, and what the child and the staff are shown.
//
// It is pure logic. It must never touch a wire, a disk, a network or the wall
// clock: callers hand it the tap, the roster, the presence state and the time.
//
// # The rules of a tap (Decide)
//
// A card no child holds is unknown_card; a replaced, revoked or lost
// (conflict) card is replaced_card. For a child's active card:
//
//  1. The same child again within the duplicate window (60 s) of its last
//     tap is a duplicate. An automatic check-out is not a tap and opens no
//     window.
//  2. A child inside may always leave: check_out.
//  3. After closing time plus the grace period (30 min) — the moment the
//     closing sweep checks out children still inside — the day is over
//     (운영 종료): a child checked out automatically today who taps now is
//     leaving, and that check_out (reason departure_after_auto_check_out)
//     corrects the automatic one: one departure text, and the session ends
//     at the real time. Any other child is refused (no_data, reason
//     after_closing); never an arrival.
//  4. Otherwise a booking in use that covers today (its period and its
//     weekdays or dates) makes an arrival, early or late against the
//     booked window. When none does, the child is refused with the most
//     actionable reason any booking gives, in one order (refusalOrder):
//     the centre closed today; a booking for today still 이용예정 (Q19:
//     switch it to 이용중) or 신청; not a usage day for a booking in use
//     on other days (노데이터, Q21); a booking in use not started yet or
//     whose period is over; then bookings that are only history (이용예정
//     or 신청 for other days, 종료, 이용취소, 미승인); no booking at all.
//
// # Midnight
//
// A day is a KST calendar day and ends at 00:00. Presence never carries
// over: before the store decides the first tap of a new day it closes
// every day still open — each child still inside on an earlier day gets an
// auto_check_out (reason day_rolled_over) in the same record as the tap
// (RollOver) — so a session is never left open or overwritten.
//
// # Labels
//
// Every outcome, reason and flag has one label in Korean, in the FAQ's
// words, and in English (Label): the screen, kiumctl and the portal's views
// show those, and the codes stay on the wire and in JSON.
package firmware
