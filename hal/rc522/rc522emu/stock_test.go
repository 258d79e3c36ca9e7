package rc522emu_test

import (
	"bytes"
	"testing"
	"time"

	"periph.io/x/devices/v3/mfrc522"

	"kiumtap/hal/rc522/rc522emu"
)

// The stock periph driver, unmodified, must read cards from the emulator:
// it is the independent check that the emulator speaks MFRC522.
func TestStockReadUID(t *testing.T) {
	for _, uid := range [][]byte{
		{0xDE, 0xAD, 0xBE, 0xEF},
		{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66},
	} {
		chip := rc522emu.New(rc522emu.Options{})
		dev, err := mfrc522.NewSPI(chip, chip.RST(), chip.IRQ())
		if err != nil {
			t.Fatal(err)
		}
		chip.Place(rc522emu.NewCard(uid, rc522emu.CardOptions{}))
		got, err := dev.ReadUID(time.Second)
		if err != nil {
			t.Fatalf("ReadUID of % X: %v", uid, err)
		}
		if !bytes.Equal(got, uid) {
			t.Errorf("ReadUID = % X, want % X", got, uid)
		}
		// And again: the stock driver re-initialises (the field cycles) on
		// every call.
		got, err = dev.ReadUID(time.Second)
		if err != nil || !bytes.Equal(got, uid) {
			t.Errorf("second ReadUID = % X, %v; want % X", got, err, uid)
		}
	}
}
