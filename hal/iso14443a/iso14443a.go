// Package iso14443a holds the ISO/IEC 14443-3 Type A facts that both the
// MFRC522 driver and its emulator rely on: command codes, CRC_A, the BCC of a
// UID part, the cascade tag, ATQA and SAK bits, frame delay times and the air
// time of a frame at 106 kbit/s.
//
// It owns no I/O. Keeping one copy of these facts means the driver and the
// emulator cannot silently agree on a mistake that only one of them made:
// every value here is tested against the standard's own examples.
//
// # Standard
//
// ISO/IEC 14443-3:2018, Identification cards — Contactless integrated circuit
// cards — Proximity cards — Part 3: Initialization and anticollision;
// Annex B gives the CRC_A examples used in the tests.
package iso14443a

import (
	"fmt"
	"time"
)

// Short-frame and standard-frame commands of ISO/IEC 14443-3 Type A.
const (
	REQA = 0x26 // request, 7-bit short frame: answered by IDLE cards
	WUPA = 0x52 // wake-up, 7-bit short frame: answered by IDLE and HALT cards

	SelCL1 = 0x93 // SEL code of cascade level 1
	SelCL2 = 0x95 // SEL code of cascade level 2
	SelCL3 = 0x97 // SEL code of cascade level 3

	NVBAnticoll = 0x20 // NVB of an ANTICOLLISION with no UID bits known
	NVBSelect   = 0x70 // NVB of a SELECT: 7 bytes (SEL, NVB, 4 UID-part bytes, BCC)

	HLTA0 = 0x50 // first byte of HLTA; the second is 0x00, then CRC_A

	CascadeTag = 0x88 // CT: first byte of a UID part that continues on the next level
)

// SAK bits.
const (
	SAKCascade = 0x04 // UID not complete: go on to the next cascade level
	SAKISO     = 0x20 // UID complete, PICC compliant with ISO/IEC 14443-4
)

// Timing at 106 kbit/s.
const (
	// Fc is the carrier frequency in hertz.
	Fc = 13_560_000
	// BitTime is the duration of one bit (128 carrier cycles): 9.44 µs.
	BitTime = 128 * time.Second / Fc
)

// SelCode returns the SEL byte of cascade level 1, 2 or 3.
func SelCode(level int) (byte, error) {
	switch level {
	case 1:
		return SelCL1, nil
	case 2:
		return SelCL2, nil
	case 3:
		return SelCL3, nil
	}
	return 0, fmt.Errorf("iso14443a: cascade level %d does not exist (1 to 3)", level)
}

// LevelOfSel returns the cascade level (1 to 3) of a SEL byte, or 0.
func LevelOfSel(sel byte) int {
	switch sel {
	case SelCL1:
		return 1
	case SelCL2:
		return 2
	case SelCL3:
		return 3
	}
	return 0
}

// CRCA returns CRC_A of data as the two bytes in transmission order (the
// low byte first): polynomial x^16+x^12+x^5+1, preset 0x6363, LSB first, no
// final inversion. Annex B: CRCA(00 00) = A0 1E, CRCA(12 34) = 26 CF.
func CRCA(data []byte) [2]byte {
	crc := UpdateCRCA(0x6363, data)
	return [2]byte{byte(crc), byte(crc >> 8)}
}

// UpdateCRCA runs the CRC_A register over data from the value crc; it lets a
// caller start from another preset (the MFRC522's CRCPreset) or go on.
func UpdateCRCA(crc uint16, data []byte) uint16 {
	for _, b := range data {
		b ^= byte(crc)
		b ^= b << 4
		crc = (crc >> 8) ^ uint16(b)<<8 ^ uint16(b)<<3 ^ uint16(b)>>4
	}
	return crc
}

// CheckCRCA reports whether frame ends with the CRC_A of what precedes it.
func CheckCRCA(frame []byte) bool {
	if len(frame) < 3 {
		return false
	}
	c := CRCA(frame[:len(frame)-2])
	return c[0] == frame[len(frame)-2] && c[1] == frame[len(frame)-1]
}

// AppendCRCA returns frame with its CRC_A appended.
func AppendCRCA(frame []byte) []byte {
	c := CRCA(frame)
	return append(frame, c[0], c[1])
}

// BCC is the exclusive-or of the four bytes of a UID part.
func BCC(part []byte) byte {
	var x byte
	for _, b := range part {
		x ^= b
	}
	return x
}

// Parts splits a 4, 7 or 10 byte UID into the 4-byte UID parts sent on each
// cascade level, with the cascade tag in front of every part but the last.
func Parts(uid []byte) ([][4]byte, error) {
	var parts [][4]byte
	switch len(uid) {
	case 4:
		parts = [][4]byte{{uid[0], uid[1], uid[2], uid[3]}}
	case 7:
		parts = [][4]byte{
			{CascadeTag, uid[0], uid[1], uid[2]},
			{uid[3], uid[4], uid[5], uid[6]},
		}
	case 10:
		parts = [][4]byte{
			{CascadeTag, uid[0], uid[1], uid[2]},
			{CascadeTag, uid[3], uid[4], uid[5]},
			{uid[6], uid[7], uid[8], uid[9]},
		}
	default:
		return nil, fmt.Errorf("iso14443a: a UID has 4, 7 or 10 bytes, not %d", len(uid))
	}
	return parts, nil
}

// UIDSize is the UID size coded in ATQA bits b8..b7.
type UIDSize int

// ATQA UID sizes.
const (
	Single UIDSize = 4
	Double UIDSize = 7
	Triple UIDSize = 10
)

// ATQA builds the two ATQA bytes (transmission order: LSB first) for a UID
// length and an anticollision bit b1..b5 (0 to 4; MIFARE Classic uses bit 2).
func ATQA(uidLen int, frameBit int) [2]byte {
	var size byte
	switch uidLen {
	case 7:
		size = 1
	case 10:
		size = 2
	}
	return [2]byte{size<<6 | 1<<(frameBit%5), 0x00}
}

// ATQAUIDLen returns the UID length an ATQA announces, or 0 when its size
// bits hold the reserved value or its anticollision bits are not exactly one.
func ATQAUIDLen(atqa [2]byte) int {
	bits := atqa[0] & 0x1F
	if bits == 0 || bits&(bits-1) != 0 {
		return 0
	}
	switch atqa[0] >> 6 {
	case 0:
		return 4
	case 1:
		return 7
	case 2:
		return 10
	}
	return 0
}

// FDT is the frame delay time PCD → PICC for REQA, WUPA, ANTICOLLISION and
// SELECT: (n·128 + 84)/fc when the PCD's last bit is 1 and (n·128 + 20)/fc
// when it is 0, with n = 9.
func FDT(lastBitOne bool) time.Duration {
	cycles := int64(9*128 + 20)
	if lastBitOne {
		cycles = 9*128 + 84
	}
	return time.Duration(cycles * int64(time.Second) / Fc)
}

// FrameBits is the number of bit periods a frame occupies on air: a start of
// communication, each data bit, a parity bit after each full byte, and an end
// of communication. A short frame (7 bits) has no parity.
func FrameBits(nbits int) int {
	if nbits <= 0 {
		return 0
	}
	return 1 + nbits + nbits/8 + 1
}

// AirTime returns the time a frame of nbits data bits occupies at 106 kbit/s.
func AirTime(nbits int) time.Duration {
	return time.Duration(FrameBits(nbits)) * BitTime
}
