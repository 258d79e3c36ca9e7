package rc522emu_test

import (
	"bytes"
	"errors"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/hal/rc522/reg"
)

// bus is a test's register access, one SPI transaction per call.
type bus struct {
	t    *testing.T
	chip *rc522emu.Chip
	c    spi.Conn
}

func newBus(t *testing.T, opts rc522emu.Options) *bus {
	t.Helper()
	chip := rc522emu.New(opts)
	c, err := chip.Connect(10*physic.MegaHertz, spi.Mode0, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chip.Close() })
	return &bus{t: t, chip: chip, c: c}
}

func (b *bus) write(r byte, data ...byte) {
	b.t.Helper()
	if err := b.c.Tx(append([]byte{reg.Addr(r)}, data...), nil); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bus) read(regs ...byte) []byte {
	b.t.Helper()
	w := make([]byte, len(regs)+1)
	for i, r := range regs {
		w[i] = reg.ReadAddr(r)
	}
	rd := make([]byte, len(w))
	if err := b.c.Tx(w, rd); err != nil {
		b.t.Fatal(err)
	}
	return rd[1:]
}

func (b *bus) read1(r byte) byte { b.t.Helper(); return b.read(r)[0] }

// setup does what every reader does before talking to cards: 100 % ASK,
// CRC preset 6363h, a timer in auto mode, antenna on.
func (b *bus) setup() {
	b.write(reg.TModeReg, 0x80)
	b.write(reg.TPrescalerReg, 0xA9)
	b.write(reg.TReloadRegH, 0x00)
	b.write(reg.TReloadRegL, 0xC8)
	b.write(reg.TxASKReg, reg.Force100ASK)
	b.write(reg.ModeReg, 0x3D)
	b.write(reg.TxControlReg, 0x83)
}

// transceive sends data with txLastBits valid bits in the last byte and
// returns what landed in the FIFO, ComIrqReg and ErrorReg.
func (b *bus) transceive(data []byte, txLastBits, rxAlign int) (fifo []byte, irq, errs byte) {
	b.t.Helper()
	b.write(reg.CommandReg, reg.CmdIdle)
	b.write(reg.ComIrqReg, 0x7F)
	b.write(reg.FIFOLevelReg, reg.FlushBuffer)
	b.write(reg.FIFODataReg, data...)
	b.write(reg.BitFramingReg, byte(rxAlign<<4|txLastBits))
	b.write(reg.CommandReg, reg.CmdTransceive)
	b.write(reg.BitFramingReg, reg.StartSend|byte(rxAlign<<4|txLastBits))
	st := b.read(reg.ComIrqReg, reg.ErrorReg, reg.FIFOLevelReg)
	irq, errs = st[0], st[1]
	if n := int(st[2]); n > 0 {
		regs := bytes.Repeat([]byte{reg.FIFODataReg}, n)
		fifo = b.read(regs...)
	}
	return fifo, irq, errs
}

func TestResetValues(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	for r, want := range map[byte]byte{
		reg.CommandReg: 0x20, reg.ComIEnReg: 0x80, reg.DivIEnReg: 0x00, reg.ComIrqReg: 0x14,
		reg.DivIrqReg: 0x00, reg.ErrorReg: 0x00, reg.Status1Reg: 0x21, reg.Status2Reg: 0x00,
		reg.FIFOLevelReg: 0x00, reg.WaterLevelReg: 0x08, reg.ControlReg: 0x10,
		reg.BitFramingReg: 0x00, reg.CollReg: 0xA0, reg.ModeReg: 0x3F, reg.TxModeReg: 0x00,
		reg.RxModeReg: 0x00, reg.TxControlReg: 0x80, reg.TxASKReg: 0x00, reg.TxSelReg: 0x10,
		reg.RxSelReg: 0x84, reg.RxThresholdReg: 0x84, reg.DemodReg: 0x4D, reg.MfTxReg: 0x62,
		reg.MfRxReg: 0x00, reg.SerialSpeedReg: 0xEB, reg.CRCResultRegH: 0xFF,
		reg.CRCResultRegL: 0xFF, reg.ModWidthReg: 0x26, reg.RFCfgReg: 0x48, reg.GsNReg: 0x88,
		reg.CWGsPReg: 0x20, reg.ModGsPReg: 0x20, reg.TModeReg: 0x00, reg.TPrescalerReg: 0x00,
		reg.TReloadRegH: 0x00, reg.TReloadRegL: 0x00, reg.TestPinEnReg: 0x80,
		reg.AutoTestReg: 0x40, reg.VersionReg: 0x92,
	} {
		if got := b.read1(r); got != want {
			t.Errorf("%s = %#02x after reset, want %#02x", reg.Names[r], got, want)
		}
	}
	// SoftReset brings them back.
	b.write(reg.ModeReg, 0x3D)
	b.write(reg.CommandReg, reg.CmdSoftReset)
	if got := b.read1(reg.ModeReg); got != 0x3F {
		t.Errorf("ModeReg after SoftReset = %#02x, want 3F", got)
	}
}

