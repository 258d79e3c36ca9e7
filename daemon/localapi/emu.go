package localapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"kiumtap/firmware"
	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

// Errors of the emulator endpoints; the handler answers each with its own
// HTTP status and the error's text.
var (
	// ErrNotEmulated: kiumtapd's reader is a real MFRC522.
	ErrNotEmulated = errors.New(`the reader is a real MFRC522: put a card on it (kiumctl emu works only when kiumtapd runs with reader.kind "emu")`)
	// ErrBadUID: hex digits that are not a card UID.
	ErrBadUID = errors.New("not a card UID")
	// ErrUnknownCard: neither a UID nor a name the terminal knows a card by.
	ErrUnknownCard = errors.New("no card known by that name")
	// ErrCardState: the card is already on the reader, or not on it.
	ErrCardState = errors.New("the card is not where that needs it")
	// ErrNoFeedback: the terminal showed nothing in time.
	ErrNoFeedback = errors.New("no feedback in time")
)

// Field is what the emulator endpoints need of the emulated reader
// (*rc522emu.Chip): putting virtual cards in its field and taking them out.
type Field interface {
	Place(*rc522emu.Card)
	Remove(*rc522emu.Card)
}

var _ Field = (*rc522emu.Chip)(nil)

// Rosters gives the roster decisions use (*store.Store): names and IDs of
// children and staff, and their cards' keys.
type Rosters interface {
	Roster() (*firmware.Roster, time.Time, error)
}

// EmulatorOptions configure an Emulator.
type EmulatorOptions struct {
	Field  Field
	Roster Rosters
	// Key is the centre's card key: a UID's card key finds its child.
	Key []byte
	// Cards are virtual cards by label (reader.cards of kiumtapd's
	// configuration: label → UID in hex).
	Cards map[string]string
	// Wait is how long an endpoint waits for the terminal (feedback, a
	// card seen gone) unless the request says; default 5 s, at most
	// MaxWait.
	Wait time.Duration
}

// MaxWait bounds the wait a request may ask for.
const MaxWait = time.Minute

// Emulator presents virtual cards to kiumtapd's emulated reader for
// kiumctl emu: an operator trying a test install, a trainer showing staff
// the screens, a test outside Go. It changes the RF field only: a card
// placed is decided, stored and shown by the terminal exactly as a card on
// a real reader; nothing here writes the store.
//
// A card is named by its UID in hex (4, 7 or 10 bytes; spaces, colons and
// dashes are ignored), by a label of reader.cards, or by the name or ID
// of a child or staff member of the roster. The roster holds only card
// keys (HMACs of UIDs), so a name finds a card only when the terminal
// knows the UID of a card with that person's key: one listed in
// reader.cards, or one placed by UID since kiumtapd started. A child's
// active card is the one taken.
//
// kiumtapd tells it what the terminal shows (Shown) and what the reader
// sees (Saw), so that a place answers with the screen the card brought
// and a remove returns once the reader has seen the card go (a card placed
// again at once is then a new tap).
type Emulator struct {
	o EmulatorOptions

	mu      sync.Mutex
	known   []*virtualCard            // labelled first (sorted), then learnt, in order
	inField map[string]*rc522emu.Card // by UID in hex: placed, not removed
	held    map[string]bool           // by UID in hex: the reader saw it come and not yet go
	// awaiting are the cards presented whose screen has not come yet, in
	// the reader's order: the tap loop takes them in that order and shows
	// one screen for each, so each screen is the first one's.
	awaiting []string
	screens  map[string]cardScreen // by UID in hex: the last screen each card brought
	changed  chan struct{}         // closed and replaced on every change
}

// cardScreen is the last screen a card brought, and how many it brought.
type cardScreen struct {
	n uint64
	f firmware.Feedback
}

// maxAwaiting bounds the cards awaiting a screen: more are not left on a
// reader (the driver resolves up to 8 at once).
const maxAwaiting = 64

type virtualCard struct {
	label string // "" for one learnt from a place by UID
	uid   []byte
}

