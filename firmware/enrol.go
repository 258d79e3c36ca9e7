package firmware

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Enrolment binds cards to children. The same rules hold wherever a change
// is made — at the terminal with a staff card, or from the portal — so
// they live here, as pure functions of the roster.

// Flow says where a binding change was made.
type Flow string

// Flows.
const (
	FlowDevice Flow = "device" // at the terminal, opened with a staff card
	FlowPortal Flow = "portal" // from the portal (a signed command)
)

// Refusal reasons of enrolment.
const (
	RefuseUnknownChild     Reason = "unknown_child"
	RefuseStaffCard        Reason = "staff_card"          // staff cards are never children's
	RefuseCardOfOther      Reason = "card_of_other_child" // active for another child: not silently taken
	RefuseAlreadyBound     Reason = "card_already_bound"  // this child's active card already
	RefuseNoActiveCard     Reason = "no_active_card"
	RefuseScheduledBooking Reason = "scheduled_booking"    // Q18: cancel the 이용예정 booking first
	RefuseBoundElsewhere   Reason = "card_bound_elsewhere" // lost a conflict: revoke it where it is bound first
)

// Refused is an enrolment change the rules refuse.
type Refused struct {
	Reason Reason
	Detail string
}

func (e *Refused) Error() string {
	return fmt.Sprintf("enrolment refused (%s): %s", e.Reason, e.Detail)
}

// BindingChange is one change of a child's card: the audit record.
type BindingChange struct {
	Child   string    `json:"child"`
	OldCard string    `json:"old_card,omitempty"` // the card it replaced or revoked
	NewCard string    `json:"new_card,omitempty"` // empty when a card was revoked
	By      string    `json:"by"`                 // staff ID, or the portal user
	Flow    Flow      `json:"flow"`
	At      time.Time `json:"at"`
}

// Bind binds card to child, replacing the child's active card (Q20: a
// lost card stops working the moment a spare is bound). It returns the new
// roster (r is not changed) and the audit record, or a *Refused.
func Bind(r *Roster, child, card, by string, flow Flow, at time.Time) (*Roster, BindingChange, error) {
	ch := BindingChange{Child: child, NewCard: card, By: by, Flow: flow, At: at}
	switch c := r.CardByKey(card); {
	case r.ChildByID(child) == nil:
		return nil, ch, &Refused{RefuseUnknownChild, fmt.Sprintf("no child %q in the roster", child)}
	case r.StaffByKey(card) != nil:
		return nil, ch, &Refused{RefuseStaffCard, "this is a staff card; give the child a card of their own"}
	case c != nil && c.State == CardConflict:
		return nil, ch, &Refused{RefuseBoundElsewhere, "this card was bound first at another centre or to another child; revoke it there first"}
	case c != nil && c.State == CardActive && c.ChildID == child:
		return nil, ch, &Refused{RefuseAlreadyBound, "this card is the child's already"}
	case c != nil && c.State == CardActive:
		other := c.ChildID
		if o := r.ChildByID(other); o != nil {
			other = MaskName(o.Name)
		}
		return nil, ch, &Refused{RefuseCardOfOther, fmt.Sprintf("this card belongs to %s; revoke it there first", other)}
	}
	next := r.clone()
	found := false
	for i := range next.Cards {
		c := &next.Cards[i]
		switch {
		case c.Key == card: // a card bound before, replaced or revoked: bound again
			c.ChildID, c.State, c.Since, found = child, CardActive, at, true
		case c.ChildID == child && c.State == CardActive:
			ch.OldCard = c.Key
			c.State, c.Since = CardReplaced, at
		}
	}
	if !found {
		next.Cards = append(next.Cards, Card{Key: card, ChildID: child, State: CardActive, Since: at})
	}
	if err := next.Validate(); err != nil {
		return nil, ch, err
	}
	return next, ch, nil
}

// Unbind revokes a child's active card (a reset), refused while the child
// has a scheduled booking (Q18).
func Unbind(r *Roster, child, by string, flow Flow, at time.Time) (*Roster, BindingChange, error) {
	ch := BindingChange{Child: child, By: by, Flow: flow, At: at}
	if r.ChildByID(child) == nil {
		return nil, ch, &Refused{RefuseUnknownChild, fmt.Sprintf("no child %q in the roster", child)}
	}
	for _, b := range r.BookingsOf(child) {
		if b.Status == Scheduled {
			return nil, ch, &Refused{RefuseScheduledBooking, fmt.Sprintf("booking %s is 이용예정; cancel it first (FAQ Q18)", b.ID)}
		}
	}
	next := r.clone()
	for i := range next.Cards {
		if c := &next.Cards[i]; c.ChildID == child && c.State == CardActive {
			ch.OldCard = c.Key
			c.State, c.Since = CardRevoked, at
		}
	}
	if ch.OldCard == "" {
		return nil, ch, &Refused{RefuseNoActiveCard, "the child has no active card"}
	}
	if err := next.Validate(); err != nil {
		return nil, ch, err
	}
	return next, ch, nil
}

// clone copies the roster's lists, so a change leaves r as it was.
func (r *Roster) clone() *Roster {
	c := *r
	c.Children = slices.Clone(r.Children)
	c.Cards = slices.Clone(r.Cards)
	c.Bookings = slices.Clone(r.Bookings)
	c.Staff = slices.Clone(r.Staff)
	c.Applied = maps.Clone(r.Applied)
	return &c
}

// AppliedKey is the key of Roster.Applied for a terminal's log.
func AppliedKey(device, log string) string { return device + "/" + log }

// Replay puts binding changes made on a terminal, not yet taken into the
// portal's roster r, back on top of it, in order. The rules were checked
// when each change was made; here a change simply wins over r, except one
// for a child r no longer has, or a card r says is a staff card, which is
// skipped. r is not changed; the result is validated.
func Replay(r *Roster, chs []BindingChange) (*Roster, error) {
	if len(chs) == 0 {
		return r, nil
	}
	next := r.clone()
	for _, ch := range chs {
		if next.ChildByID(ch.Child) == nil || (ch.NewCard != "" && next.StaffByKey(ch.NewCard) != nil) {
			continue
		}
		found := false
		for i := range next.Cards {
			c := &next.Cards[i]
			switch {
			case ch.NewCard != "" && c.Key == ch.NewCard:
				c.ChildID, c.State, c.Since, found = ch.Child, CardActive, ch.At, true
			case ch.NewCard != "" && c.ChildID == ch.Child && c.State == CardActive:
				c.State, c.Since = CardReplaced, ch.At
			case ch.NewCard == "" && c.Key == ch.OldCard && c.ChildID == ch.Child:
				c.State, c.Since = CardRevoked, ch.At
			}
		}
		if ch.NewCard != "" && !found {
			next.Cards = append(next.Cards, Card{Key: ch.NewCard, ChildID: ch.Child, State: CardActive, Since: ch.At})
		}
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("replaying the terminal's binding changes: %w", err)
	}
	return next, nil
}