// Annex B of ISO/IEC 14443-3 through the CRC coprocessor: 00 00 gives a
// CRC_A sent as A0 1E, 12 34 gives 26 CF (CRCResultReg: MSB at 21h, LSB
// at 22h; the LSB goes first on air).
func TestCalcCRCAnnexB(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.write(reg.ModeReg, 0x3D) // CRCPreset 01: 6363h
	for _, tc := range []struct {
		in   []byte
		want [2]byte
	}{
		{[]byte{0x00, 0x00}, [2]byte{0xA0, 0x1E}},
		{[]byte{0x12, 0x34}, [2]byte{0x26, 0xCF}},
	} {
		b.write(reg.CommandReg, reg.CmdIdle)
		b.write(reg.DivIrqReg, reg.CRCIRq) // Set2 = 0: clear CRCIRq
		b.write(reg.FIFOLevelReg, reg.FlushBuffer)
		b.write(reg.FIFODataReg, tc.in...)
		b.write(reg.CommandReg, reg.CmdCalcCRC)
		if b.read1(reg.DivIrqReg)&reg.CRCIRq == 0 {
			t.Fatal("CRCIRq not set after CalcCRC")
		}
		got := b.read(reg.CRCResultRegL, reg.CRCResultRegH)
		if [2]byte(got) != tc.want {
			t.Errorf("CalcCRC(% X) = % X, want % X", tc.in, got, tc.want)
		}
	}
	// Feeding the CRC of the data back in gives a zero result: CRCOk.
	b.write(reg.CommandReg, reg.CmdIdle)
	b.write(reg.FIFODataReg, 0x12, 0x34, 0x26, 0xCF)
	b.write(reg.CommandReg, reg.CmdCalcCRC)
	if b.read1(reg.Status1Reg)&reg.CRCOk == 0 {
		t.Error("Status1Reg CRCOk not set for data followed by its CRC_A")
	}
}

func TestSPIFraming(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	// One transaction writes many bytes into one register (the FIFO)...
	b.write(reg.FIFODataReg, 1, 2, 3, 4, 5)
	if b.chip.Stats().SPITransactions != 1 {
		t.Fatalf("a burst write took %d transactions", b.chip.Stats().SPITransactions)
	}
	// ... and one transaction reads several registers, MISO one byte behind.
	got := b.read(reg.FIFOLevelReg, reg.FIFODataReg, reg.FIFODataReg, reg.VersionReg, reg.FIFODataReg)
	if want := []byte{5, 1, 2, 0x92, 3}; !bytes.Equal(got, want) {
		t.Errorf("multi-register read = % X, want % X", got, want)
	}
	// A write's address byte has bit 7 clear; 0x7F would write register 3F.
	if err := b.c.Tx([]byte{0x80 | 0x37<<1, 0x00}, make([]byte, 1)); err == nil {
		t.Error("Tx with len(r) != len(w): no error")
	}
	// FIFO overflow sets BufferOvfl; FlushBuffer clears it.
	b.write(reg.FIFODataReg, make([]byte, 70)...)
	if e := b.read1(reg.ErrorReg); e&reg.BufferOvfl == 0 {
		t.Errorf("ErrorReg = %#02x after 73 bytes in a 64-byte FIFO, want BufferOvfl", e)
	}
	b.write(reg.FIFOLevelReg, reg.FlushBuffer)
	if e, n := b.read1(reg.ErrorReg), b.read1(reg.FIFOLevelReg); e != 0 || n != 0 {
		t.Errorf("after FlushBuffer: ErrorReg %#02x, FIFOLevel %d", e, n)
	}
	// Packets joined by KeepCS make one transaction.
	before := b.chip.Stats().SPITransactions
	r := make([]byte, 2)
	err := b.c.TxPackets([]spi.Packet{
		{W: []byte{reg.ReadAddr(reg.VersionReg)}, R: make([]byte, 1), KeepCS: true},
		{W: []byte{0}, R: r[1:]},
	})
	if err != nil || r[1] != 0x92 || b.chip.Stats().SPITransactions != before+1 {
		t.Errorf("TxPackets: %v, read %#02x, %d transactions", err, r[1], b.chip.Stats().SPITransactions-before)
	}
}

