package rc522

import (
	"context"
	"errors"
	"fmt"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522/reg"
)

// Card is what a complete selection learned of a card.
type Card struct {
	UID  []byte  // 4, 7 or 10 bytes, confirmed by the card's SAK on every level
	ATQA [2]byte // as received; zero when several cards answered at once
	SAK  byte    // the final SAK
}

// request sends REQA (or WUPA when wake) and reports whether any card
// answered. Several cards answering with different ATQAs collide; that is
// still an answer.
func (d *Dev) request(ctx context.Context, wake, cheap bool) ([2]byte, error) {
	cmd := byte(iso14443a.REQA)
	if wake {
		cmd = iso14443a.WUPA
	}
	a, err := d.exchange(ctx, []byte{cmd}, 7, 0, 2, false, cheap)
	if err != nil {
		return [2]byte{}, err
	}
	if a.errs&^reg.CollErr != 0 {
		return [2]byte{}, d.bad("ATQA with ErrorReg %#02x", a.errs)
	}
	if a.errs&reg.CollErr == 0 && (len(a.data) != 2 || a.lastBits != 0) {
		return [2]byte{}, d.bad("ATQA of %d bits (% X), want 16", a.bits(), a.data)
	}
	var atqa [2]byte
	if a.errs&reg.CollErr == 0 {
		copy(atqa[:], a.data) // collided ATQAs belong to no card
	}
	return atqa, nil
}

// Scan polls once with REQA and, if a card answers, selects it on every
// cascade level and halts it. It returns ErrNoCard when the field is empty
// (or holds only halted cards). A card removed halfway, a collision that
// cannot be resolved or any malformed answer is an error, never a card.
func (d *Dev) Scan(ctx context.Context) (Card, error) {
	atqa, err := d.request(ctx, false, false)
	if err != nil {
		return Card{}, err
	}
	c, err := d.selectCard(ctx)
	if err != nil {
		return Card{}, err
	}
	c.ATQA = atqa
	return c, d.halt(ctx)
}

// selectCard runs anticollision and SELECT on each cascade level, after a
// REQA or WUPA was answered.
func (d *Dev) selectCard(ctx context.Context) (Card, error) {
	var uid []byte
	for level := 1; level <= 3; level++ {
		sel, _ := iso14443a.SelCode(level)
		part, err := d.anticollision(ctx, sel)
		if err != nil {
			return Card{}, fmt.Errorf("cascade level %d: %w", level, err)
		}
		sak, err := d.selectPart(ctx, sel, part)
		if err != nil {
			return Card{}, fmt.Errorf("cascade level %d: %w", level, err)
		}
		if sak&iso14443a.SAKCascade != 0 {
			if part[0] != iso14443a.CascadeTag {
				return Card{}, d.bad("SAK %#02x asks for another level but the UID part % X has no cascade tag", sak, part[:4])
			}
			uid = append(uid, part[1:4]...)
			continue
		}
		if part[0] == iso14443a.CascadeTag {
			return Card{}, d.bad("UID part % X starts with the cascade tag but SAK %#02x ends the UID", part[:4], sak)
		}
		uid = append(uid, part[:4]...)
		return Card{UID: uid, SAK: sak}, nil
	}
	return Card{}, d.bad("SAK still asks for a cascade level after level 3")
}

