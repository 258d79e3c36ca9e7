// Package registry owns the card registry's rule: who holds a card that
// was bound at terminals of several centres. A card is known across
// centres by the HMAC of its UID; the binding made first holds it, whatever
// order the events arrive in, and the loser's card is put in conflict (at
// another centre) or given to the winner's child (at the same centre).
// Decide is a pure function of the binding, its centre's roster and the
// card's registry entry; its Verdict says what to record and which ops to
// apply to which centre's roster source. The binder (portal/bridge) runs
// the jobs: it stores the registry through store.Registry, writes the
// sources and publishes them.
package registry

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
)

// The outcomes and reasons of a decision (api.Change's).
const (
	ChangeApplied  = api.ChangeApplied
	ChangeRefused  = api.ChangeRefused
	ChangeConflict = api.ChangeConflict
	RefuseNoSource = api.RefuseNoSource
	RefuseInvalid  = api.RefuseInvalid
)

// Binding is a card_bound event as the binder needs it. It holds no raw
// UID: CardID is the card's HMAC under the registry key.
type Binding struct {
	Centre  string        `json:"centre"`
	Device  string        `json:"device"`
	Log     string        `json:"log"`
	Seq     uint64        `json:"seq"`
	Child   string        `json:"child"`
	Card    string        `json:"card"` // the card's key at its centre
	OldCard string        `json:"old_card,omitempty"`
	By      string        `json:"by"`
	Flow    firmware.Flow `json:"flow"`
	// At is when the binding counts as made: the event's time, or when
	// the bridge stored it if the terminal's clock was not set.
	At     time.Time `json:"at"`
	CardID string    `json:"card_id"`
}

func (b *Binding) AppliedKey() string { return firmware.AppliedKey(b.Device, b.Log) }

// Holder is the registry's entry of a card: the binding that holds it,
// and the bindings of it that lost.
type Holder struct {
	Centre string        `json:"centre"`
	Child  string        `json:"child"`
	Card   string        `json:"card"`
	At     time.Time     `json:"at"`
	Device string        `json:"device"`
	Log    string        `json:"log"`
	Seq    uint64        `json:"seq"`
	By     string        `json:"by"`
	Flow   firmware.Flow `json:"flow"`
	Losers []CardRef     `json:"losers,omitempty"`
}

// CardRef is a card of a child at a centre.
type CardRef struct {
	Centre string    `json:"centre"`
	Child  string    `json:"child"`
	Card   string    `json:"card"`
	At     time.Time `json:"at"`
}

func HolderOf(b *Binding) *Holder {
	return &Holder{Centre: b.Centre, Child: b.Child, Card: b.Card, At: b.At, Device: b.Device, Log: b.Log, Seq: b.Seq, By: b.By, Flow: b.Flow}
}

// First reports whether binding b was made before the holder h: by time,
// then the lower (centre, device, seq).
func First(b *Binding, h *Holder) bool {
	if c := b.At.Compare(h.At); c != 0 {
		return c < 0
	}
	if b.Centre != h.Centre {
		return b.Centre < h.Centre
	}
	if b.Device != h.Device {
		return b.Device < h.Device
	}
	return b.Seq < h.Seq
}

// Kinds of Op.
const (
	OpBind    = "bind"    // Card becomes Child's active card; Child's other active card is replaced
	OpReplace = "replace" // Child's active cards other than Card are replaced
	OpState   = "state"   // Child's Card takes State, if it is in From ("" any)
)

// Op is one change to a roster's cards. Applying a list of ops twice gives
// what applying it once does: a job run again after a crash is harmless.
type Op struct {
	Do    string             `json:"do"`
	Child string             `json:"child"`
	Card  string             `json:"card"`
	State firmware.CardState `json:"state,omitempty"`
	From  firmware.CardState `json:"from,omitempty"`
	At    time.Time          `json:"at"`
}

