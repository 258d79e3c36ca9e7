package rc522emu

import (
	"bytes"
	"fmt"
	"time"

	"kiumtap/hal/iso14443a"
)

// piccState is a state of the ISO/IEC 14443-3 Type A PICC state machine.
type piccState int

const (
	statePowerOff piccState = iota
	stateIdle
	stateReady
	stateActive
	stateHalt
	stateReadyStar  // READY*, woken from HALT by WUPA
	stateActiveStar // ACTIVE*, selected from READY*
)

func (s piccState) String() string {
	return [...]string{"POWER-OFF", "IDLE", "READY", "ACTIVE", "HALT", "READY*", "ACTIVE*"}[s]
}

// Card is a virtual ISO/IEC 14443-3 Type A PICC. It answers REQA, WUPA,
// ANTICOLLISION and SELECT on cascade levels 1 to 3 and HLTA with the ATQA,
// UID parts, BCC, SAK and CRC_A of the standard, and follows its state
// machine (IDLE, READY, ACTIVE, HALT, READY*, ACTIVE*). Place it in a
// reader's field with Chip.Place.
type Card struct {
	uid   []byte
	parts [][5]byte // UID part + BCC per cascade level
	atqa  [2]byte
	sak   byte
	key   [6]byte

	// Guarded by the chip the card is placed on.
	state piccState
	level int // cascade level being resolved, 0-based
	// powered is when the card last came into a powered field: a frame
	// that started before it, or before startUp had passed since, cannot
	// be decoded (the card was not yet powered, or not yet running, when
	// its first bits went by).
	powered time.Time
	startUp time.Duration
}

// CardOptions sets a card's answers; zero values take the usual ones.
type CardOptions struct {
	// ATQA defaults to 04 00 (single), 44 00 (double) or 84 00 (triple size).
	ATQA *[2]byte
	// SAK is the final SAK; default 0x08 (MIFARE Classic 1K) for a 4-byte
	// UID and 0x00 (MIFARE Ultralight, NTAG) for 7 and 10 bytes.
	SAK *byte
	// Key is the sector key MFAuthent must present; default FF FF FF FF FF FF.
	Key *[6]byte
	// StartUp is how long the card takes, once the field powers it, before
	// it can take a request: ISO/IEC 14443-3 (5.2.1) allows up to 5 ms of
	// unmodulated field. Frames that begin sooner go unheard. It counts in
	// real time, in instant mode too, as a driver's waits do. Default 0.
	StartUp time.Duration
}

// NewCard returns a card with a 4, 7 or 10 byte UID. It panics on any other
// length: a test that builds an impossible card is itself wrong.
func NewCard(uid []byte, opts CardOptions) *Card {
	parts, err := iso14443a.Parts(uid)
	if err != nil {
		panic(fmt.Sprintf("rc522emu.NewCard: %v", err))
	}
	c := &Card{uid: bytes.Clone(uid), key: [6]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}}
	for _, p := range parts {
		c.parts = append(c.parts, [5]byte{p[0], p[1], p[2], p[3], iso14443a.BCC(p[:])})
	}
	c.atqa = iso14443a.ATQA(len(uid), 2)
	c.sak = 0x00
	if len(uid) == 4 {
		c.sak = 0x08
	}
	if opts.ATQA != nil {
		c.atqa = *opts.ATQA
	}
	if opts.SAK != nil {
		c.sak = *opts.SAK &^ iso14443a.SAKCascade
	}
	if opts.Key != nil {
		c.key = *opts.Key
	}
	if opts.StartUp < 0 || opts.StartUp > 5*time.Millisecond {
		panic(fmt.Sprintf("rc522emu.NewCard: start-up %v is outside the 0 to 5 ms of ISO/IEC 14443-3", opts.StartUp))
	}
	c.startUp = opts.StartUp
	return c
}

// UID returns a copy of the card's UID.
func (c *Card) UID() []byte { return bytes.Clone(c.uid) }

// String names the card by its UID.
func (c *Card) String() string { return fmt.Sprintf("card % X", c.uid) }

// frame is a bit string on air, LSB of each byte first. start is the bit
// position in the first byte where the string begins (for the split byte
// of an anticollision answer) and nbits the number of bits.
type frame struct {
	data  []byte
	start int
	nbits int
}