func TestConnectChecksMode(t *testing.T) {
	chip := rc522emu.New(rc522emu.Options{})
	if _, err := chip.Connect(10*physic.MegaHertz, spi.Mode3, 8); err == nil {
		t.Error("Connect in mode 3: no error")
	}
	if _, err := chip.Connect(20*physic.MegaHertz, spi.Mode0, 8); err == nil {
		t.Error("Connect at 20 MHz: no error")
	}
	if _, err := chip.Connect(10*physic.MegaHertz, spi.Mode0, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := chip.Connect(10*physic.MegaHertz, spi.Mode0, 8); err == nil {
		t.Error("second Connect: no error")
	}
}

func TestPICCStateMachine(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	card := rc522emu.NewCard([]byte{0x11, 0x22, 0x33, 0x44}, rc522emu.CardOptions{})
	b.chip.Place(card)
	if s := b.chip.State(card); s != "IDLE" {
		t.Fatalf("card in the field: %s, want IDLE", s)
	}
	atqa, irq, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0)
	if !bytes.Equal(atqa, []byte{0x04, 0x00}) || irq&reg.RxIRq == 0 {
		t.Fatalf("REQA: ATQA % X, ComIrq %#02x", atqa, irq)
	}
	uid, _, _ := b.transceive([]byte{0x93, 0x20}, 0, 0)
	if want := []byte{0x11, 0x22, 0x33, 0x44, 0x44}; !bytes.Equal(uid, want) {
		t.Fatalf("ANTICOLLISION: % X, want % X", uid, want)
	}
	sak, _, _ := b.transceive(iso14443a.AppendCRCA(append([]byte{0x93, 0x70}, uid...)), 0, 0)
	if len(sak) != 3 || sak[0] != 0x08 || !iso14443a.CheckCRCA(sak) {
		t.Fatalf("SELECT: SAK % X", sak)
	}
	if s := b.chip.State(card); s != "ACTIVE" {
		t.Fatalf("after SELECT: %s, want ACTIVE", s)
	}
	_, irq, _ = b.transceive(iso14443a.AppendCRCA([]byte{0x50, 0x00}), 0, 0)
	if irq&reg.RxIRq != 0 || irq&reg.TimerIRq == 0 {
		t.Errorf("HLTA: ComIrq %#02x, want a timeout and no answer", irq)
	}
	if s := b.chip.State(card); s != "HALT" {
		t.Fatalf("after HLTA: %s, want HALT", s)
	}
	if got, _, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); got != nil {
		t.Errorf("a halted card answered REQA: % X", got)
	}
	if got, _, _ := b.transceive([]byte{iso14443a.WUPA}, 7, 0); !bytes.Equal(got, []byte{0x04, 0x00}) {
		t.Errorf("WUPA to a halted card: % X", got)
	}
	if s := b.chip.State(card); s != "READY*" {
		t.Errorf("after WUPA: %s, want READY*", s)
	}
	// An unexpected frame in READY* sends it back to HALT, silently.
	b.transceive(iso14443a.AppendCRCA([]byte{0x30, 0x04}), 0, 0)
	if s := b.chip.State(card); s != "HALT" {
		t.Errorf("after a stray frame in READY*: %s, want HALT", s)
	}
	// Switching the field off and on resets the card to IDLE.
	b.write(reg.TxControlReg, 0x80)
	b.write(reg.TxControlReg, 0x83)
	if s := b.chip.State(card); s != "IDLE" {
		t.Errorf("after a field cycle: %s, want IDLE", s)
	}
	// Without 100 % ASK the card hears nothing.
	b.write(reg.TxASKReg, 0)
	if got, _, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); got != nil {
		t.Errorf("REQA without Force100ASK answered: % X", got)
	}
}