// NewEmulator checks the options; a malformed UID in Cards is an error
// that names its label.
func NewEmulator(o EmulatorOptions) (*Emulator, error) {
	if o.Field == nil || o.Roster == nil {
		return nil, errors.New("localapi: the emulator needs the reader's field and the roster")
	}
	if len(o.Key) == 0 {
		return nil, errors.New("localapi: the emulator needs the centre key")
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	e := &Emulator{o: o, inField: map[string]*rc522emu.Card{}, held: map[string]bool{}, screens: map[string]cardScreen{}, changed: make(chan struct{})}
	labels := make([]string, 0, len(o.Cards))
	for l := range o.Cards {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	for _, l := range labels {
		if strings.TrimSpace(l) == "" {
			return nil, errors.New(`reader.cards: an empty label: name each card (e.g. "김민준 카드")`)
		}
		uid, err := ParseUID(o.Cards[l])
		if err != nil {
			return nil, fmt.Errorf("reader.cards %q: %w", l, err)
		}
		e.known = append(e.known, &virtualCard{label: l, uid: uid})
	}
	return e, nil
}

// ParseUID reads a card UID written in hex, with or without spaces,
// colons or dashes between the bytes: "04A1B2C3", "04 a1 b2 c3",
// "04:A1:B2:C3". A UID has 4, 7 or 10 bytes (ISO/IEC 14443-3); a 4-byte
// one cannot start with 88, the cascade tag.
func ParseUID(s string) ([]byte, error) {
	digits := strings.NewReplacer(" ", "", ":", "", "-", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(digits)
	switch {
	case err != nil || digits == "":
		return nil, fmt.Errorf("%w: %q is not hex digits in pairs (e.g. 04A1B2C3, or 04:A1:B2:C3)", ErrBadUID, s)
	case len(b) != 4 && len(b) != 7 && len(b) != 10:
		return nil, fmt.Errorf("%w: %q has %d bytes; a UID has 4, 7 or 10 (8, 14 or 20 hex digits)", ErrBadUID, s, len(b))
	case len(b) == 4 && b[0] == iso14443a.CascadeTag:
		return nil, fmt.Errorf("%w: %q starts with 88, the cascade tag: no 4-byte UID does", ErrBadUID, s)
	}
	return b, nil
}

// looksLikeUID reports whether s is written like a UID (hex digits and
// separators only, at least two bytes' worth), so that a malformed one
// nobody is called is told as a malformed UID rather than an unknown name.
func looksLikeUID(s string) bool {
	n := 0
	for _, r := range s {
		switch {
		case r == ' ' || r == ':' || r == '-':
		case strings.ContainsRune("0123456789abcdefABCDEF", r):
			n++
		default:
			return false
		}
	}
	return n >= 4
}

// VirtualCard is a card the emulator knows, as kiumctl shows it.
type VirtualCard struct {
	UID   string `json:"uid"`             // hex, bytes separated by spaces
	Label string `json:"label,omitempty"` // its reader.cards label
	// Child or Staff the roster binds the card to, with the card's
	// state; empty for a card the roster does not know.
	Child    string             `json:"child,omitempty"`
	Staff    string             `json:"staff,omitempty"`
	Name     string             `json:"name,omitempty"`
	State    firmware.CardState `json:"state,omitempty"`
	OnReader bool               `json:"on_reader"`
}

// Screen is feedback the terminal gave: the LED and buzzer pattern and the
// screen's lines.
type Screen struct {
	Pattern string   `json:"pattern"`
	Lines   []string `json:"lines"`
}

// EmuResult answers place, remove and tap.
type EmuResult struct {
	Cards []VirtualCard `json:"cards"` // the cards placed or removed
	// Screen is the feedback the card brought (place, tap).
	Screen *Screen `json:"screen,omitempty"`
	// OnReader are the cards in the field afterwards.
	OnReader []VirtualCard `json:"on_reader"`
}

// Shown is told of every feedback the terminal gives. It never blocks.
// The screen is the first awaiting card's; one shown with no card
// awaiting (enrolment timing out) is nobody's. A screen shown while a
// card awaits its own but not for it (enrolment timing out, or opened by
// the portal, just then) is taken for that card's.
func (e *Emulator) Shown(f firmware.Feedback) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.awaiting) == 0 {
		return
	}
	k := e.awaiting[0]
	e.awaiting = e.awaiting[1:]
	s := e.screens[k]
	e.screens[k] = cardScreen{n: s.n + 1, f: firmware.Feedback{Pattern: f.Pattern, Lines: slices.Clone(f.Lines)}}
	e.broadcastLocked()
}

// Saw is told of every card event of the reader, in the order the tap
// loop gets them. It never blocks.
func (e *Emulator) Saw(ev rc522.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := hex.EncodeToString(ev.Card.UID)
	switch ev.Kind {
	case rc522.Presented:
		e.held[k] = true
		if len(e.awaiting) == maxAwaiting {
			e.awaiting = e.awaiting[1:]
		}
		e.awaiting = append(e.awaiting, k)
	case rc522.Removed:
		delete(e.held, k)
	}
	e.broadcastLocked()
}

func (e *Emulator) broadcastLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// waitFor waits until cond (called with e.mu held) holds, ctx ends or d
// passes; it reports whether cond held.
func (e *Emulator) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		e.mu.Lock()
		ok, ch := cond(), e.changed
		e.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (e *Emulator) wait(d time.Duration) time.Duration {
	if d <= 0 {
		return e.o.Wait
	}
	return min(d, MaxWait)
}

// resolve finds the UID a request names.
func (e *Emulator) resolve(name string) ([]byte, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, fmt.Errorf("%w: give a UID in hex, a label of reader.cards, or a child's name or ID", ErrUnknownCard)
	}
	e.mu.Lock()
	for _, c := range e.known {
		if c.label != "" && c.label == name {
			e.mu.Unlock()
			return c.uid, nil
		}
	}
	e.mu.Unlock()
	uid, uidErr := ParseUID(name)
	if uidErr == nil {
		return uid, nil
	}
	// Not a UID: a name or ID; if none, a UID mistyped is told as such.
	unknown := func(err error) error {
		if looksLikeUID(name) {
			return uidErr
		}
		return err
	}
	r, _, err := e.o.Roster.Roster()
	if err != nil {
		return nil, unknown(fmt.Errorf("%w: %q is not a UID or a label of reader.cards, and the terminal has no roster to find a name in (%v)", ErrUnknownCard, name, err))
	}
	type person struct{ kind, id, name string }
	var who []person
	var keys [][]string // per person: card keys, the usable first
	for _, c := range r.Children {
		if c.ID == name || c.Name == name {
			who = append(who, person{"child", c.ID, c.Name})
			var ks []string
			for _, k := range r.Cards {
				if k.ChildID == c.ID && k.State == firmware.CardActive {
					ks = append(ks, k.Key)
				}
			}
			keys = append(keys, ks)
		}
	}
	for _, s := range r.Staff {
		if s.ID == name || s.Name == name {
			who = append(who, person{"staff member", s.ID, s.Name})
			keys = append(keys, []string{s.Key})
		}
	}
	switch {
	case len(who) == 0:
		return nil, unknown(fmt.Errorf("%w: %q is not a UID, a label of reader.cards, or the name or ID of a child or staff member in roster revision %d (kiumctl emu cards lists the cards known)", ErrUnknownCard, name, r.Revision))
	case len(who) > 1:
		ids := make([]string, len(who))
		for i, p := range who {
			ids[i] = p.id
		}
		return nil, fmt.Errorf("%w: %d people are called %q (%s): name one by ID", ErrUnknownCard, len(who), name, strings.Join(ids, ", "))
	}
	p := who[0]
	if len(keys[0]) == 0 {
		return nil, fmt.Errorf("%w: %s %s %s has no active card in roster revision %d", ErrUnknownCard, p.kind, p.id, p.name, r.Revision)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.known {
		if slices.Contains(keys[0], firmware.CardKey(e.o.Key, c.uid)) {
			return c.uid, nil
		}
	}
	return nil, fmt.Errorf("%w: the roster names %s %s %s's card only by its key (an HMAC), and no card this terminal knows has it: place the card once by UID (kiumctl emu place 04A1B2C3), or list it in reader.cards of kiumtapd's configuration", ErrUnknownCard, p.kind, p.id, p.name)
}

// learn remembers a card placed by UID; the caller holds e.mu.
func (e *Emulator) learnLocked(uid []byte) {
	if !slices.ContainsFunc(e.known, func(c *virtualCard) bool { return slices.Equal(c.uid, uid) }) {
		e.known = append(e.known, &virtualCard{uid: slices.Clone(uid)})
	}
}

// Place puts the card named in the field and waits (up to wait; 0: the
// default) for the feedback it brings. The card stays until Remove. A card
// the reader has not yet seen go since it was last removed is placed once
// the reader has.
func (e *Emulator) Place(ctx context.Context, name string, wait time.Duration) (EmuResult, error) {
	wait = e.wait(wait)
	uid, err := e.resolve(name)
	if err != nil {
		return EmuResult{}, err
	}
	k := hex.EncodeToString(uid)
	e.mu.Lock()
	_, there := e.inField[k]
	e.mu.Unlock()
	if there {
		return e.result(nil, uid), fmt.Errorf("%w: card % X is on the reader already: kiumctl emu remove takes it off", ErrCardState, uid)
	}
	deadline := time.Now().Add(wait)
	if !e.waitFor(ctx, wait, func() bool { return !e.held[k] }) {
		return EmuResult{}, fmt.Errorf("%w: the reader still sees card % X, taken off less than %v ago", ErrNoFeedback, uid, wait)
	}
	e.mu.Lock()
	if _, there := e.inField[k]; there { // placed by a request meanwhile
		e.mu.Unlock()
		return e.result(nil, uid), fmt.Errorf("%w: card % X is on the reader already: kiumctl emu remove takes it off", ErrCardState, uid)
	}
	card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
	e.inField[k] = card
	e.learnLocked(uid)
	before := e.screens[k].n
	e.mu.Unlock()
	e.o.Field.Place(card)
	var scr *Screen
	if e.waitFor(ctx, time.Until(deadline), func() bool { return e.screens[k].n > before }) {
		e.mu.Lock()
		f := e.screens[k].f
		scr = &Screen{Pattern: f.Pattern, Lines: slices.Clone(f.Lines)}
		e.mu.Unlock()
	}
	res := e.result(scr, uid)
	if scr == nil {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		return res, fmt.Errorf("%w: card % X is on the reader, but the terminal showed nothing within %v (kiumtapd's log says why)", ErrNoFeedback, uid, wait)
	}
	return res, nil
}

// Remove takes the card named (every card on the reader when name is
// empty) out of the field and waits (up to wait) until the reader has
// seen it go.
func (e *Emulator) Remove(ctx context.Context, name string, wait time.Duration) (EmuResult, error) {
	wait = e.wait(wait)
	e.mu.Lock()
	var gone [][]byte
	if strings.TrimSpace(name) == "" {
		for _, c := range e.inField {
			gone = append(gone, c.UID())
		}
		if len(gone) == 0 {
			e.mu.Unlock()
			return e.result(nil), fmt.Errorf("%w: no card is on the reader", ErrCardState)
		}
		slices.SortFunc(gone, bytes.Compare)
	}
	e.mu.Unlock()
	if len(gone) == 0 {
		uid, err := e.resolve(name)
		if err != nil {
			return EmuResult{}, err
		}
		gone = [][]byte{uid}
	}
	e.mu.Lock()
	for _, uid := range gone {
		if _, ok := e.inField[hex.EncodeToString(uid)]; !ok {
			e.mu.Unlock()
			return e.result(nil), fmt.Errorf("%w: card % X is not on the reader", ErrCardState, uid)
		}
	}
	cards := make([]*rc522emu.Card, len(gone))
	for i, uid := range gone {
		k := hex.EncodeToString(uid)
		cards[i] = e.inField[k]
		delete(e.inField, k)
	}
	e.mu.Unlock()
	for _, c := range cards {
		e.o.Field.Remove(c)
	}
	seen := e.waitFor(ctx, wait, func() bool {
		return !slices.ContainsFunc(gone, func(uid []byte) bool { return e.held[hex.EncodeToString(uid)] })
	})
	res := e.result(nil, gone...)
	if !seen {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		return res, fmt.Errorf("%w: the card is off the reader, but the reader did not see it go within %v (kiumtapd's log says why)", ErrNoFeedback, wait)
	}
	return res, nil
}

// Tap places the card named, waits for its feedback, and removes it once
// the feedback came (or the wait ran out), as a child taps.
func (e *Emulator) Tap(ctx context.Context, name string, wait time.Duration) (EmuResult, error) {
	res, err := e.Place(ctx, name, wait)
	if len(res.Cards) == 0 || errors.Is(err, ErrCardState) {
		return res, err // nothing was placed
	}
	rm, rerr := e.Remove(ctx, res.Cards[0].UID, wait)
	res.OnReader = rm.OnReader
	return res, errors.Join(err, rerr)
}

// Cards lists the cards the emulator knows: the labelled ones, then those
// placed by UID since kiumtapd started, then any other on the reader.
func (e *Emulator) Cards() []VirtualCard {
	r, _, _ := e.o.Roster.Roster()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []VirtualCard
	for _, c := range e.known {
		out = append(out, e.describeLocked(r, c.uid))
	}
	return out
}

// result describes the cards named and those on the reader.
func (e *Emulator) result(scr *Screen, uids ...[]byte) EmuResult {
	r, _, _ := e.o.Roster.Roster()
	e.mu.Lock()
	defer e.mu.Unlock()
	res := EmuResult{Screen: scr, Cards: []VirtualCard{}, OnReader: []VirtualCard{}}
	for _, uid := range uids {
		res.Cards = append(res.Cards, e.describeLocked(r, uid))
	}
	for _, c := range e.inField {
		res.OnReader = append(res.OnReader, e.describeLocked(r, c.UID()))
	}
	slices.SortFunc(res.OnReader, func(a, b VirtualCard) int { return strings.Compare(a.UID, b.UID) })
	return res
}

func (e *Emulator) describeLocked(r *firmware.Roster, uid []byte) VirtualCard {
	v := VirtualCard{UID: fmt.Sprintf("% X", uid)}
	for _, c := range e.known {
		if c.label != "" && slices.Equal(c.uid, uid) {
			v.Label = c.label
			break
		}
	}
	_, v.OnReader = e.inField[hex.EncodeToString(uid)]
	if r == nil {
		return v
	}
	key := firmware.CardKey(e.o.Key, uid)
	if c := r.CardByKey(key); c != nil {
		v.Child, v.State = c.ChildID, c.State
		if ch := r.ChildByID(c.ChildID); ch != nil {
			v.Name = ch.Name
		}
	} else if s := r.StaffByKey(key); s != nil {
		v.Staff, v.Name = s.ID, s.Name
	}
	return v
}