func (f frame) bit(i int) byte {
	p := f.start + i
	return f.data[p/8] >> (p % 8) & 1
}

// powerOn puts a card that has just entered an energised field into IDLE.
func (c *Card) powerOn(at time.Time) {
	if c.state == statePowerOff {
		c.state = stateIdle
		c.level = 0
		c.powered = at
	}
}

func (c *Card) powerOff() { c.state = statePowerOff; c.level = 0 }

func (c *Card) halted() bool {
	return c.state == stateHalt || c.state == stateReadyStar || c.state == stateActiveStar
}

// fallBack is the transition on an unexpected frame or error in READY or
// ACTIVE: back to IDLE, or to HALT for a card that was woken from HALT.
func (c *Card) fallBack() {
	if c.halted() {
		c.state = stateHalt
	} else {
		c.state = stateIdle
	}
	c.level = 0
}

// receive hands the card a frame the PCD sent: data, with nbits valid bits
// (the last byte partial when nbits%8 != 0). It returns the card's answer
// and whether it answers at all.
func (c *Card) receive(data []byte, nbits int) (frame, bool) {
	if c.state == statePowerOff {
		return frame{}, false
	}
	// Short frame: REQA or WUPA.
	if nbits == 7 && len(data) == 1 {
		cmd := data[0] & 0x7F
		switch {
		case cmd == iso14443a.REQA && c.state == stateIdle,
			cmd == iso14443a.WUPA && (c.state == stateIdle || c.state == stateHalt):
			if c.state == stateHalt {
				c.state = stateReadyStar
			} else {
				c.state = stateReady
			}
			c.level = 0
			return frame{data: c.atqa[:], nbits: 16}, true
		case c.state == stateIdle || c.state == stateHalt:
			return frame{}, false // other short frames are ignored there
		}
		c.fallBack()
		return frame{}, false
	}
	switch c.state {
	case stateIdle, stateHalt:
		return frame{}, false // only REQA/WUPA are heard here
	case stateReady, stateReadyStar:
		return c.receiveReady(data, nbits)
	case stateActive, stateActiveStar:
		if nbits == 32 && len(data) == 4 && data[0] == iso14443a.HLTA0 && data[1] == 0 && iso14443a.CheckCRCA(data) {
			c.state = stateHalt
			c.level = 0
			return frame{}, false
		}
		c.fallBack()
		return frame{}, false
	}
	return frame{}, false
}

func (c *Card) receiveReady(data []byte, nbits int) (frame, bool) {
	if nbits < 16 || len(data) < 2 || iso14443a.LevelOfSel(data[0]) != c.level+1 || c.level >= len(c.parts) {
		c.fallBack()
		return frame{}, false
	}
	part := c.parts[c.level]
	nvb := data[1]
	if nvb == iso14443a.NVBSelect {
		// SELECT: SEL NVB UID0..3 BCC CRC_A.
		if nbits != 72 || len(data) != 9 || !iso14443a.CheckCRCA(data) || !bytes.Equal(data[2:7], part[:]) {
			c.fallBack()
			return frame{}, false
		}
		sak := c.sak
		if c.level < len(c.parts)-1 {
			sak = iso14443a.SAKCascade
			c.level++
		} else if c.state == stateReadyStar {
			c.state = stateActiveStar
		} else {
			c.state = stateActive
		}
		crc := iso14443a.CRCA([]byte{sak})
		return frame{data: []byte{sak, crc[0], crc[1]}, nbits: 24}, true
	}
	// ANTICOLLISION: NVB says how many bytes (with SEL and NVB) and bits
	// follow; the frame must carry exactly that many.
	nbytes, nbitsLast := int(nvb>>4), int(nvb&0x0F)
	known := (nbytes-2)*8 + nbitsLast
	if nbytes < 2 || nbitsLast > 7 || known > 32 || nbits != 16+known {
		c.fallBack()
		return frame{}, false
	}
	for i := 0; i < known; i++ {
		if data[2+i/8]>>(i%8)&1 != part[i/8]>>(i%8)&1 {
			return frame{}, false // not this card: stay READY, stay silent
		}
	}
	return frame{data: part[:], start: known, nbits: 40 - known}, true
}