// Two cards answering ANTICOLLISION collide at the first bit where their
// UIDs differ: CollErr, CollPos counted from 1 at bit 0 of the first FIFO
// byte (RxAlign included), bits after it cleared (ValuesAfterColl = 0).
func TestCollision(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	b.write(reg.CollReg, 0x00)
	// UIDs differ first in bit 2 of byte 1 (0x20 vs 0x24): bit 10 of the
	// UID CLn, the 11th bit.
	b.chip.Place(rc522emu.NewCard([]byte{0x11, 0x20, 0x33, 0x44}, rc522emu.CardOptions{}))
	b.chip.Place(rc522emu.NewCard([]byte{0x11, 0x24, 0x35, 0x46}, rc522emu.CardOptions{}))
	if atqa, _, errs := b.transceive([]byte{iso14443a.REQA}, 7, 0); !bytes.Equal(atqa, []byte{4, 0}) || errs != 0 {
		t.Fatalf("REQA to two cards with the same ATQA: % X, errors %#02x", atqa, errs)
	}
	got, irq, errs := b.transceive([]byte{0x93, 0x20}, 0, 0)
	if errs&reg.CollErr == 0 || irq&reg.ErrIRq == 0 {
		t.Fatalf("ErrorReg %#02x, ComIrq %#02x: want CollErr and ErrIRq", errs, irq)
	}
	if coll := b.read1(reg.CollReg); coll != 11 {
		t.Errorf("CollReg = %#02x, want CollPos 11 (0x0B)", coll)
	}
	if want := []byte{0x11, 0x04, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("received % X, want % X (collided bit 1, later bits 0)", got, want)
	}
	// Send the 11 known bits (with the collided bit chosen as 1): only the
	// card with 0x24 answers, from bit 11 on, aligned at bit 3.
	known := []byte{0x93, 0x20 + 0x10 + 3, 0x11, 0x04}
	got, _, errs = b.transceive(known, 3, 3)
	if errs != 0 {
		t.Fatalf("second round: ErrorReg %#02x", errs)
	}
	if want := []byte{0x20, 0x35, 0x46, 0x11 ^ 0x24 ^ 0x35 ^ 0x46}; !bytes.Equal(got, want) {
		t.Errorf("second round: % X, want % X", got, want)
	}
	if lb := b.read1(reg.ControlReg) & reg.RxLastBitsMsk; lb != 0 {
		t.Errorf("RxLastBits = %d, want 0", lb)
	}
}

func TestCRCOnTheFly(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	b.chip.Place(rc522emu.NewCard([]byte{0xAA, 0xBB, 0xCC, 0xDD}, rc522emu.CardOptions{}))
	b.transceive([]byte{iso14443a.REQA}, 7, 0)
	b.transceive([]byte{0x93, 0x20}, 0, 0)
	b.write(reg.TxModeReg, reg.TxCRCEn)
	b.write(reg.RxModeReg, reg.RxCRCEn)
	sak, _, errs := b.transceive([]byte{0x93, 0x70, 0xAA, 0xBB, 0xCC, 0xDD, 0xAA ^ 0xBB ^ 0xCC ^ 0xDD}, 0, 0)
	if !bytes.Equal(sak, []byte{0x08}) || errs != 0 {
		t.Errorf("SELECT with TxCRCEn/RxCRCEn: % X, ErrorReg %#02x; want SAK 08 alone", sak, errs)
	}
}

