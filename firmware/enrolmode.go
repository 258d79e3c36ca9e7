package firmware

import (
	"slices"
	"time"
)

// Button is one of the terminal's two enrolment buttons.
type Button int

// Buttons.
const (
	ButtonNext   Button = iota // scroll to the next child
	ButtonChoose               // choose the child shown
)

// Enroller is the terminal's enrolment mode, as pure logic: a staff card
// opens it; the buttons scroll and choose a child; the next card presented
// is bound to that child; the staff card again cancels, and so does
// silence for Timeout. It decides what to show and what to bind; the
// caller binds (Bind), records and shows.
//
// The portal may also open it for one child (StartFor): then the next card
// presented is bound to that child, and any staff card cancels.
type Enroller struct {
	// Timeout ends enrolment without a change; default 60 s.
	Timeout time.Duration
	// PortalTimeout is Timeout for an enrolment the portal opened, which
	// staff may have to walk to; default 5 min.
	PortalTimeout time.Duration

	staff  *Staff
	list   []string // child IDs, in scrolling order
	cursor int
	child  string // chosen; waiting for a card
	flow   Flow
	until  time.Time
}

// Binding is a card to bind to a child, handed over by the Enroller.
type Binding struct {
	Child, Card, By string
	Flow            Flow
}

// Step is what the terminal does after an enrolment input.
type Step struct {
	Screen []string
	// Bind, when set, asks the caller to bind Card to Child for staff By.
	Bind *Binding
	Done bool // enrolment ended (cancelled, timed out, or a card handed over)
}

// Active reports whether enrolment is open.
func (e *Enroller) Active() bool { return e.staff != nil }

// Tap handles a card presented. handled is false when the card is an
// ordinary tap: enrolment is closed and it is not a staff card; or no
// child is chosen yet (or the portal opened enrolment, with nobody
// perhaps at the door) and it is a child's active card — a child arriving
// meanwhile is not turned away. Enrolment then stays open.
func (e *Enroller) Tap(r *Roster, card string, now time.Time) (s Step, handled bool) {
	st := r.StaffByKey(card)
	if !e.Active() {
		if st == nil {
			return Step{}, false
		}
		e.start(r, st, now)
		return e.screen(r), true
	}
	if gone, ok := e.refresh(r); !ok {
		return gone, true
	}
	c := r.CardByKey(card)
	childsCard := c != nil && c.State == CardActive && st == nil
	switch {
	case st != nil && (st.ID == e.staff.ID || e.flow == FlowPortal):
		e.stop()
		return Step{Screen: []string{"등록 취소", "변경 없음"}, Done: true}, true
	case childsCard && (e.child == "" || e.flow == FlowPortal):
		return Step{}, false
	case e.child == "":
		e.until = now.Add(e.timeout())
		return Step{Screen: append(e.screen(r).Screen[:2:2], "아이를 먼저 고르세요")}, true
	}
	b := &Binding{Child: e.child, Card: card, By: e.staff.ID, Flow: e.flow}
	e.stop()
	return Step{Bind: b, Done: true}, true
}

// refresh drops from the list children the roster no longer has (a new
// revision may arrive during enrolment). A chosen child gone, or no child
// left, ends enrolment: ok is false and s says so.
func (e *Enroller) refresh(r *Roster) (s Step, ok bool) {
	if e.child != "" && r.ChildByID(e.child) == nil {
		e.stop()
		return Step{Screen: []string{"등록할 수 없음", "명단에 없는 아이", "변경 없음"}, Done: true}, false
	}
	cur := ""
	if e.cursor < len(e.list) {
		cur = e.list[e.cursor]
	}
	e.list = slices.DeleteFunc(e.list, func(id string) bool { return r.ChildByID(id) == nil })
	if i := slices.Index(e.list, cur); i >= 0 {
		e.cursor = i
	} else if e.cursor >= len(e.list) {
		e.cursor = 0
	}
	return Step{}, true
}

// Press handles a button.
func (e *Enroller) Press(r *Roster, b Button, now time.Time) Step {
	if !e.Active() {
		return Step{}
	}
	if gone, ok := e.refresh(r); !ok {
		return gone
	}
	if len(e.list) == 0 {
		return e.screen(r)
	}
	e.until = now.Add(e.timeout())
	switch b {
	case ButtonNext:
		if e.child == "" {
			e.cursor = (e.cursor + 1) % len(e.list)
		}
	case ButtonChoose:
		e.child = e.list[e.cursor]
	}
	return e.screen(r)
}

// Tick ends enrolment when it has been silent for Timeout.
func (e *Enroller) Tick(now time.Time) Step {
	if e.Active() && now.After(e.until) {
		e.stop()
		return Step{Screen: []string{"시간 초과", "변경 없음"}, Done: true}
	}
	return Step{}
}

// StartFor opens enrolment for one child, at the portal's request (by
// names the portal user): the next card presented is bound to the child.
// It replaces an enrolment already open.
func (e *Enroller) StartFor(r *Roster, child, by string, now time.Time) (Step, error) {
	c := r.ChildByID(child)
	if c == nil {
		return Step{}, &Refused{RefuseUnknownChild, "no child " + child + " in the terminal's roster"}
	}
	e.staff, e.list, e.cursor, e.child, e.flow = &Staff{ID: by}, []string{child}, 0, child, FlowPortal
	e.until = now.Add(e.timeout())
	return e.screen(r), nil
}

func (e *Enroller) timeout() time.Duration {
	if e.flow == FlowPortal {
		if e.PortalTimeout <= 0 {
			return 5 * time.Minute
		}
		return e.PortalTimeout
	}
	if e.Timeout <= 0 {
		return time.Minute
	}
	return e.Timeout
}

func (e *Enroller) start(r *Roster, st *Staff, now time.Time) {
	e.staff, e.cursor, e.child, e.flow = st, 0, "", FlowDevice
	e.until = now.Add(e.timeout())
	// Children with an in-use booking and no active card first, then all.
	var first, rest []string
	for _, c := range r.Children {
		hasCard := slices.ContainsFunc(r.Cards, func(k Card) bool { return k.ChildID == c.ID && k.State == CardActive })
		inUse := slices.ContainsFunc(r.BookingsOf(c.ID), func(b *Booking) bool { return b.Status == InUse })
		if inUse && !hasCard {
			first = append(first, c.ID)
		} else {
			rest = append(rest, c.ID)
		}
	}
	e.list = append(first, rest...)
}

func (e *Enroller) stop() { e.staff, e.list, e.child = nil, nil, "" }

func (e *Enroller) screen(r *Roster) Step {
	if len(e.list) == 0 {
		return Step{Screen: []string{"카드 등록", "아이가 없습니다"}}
	}
	if e.child != "" {
		return Step{Screen: []string{MaskName(r.ChildByID(e.child).Name), "카드를 대주세요"}}
	}
	c := r.ChildByID(e.list[e.cursor])
	return Step{Screen: []string{"카드 등록", MaskName(c.Name), "다음 ▶ / 선택 ●"}}
}