// Edit is what a job changes in one centre's source: ops, and
// applied_bindings[Applied] raised to Seq (Applied empty: not at all).
type Edit struct {
	Centre  string `json:"centre"`
	Ops     []Op   `json:"ops,omitempty"`
	Applied string `json:"applied,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
}

// ApplyOps returns r with the ops applied, validated; r is not changed.
// An op for a child r does not have, or binding a staff card, is skipped.
func ApplyOps(r *firmware.Roster, ops []Op) (*firmware.Roster, error) {
	next := *r
	next.Cards = slices.Clone(r.Cards)
	next.Applied = maps.Clone(r.Applied)
	for _, o := range ops {
		switch o.Do {
		case OpBind:
			// Replay is the rule-free bind: the card wins, the child's
			// other active card is replaced.
			nr, err := firmware.Replay(&next, []firmware.BindingChange{{Child: o.Child, NewCard: o.Card, At: o.At}})
			if err != nil {
				return nil, err
			}
			next = *nr
		case OpReplace:
			for i := range next.Cards {
				if c := &next.Cards[i]; c.ChildID == o.Child && c.Key != o.Card && c.State == firmware.CardActive {
					c.State, c.Since = firmware.CardReplaced, o.At
				}
			}
		case OpState:
			for i := range next.Cards {
				if c := &next.Cards[i]; c.ChildID == o.Child && c.Key == o.Card && (o.From == "" || c.State == o.From) {
					c.State, c.Since = o.State, o.At
				}
			}
		default:
			return nil, fmt.Errorf("unknown roster op %q", o.Do)
		}
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	return &next, nil
}

// Verdict is the portal's decision on a binding event.
type Verdict struct {
	Outcome string
	Reason  firmware.Reason
	Detail  string
	OldCard string // the child's card the binding replaced, if any
	Own     []Op   // changes to the binding's centre
	// Other changes the previous holder's centre when the binding won
	// over it from another centre.
	Other *Edit
	// Holder is the card's registry entry after; nil: unchanged.
	Holder *Holder
	// Lost is the previous holder when the binding won over it.
	Lost *Holder
}

// Decide decides a binding event: the enrolment rules against its
// centre's roster own (nil: the centre has no source), then the conflict
// rule against cur, the binding that holds the card now (nil: none). cur
// must be current: its card active for its child at its centre.
//
// The binding made first wins, whatever order the events arrive in. At
// another centre the loser's card is set to conflict; at the same centre
// (one card key, two children) the card goes to the winner's child. Either
// way the loser's child's previous card stays replaced, as it was the
// moment the loser was bound at the terminal.
func Decide(b *Binding, own *firmware.Roster, cur *Holder) Verdict {
	if own == nil {
		return Verdict{Outcome: ChangeRefused, Reason: RefuseNoSource, Detail: fmt.Sprintf("no roster source for centre %q", b.Centre)}
	}
	unknown := cur == nil
	if cur != nil && cur.Centre == b.Centre && cur.Child == b.Child && cur.Card == b.Card {
		cur = nil // the same binding: the rules say card_already_bound
	}
	_, _, err := firmware.Bind(own, b.Child, b.Card, b.By, b.Flow, b.At)
	var ref *firmware.Refused
	if err != nil && !errors.As(err, &ref) {
		return Verdict{Outcome: ChangeRefused, Reason: RefuseInvalid, Detail: err.Error()}
	}
	sameCentre := cur != nil && cur.Centre == b.Centre
	if ref != nil && !(sameCentre && ref.Reason == firmware.RefuseCardOfOther) {
		v := Verdict{Outcome: ChangeRefused, Reason: ref.Reason, Detail: ref.Detail}
		if unknown && ref.Reason == firmware.RefuseAlreadyBound {
			// Bound here already (by staff's source), and now the card's
			// UID is known: it holds the card from now on.
			v.Holder = HolderOf(b)
		}
		return v
	}
	v := Verdict{OldCard: ActiveCard(own, b.Child, b.Card)}
	bind := Op{Do: OpBind, Child: b.Child, Card: b.Card, At: b.At}
	switch {
	case cur == nil:
		v.Outcome, v.Own, v.Holder = ChangeApplied, []Op{bind}, HolderOf(b)
	case sameCentre && First(b, cur):
		v.Outcome, v.Own, v.Lost = ChangeApplied, []Op{bind}, cur
		v.Detail = fmt.Sprintf("won over the same card bound later to %s by %s (%s): that Binding lost", ChildName(own, cur.Child), cur.Device, KST(cur.At))
		v.Holder = HolderOf(b)
		v.Holder.Losers = cur.Losers
	case sameCentre:
		v.Outcome, v.Reason = ChangeConflict, firmware.RefuseBoundElsewhere
		v.Own = []Op{{Do: OpReplace, Child: b.Child, Card: b.Card, At: b.At}}
		v.Detail = fmt.Sprintf("the same card was bound First to %s by %s (%s); revoke it there to move it", ChildName(own, cur.Child), cur.Device, KST(cur.At))
	case First(b, cur):
		v.Outcome, v.Own, v.Lost = ChangeApplied, []Op{bind}, cur
		v.Detail = fmt.Sprintf("won over the same card bound later at %s by %s (%s): that one is in conflict there", cur.Centre, cur.Device, KST(cur.At))
		v.Other = &Edit{Centre: cur.Centre, Ops: []Op{{Do: OpState, Child: cur.Child, Card: cur.Card, State: firmware.CardConflict, From: firmware.CardActive, At: cur.At}}}
		v.Holder = HolderOf(b)
		v.Holder.Losers = append(slices.Clone(cur.Losers), CardRef{Centre: cur.Centre, Child: cur.Child, Card: cur.Card, At: cur.At})
	default:
		v.Outcome, v.Reason = ChangeConflict, firmware.RefuseBoundElsewhere
		v.Own = []Op{bind, {Do: OpState, Child: b.Child, Card: b.Card, State: firmware.CardConflict, From: firmware.CardActive, At: b.At}}
		v.Detail = fmt.Sprintf("the same card was bound First at %s by %s (%s): it is in conflict here; revoke it there to move it", cur.Centre, cur.Device, KST(cur.At))
		h := *cur
		h.Losers = append(slices.Clone(cur.Losers), CardRef{Centre: b.Centre, Child: b.Child, Card: b.Card, At: b.At})
		v.Holder = &h
	}
	return v
}

// ActiveCard is child's active card other than except, "" if none.
func ActiveCard(r *firmware.Roster, child, except string) string {
	for _, c := range r.Cards {
		if c.ChildID == child && c.State == firmware.CardActive && c.Key != except {
			return c.Key
		}
	}
	return ""
}

// Holds reports whether h is current in r, its centre's roster: its card
// active for its child.
func Holds(r *firmware.Roster, h *Holder) bool {
	if r == nil {
		return false
	}
	c := r.CardByKey(h.Card)
	return c != nil && c.ChildID == h.Child && c.State == firmware.CardActive
}

// ChildName is a child as staff may read it in a record: masked name and
// ID.
func ChildName(r *firmware.Roster, id string) string {
	if c := r.ChildByID(id); c != nil {
		return fmt.Sprintf("%s (%s)", firmware.MaskName(c.Name), id)
	}
	return id
}

func KST(t time.Time) string { return t.In(firmware.KST).Format("2006-01-02 15:04:05 KST") }
