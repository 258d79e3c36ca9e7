package rc522emu_test

import (
	"bytes"
	"testing"
	"time"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/hal/rc522/reg"
)

func TestMemCommand(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	data := make([]byte, 25)
	for i := range data {
		data[i] = byte(i + 1)
	}
	b.write(reg.FIFODataReg, data...)
	b.write(reg.CommandReg, reg.CmdMem) // FIFO → internal buffer
	if n := b.read1(reg.FIFOLevelReg); n != 0 {
		t.Fatalf("FIFO holds %d bytes after Mem stored them", n)
	}
	b.write(reg.CommandReg, reg.CmdMem) // empty FIFO: internal buffer → FIFO
	got := b.read(bytes.Repeat([]byte{reg.FIFODataReg}, 25)...)
	if !bytes.Equal(got, data) {
		t.Errorf("Mem round trip: % X", got)
	}
	if irq := b.read1(reg.ComIrqReg); irq&reg.IdleIRq == 0 {
		t.Error("Mem did not end with IdleIRq")
	}
}

func TestTransmitAndTimer(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	card := rc522emu.NewCard([]byte{1, 2, 3, 4}, rc522emu.CardOptions{})
	b.chip.Place(card)
	// Transmit sends without receiving: the card moves to READY, the chip
	// ends the command with TxIRq and IdleIRq and hears nothing.
	b.write(reg.ComIrqReg, 0x7F)
	b.write(reg.BitFramingReg, 0x07)
	b.write(reg.FIFODataReg, iso14443a.REQA)
	b.write(reg.CommandReg, reg.CmdTransmit)
	irq := b.read1(reg.ComIrqReg)
	if irq&(reg.TxIRq|reg.IdleIRq) != reg.TxIRq|reg.IdleIRq || irq&reg.RxIRq != 0 {
		t.Errorf("Transmit: ComIrqReg %#02x", irq)
	}
	if s := b.chip.State(card); s != "READY" {
		t.Errorf("card after a transmitted REQA: %s", s)
	}
	if cmd := b.read1(reg.CommandReg) & 0x0F; cmd != reg.CmdIdle {
		t.Errorf("CommandReg %#02x after Transmit ended", cmd)
	}
	// TStartNow runs the timer; in instant mode it expires at once.
	b.write(reg.ComIrqReg, 0x7F)
	b.write(reg.ControlReg, reg.TStartNow)
	if irq := b.read1(reg.ComIrqReg); irq&reg.TimerIRq == 0 {
		t.Error("TStartNow: no TimerIRq")
	}
}

func TestMFAuthent(t *testing.T) {
	b := newBus(t, rc522emu.Options{})
	b.setup()
	b.chip.Place(rc522emu.NewCard([]byte{0xA1, 0xB2, 0xC3, 0xD4}, rc522emu.CardOptions{}))
	b.transceive([]byte{iso14443a.REQA}, 7, 0)
	b.transceive([]byte{0x93, 0x20}, 0, 0)
	b.transceive(iso14443a.AppendCRCA([]byte{0x93, 0x70, 0xA1, 0xB2, 0xC3, 0xD4, 0xA1 ^ 0xB2 ^ 0xC3 ^ 0xD4}), 0, 0)
	b.write(reg.CommandReg, reg.CmdIdle)
	b.write(reg.FIFODataReg, 0x60, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xA1, 0xB2, 0xC3, 0xD4)
	b.write(reg.CommandReg, reg.CmdMFAuthent)
	if s2 := b.read1(reg.Status2Reg); s2&reg.MFCrypto1On == 0 {
		t.Errorf("MFAuthent with the right key: Status2Reg %#02x", s2)
	}
	b.write(reg.Status2Reg, 0x00) // software clears MFCrypto1On
	if s2 := b.read1(reg.Status2Reg); s2&reg.MFCrypto1On != 0 {
		t.Error("MFCrypto1On not cleared by software")
	}
	b.write(reg.FIFODataReg, 0x60, 0x04)
	b.write(reg.CommandReg, reg.CmdMFAuthent)
	if e := b.read1(reg.ErrorReg); e&reg.ProtocolErr == 0 {
		t.Errorf("MFAuthent with 2 bytes: ErrorReg %#02x, want ProtocolErr", e)
	}
}

// In timed mode a frame takes its air time: a 64-byte frame (578 bit
// periods, about 5.5 ms) has not left the antenna when the next SPI
// transaction looks, and TxIRq comes later.
func TestTimedModeTakesAirTime(t *testing.T) {
	b := newBus(t, rc522emu.Options{Timed: true})
	b.setup()
	b.write(reg.ComIrqReg, 0x7F)
	b.write(reg.BitFramingReg, 0x00)
	b.write(reg.FIFODataReg, make([]byte, 64)...)
	b.write(reg.CommandReg, reg.CmdTransmit)
	st := b.read(reg.ComIrqReg, reg.Status2Reg)
	if st[0]&reg.TxIRq != 0 {
		t.Fatal("timed mode: TxIRq already set as a 5.5 ms frame starts")
	}
	if m := st[1] & reg.ModemStateMsk; m != reg.ModemTransmitting {
		t.Errorf("timed mode: ModemState %d while sending, want %d", m, reg.ModemTransmitting)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.read1(reg.ComIrqReg)&reg.TxIRq == 0 {
		if time.Now().After(deadline) {
			t.Fatal("timed mode: TxIRq never came")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}
