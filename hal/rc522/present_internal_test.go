package rc522

import (
	"context"
	"errors"
	"testing"

	"kiumtap/hal/rc522/rc522emu"
)

// A presence check tells a card that never left (it stays halted) from one
// taken away and brought back between two checks (it ends in IDLE, where
// the next REQA finds it) even though both answer WUPA and SELECT.
func TestPresenceTellsBackFromStayed(t *testing.T) {
	for _, uid := range [][]byte{{1, 2, 3, 4}, {4, 1, 2, 3, 4, 5, 6}, {5, 1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		chip := rc522emu.New(rc522emu.Options{})
		d, err := New(chip, chip.RST(), chip.IRQ(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
		chip.Place(card)
		if _, err := d.Scan(ctx); err != nil {
			t.Fatal(err)
		}
		// Stayed: present, and halted again.
		if ok, err := d.present(ctx, uid); !ok || err != nil {
			t.Fatalf("% X: present = %v, %v", uid, ok, err)
		}
		if s := chip.State(card); s != "HALT" {
			t.Errorf("% X: after the check a card that stayed is %s, want HALT", uid, s)
		}
		if _, err := d.request(ctx, false, false); !errors.Is(err, ErrNoCard) {
			t.Errorf("% X: REQA after the check answered: %v", uid, err)
		}
		// Back: present too, but left in IDLE for the next poll.
		chip.Remove(card)
		chip.Place(card)
		if ok, err := d.present(ctx, uid); !ok || err != nil {
			t.Fatalf("% X: present after coming back = %v, %v", uid, ok, err)
		}
		if s := chip.State(card); s != "IDLE" {
			t.Errorf("% X: after the check a card that came back is %s, want IDLE", uid, s)
		}
		if _, err := d.request(ctx, false, false); err != nil {
			t.Errorf("% X: the next REQA did not find the card that came back: %v", uid, err)
		}
	}
}