// anticollision finds one UID part (4 bytes and BCC) on the cascade level
// of sel, resolving bit collisions by choosing the card with a 1 at the
// first collided bit (ISO/IEC 14443-3 6.5.3).
func (d *Dev) anticollision(ctx context.Context, sel byte) ([5]byte, error) {
	var cl [5]byte
	known := 0
	for range 33 {
		nb, nbits := known/8, known%8
		tx := []byte{sel, byte((2+nb)<<4 | nbits)}
		tx = append(tx, cl[:nb]...)
		if nbits > 0 {
			tx = append(tx, cl[nb]&(1<<nbits-1))
		}
		a, err := d.exchange(ctx, tx, nbits, nbits, 5-nb, false, false)
		if err != nil {
			return cl, err
		}
		if a.errs&^reg.CollErr != 0 {
			return cl, d.bad("anticollision answer with ErrorReg %#02x", a.errs)
		}
		got := a.bits() - nbits // bits of the UID part received
		collided := a.errs&reg.CollErr != 0
		if got <= 0 || (!collided && known+got != 40) || known+got > 40 {
			return cl, d.bad("anticollision answer of %d bits after %d known, want %d", got, known, 40-known)
		}
		for i := range got {
			p, q := known+i, nbits+i
			if a.data[q/8]>>(q%8)&1 != 0 {
				cl[p/8] |= 1 << (p % 8)
			} else {
				cl[p/8] &^= 1 << (p % 8)
			}
		}
		if !collided {
			if iso14443a.BCC(cl[:4]) != cl[4] {
				return cl, d.bad("BCC %#02x does not match UID part % X", cl[4], cl[:4])
			}
			return cl, nil
		}
		if a.coll&reg.CollPosNotValid != 0 {
			return cl, d.bad("collision without a valid position (CollReg %#02x)", a.coll)
		}
		pos := int(a.coll & reg.CollPosMsk)
		if pos == 0 {
			pos = 32
		}
		at := nb*8 + pos - 1 // CollPos counts from bit 0 of the first FIFO byte
		if at < known || at >= 32 {
			return cl, d.bad("collision at UID bit %d with %d bits known", at, known)
		}
		d.stats.collisions.Add(1)
		cl[at/8] |= 1 << (at % 8) // choose the cards with a 1 there
		for p := at + 1; p < 40; p++ {
			cl[p/8] &^= 1 << (p % 8)
		}
		known = at + 1
	}
	return cl, d.bad("anticollision did not converge")
}

// selectPart sends SELECT with a UID part and returns the SAK, whose CRC_A
// is checked.
func (d *Dev) selectPart(ctx context.Context, sel byte, part [5]byte) (byte, error) {
	tx := iso14443a.AppendCRCA(append([]byte{sel, iso14443a.NVBSelect}, part[:]...))
	a, err := d.exchange(ctx, tx, 0, 0, 3, false, false)
	if err != nil {
		return 0, err
	}
	if a.errs != 0 {
		return 0, d.bad("SAK with ErrorReg %#02x", a.errs)
	}
	if len(a.data) != 3 || a.lastBits != 0 || !iso14443a.CheckCRCA(a.data) {
		return 0, d.bad("SAK frame % X (%d bits) fails its CRC_A", a.data, a.bits())
	}
	return a.data[0], nil
}

// halt sends HLTA to the selected card; no answer is expected.
func (d *Dev) halt(ctx context.Context) error {
	_, err := d.exchange(ctx, iso14443a.AppendCRCA([]byte{iso14443a.HLTA0, 0x00}), 0, 0, 0, true, false)
	return err
}

// present checks that a held (halted) card is still in the field: WUPA,
// SELECT of its UID on every level, then REQA instead of HLTA. Other halted
// cards woken by WUPA go back to HALT on the SELECT that does not match
// them. The REQA is what tells a card that never left from one that was
// taken away and brought back between two checks: the one selected from
// HALT (ACTIVE*) returns to HALT on an unexpected frame, the one that lost
// power and was selected from IDLE (ACTIVE) returns to IDLE (ISO/IEC
// 14443-3, 6.3), where the next poll's REQA finds it as a new presentation.
func (d *Dev) present(ctx context.Context, uid []byte) (bool, error) {
	parts, err := iso14443a.Parts(uid)
	if err != nil {
		return false, err
	}
	if _, err := d.request(ctx, true, false); err != nil {
		if errors.Is(err, ErrNoCard) {
			return false, nil
		}
		return false, err
	}
	for i, p := range parts {
		sel, _ := iso14443a.SelCode(i + 1)
		part := [5]byte{p[0], p[1], p[2], p[3], iso14443a.BCC(p[:])}
		sak, err := d.selectPart(ctx, sel, part)
		if errors.Is(err, ErrNoCard) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if last := i == len(parts)-1; last == (sak&iso14443a.SAKCascade != 0) {
			return false, d.bad("SAK %#02x on level %d of %d for % X", sak, i+1, len(parts), uid)
		}
	}
	// No answer is expected: the card only changes state. One that does
	// answer (a card just placed, in IDLE) is left for the next poll.
	_, err = d.exchange(ctx, []byte{iso14443a.REQA}, 7, 0, 2, true, false)
	return true, err
}