func TestIRQPin(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	irq := b.chip.IRQ()
	if err := irq.In(gpio.PullUp, gpio.FallingEdge); err != nil {
		t.Fatal(err)
	}
	if irq.Read() != gpio.High {
		t.Fatal("IRQ not high after reset (IRqInv = 1, nothing enabled)")
	}
	b.write(reg.ComIEnReg, reg.IRqInv|reg.LoAlertIRq) // LoAlertIRq is set after reset
	if irq.Read() != gpio.Low || !irq.WaitForEdge(0) {
		t.Fatal("enabling a pending interrupt did not pull IRQ low with a falling edge")
	}
	b.write(reg.ComIrqReg, reg.LoAlertIRq|reg.IdleIRq)
	if irq.Read() != gpio.High {
		t.Error("clearing the interrupt did not release IRQ")
	}
	if irq.WaitForEdge(0) {
		t.Error("a rising edge was reported to a falling-edge waiter")
	}
	b.write(reg.ComIEnReg, reg.LoAlertIRq) // IRqInv = 0: active high
	b.write(reg.ComIrqReg, reg.Set1|reg.LoAlertIRq)
	if irq.Read() != gpio.High {
		t.Error("IRQ not high with IRqInv = 0 and an interrupt pending")
	}
}

func TestFaults(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	b.chip.Place(rc522emu.NewCard([]byte{1, 2, 3, 4}, rc522emu.CardOptions{}))

	b.chip.Inject(rc522emu.FaultNoAnswer, 1)
	if got, irq, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); got != nil || irq&reg.TimerIRq == 0 {
		t.Errorf("lost answer: FIFO % X, ComIrq %#02x", got, irq)
	}
	b.write(reg.TxControlReg, 0x80) // field cycle: the card is IDLE again
	b.write(reg.TxControlReg, 0x83)

	b.chip.Inject(rc522emu.FaultParityError, 1)
	if _, _, errs := b.transceive([]byte{iso14443a.REQA}, 7, 0); errs&reg.ParityErr == 0 {
		t.Errorf("parity fault: ErrorReg %#02x", errs)
	}
	b.write(reg.TxControlReg, 0x80)
	b.write(reg.TxControlReg, 0x83)
	b.transceive([]byte{iso14443a.REQA}, 7, 0)
	b.transceive([]byte{0x93, 0x20}, 0, 0)
	b.chip.Inject(rc522emu.FaultCRCError, 1)
	sak, _, _ := b.transceive(iso14443a.AppendCRCA([]byte{0x93, 0x70, 1, 2, 3, 4, 4}), 0, 0)
	if len(sak) != 3 || iso14443a.CheckCRCA(sak) {
		t.Errorf("CRC fault: SAK frame % X has a good CRC", sak)
	}

	b.chip.Inject(rc522emu.FaultSPIError, 1)
	if err := b.c.Tx([]byte{reg.ReadAddr(reg.VersionReg), 0}, make([]byte, 2)); !errors.Is(err, rc522emu.ErrSPI) {
		t.Errorf("SPI fault: %v", err)
	}
}

func TestWedgeAndHardReset(t *testing.T) {
	for _, mode := range []rc522emu.WedgeMode{rc522emu.WedgeStuckState, rc522emu.WedgeStuckBus} {
		b := newBus(t, rc522emu.Options{})
		b.setup()
		b.chip.Place(rc522emu.NewCard([]byte{1, 2, 3, 4}, rc522emu.CardOptions{}))
		b.chip.Wedge(mode)
		if got, irq, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); got != nil || irq&(reg.RxIRq|reg.TimerIRq) != 0 {
			t.Errorf("wedge %d: the chip still answered: % X, ComIrq %#02x", mode, got, irq)
		}
		b.write(reg.CommandReg, reg.CmdSoftReset) // does not help
		if got, _, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); got != nil {
			t.Errorf("wedge %d: SoftReset unwedged the chip", mode)
		}
		rst := b.chip.RST()
		rst.Out(gpio.Low)
		if v := b.read1(reg.VersionReg); v != 0 {
			t.Errorf("VersionReg in hard power-down = %#02x, want 00", v)
		}
		rst.Out(gpio.High)
		b.setup()
		if got, _, _ := b.transceive([]byte{iso14443a.REQA}, 7, 0); !bytes.Equal(got, []byte{4, 0}) {
			t.Errorf("wedge %d: after a hard reset REQA gave % X", mode, got)
		}
	}
}
