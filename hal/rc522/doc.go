// Package rc522 drives an NXP MFRC522 reader over periph.io SPI and GPIO and
// turns what happens in its RF field into card events: exactly one
// Presented per physical presentation of an ISO/IEC 14443-3 Type A card,
// and a Removed when it leaves.
//
// It owns the bytes on the SPI bus and the levels on RST and IRQ. It knows
// nothing of children, bookings or the portal.
//
// # How a card is read
//
// The reader polls with REQA. A card that answers is resolved with the
// bit-oriented anticollision of ISO/IEC 14443-3 on cascade levels 1 to 3
// (4, 7 and 10 byte UIDs), each level closed by a SELECT whose SAK carries a
// CRC_A; the BCC of every UID part and the CRC_A of every SAK are checked, so
// a UID is reported only when the card itself confirmed it. Two cards in the
// field collide bit by bit and are resolved one after the other. A selected
// card is sent to HALT (HLTA), so it no longer answers REQA: a card left on
// the reader is reported once. Presence is then checked with WUPA, which
// wakes halted cards, a SELECT of the held UID and a REQA: a card that
// stayed falls back to HALT, one that was taken away and brought back
// (selected from IDLE) falls back to IDLE, where the next poll finds it as
// a second presentation. A card that misses Options.RemovalMisses checks in
// a row is Removed.
//
// # A reset is no tap
//
// A chip reset switches the RF field off, and every card on the reader
// comes back in IDLE, answering REQA as if newly placed. The driver keeps a
// record of each card it has halted and not seen go for certain: the held
// ones, and the last 64 Removed only because their presence checks went
// unanswered (answers get lost at the edge of the field, so such a card
// may still lie on the reader, halted, where REQA cannot see it). When the
// field comes back every record is woken, and a woken card found by REQA
// lay on the reader through the reset: it is halted again and nothing is
// reported, neither a second Presented nor a second Removed.
//
// The bound is the reader's first look after the field comes back, not a
// timer. The reset waits the 5.1 ms activation time of ISO/IEC 14443-3
// before polling, so every card on the reader can answer; records stay
// woken until the first poll that ends in silence, whose unanswered REQA is
// repeated 2·RemovalMisses−1 times in a row so that RemovalMisses−1 lost
// answers do not end the look early. A woken card that look does not find
// is not on the reader: a removed one's record is dropped.
//
// This cannot swallow a presentation the reader could see. Another card has
// no record. The same card, taken away and brought back while the field
// stays on, comes back in IDLE with a record that is not woken, and is
// Presented at once. It is merged with its earlier presentation only if it
// was on the reader at the first look after a reset: put back while the chip
// was wedged, the field was off or the reset waited, when the reader saw
// nothing and no observation tells it from a card that never left. A held
// card taken away and brought back in that blind spot has always been
// merged in the same way.
//
// # SPI economy
//
// The datasheet (8.1.2.3) lets one SPI transaction write any number of bytes
// into the FIFO and read any list of registers. The driver loads a frame in
// one transaction and reads ComIrqReg, ErrorReg, FIFOLevelReg, ControlReg,
// CollReg and the expected answer bytes in one more; it keeps the Transceive
// command running between frames and computes CRC_A in software. With the IRQ
// pin, an idle poll costs four transactions.
//
// # Register access
//
// periph.io/x/devices/v3/mfrc522/commands.LowLevel does one transaction per
// register byte and owns the spi.Conn, which leaves no way to batch; this
// package therefore talks to spi.Conn itself, with the register map of
// package reg. The stock driver remains the independent check of the
// emulator (see rc522emu's tests).
//
// # Datasheet
//
// https://www.nxp.com/docs/en/data-sheet/MFRC522.pdf
package rc522
