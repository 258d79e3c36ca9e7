package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/devices"
	"kiumtap/protocol"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// The bridge's store is restored from an older backup: the portal lost
// events the terminal deleted when they were acknowledged. The terminal's
// later events stall behind the gap; kiumctl gaps shows it, a wrong
// -through is refused, and gap accept records the loss and lets the later
// events (and their texts) through.
func TestGapAfterRestore(t *testing.T) {
	s := startSystem(t, []devices.Device{{Centre: mangwon.id, ID: "door"}}, mangwon)
	d := startDoor(t, s.mq, mangwon, "door", time.Now().In(firmware.KST))
	waitRosters(t, d)
	taps := func(n int) {
		t.Helper()
		for i := range n {
			d.clk.Add(10 * time.Minute)
			if _, _, err := d.term.Tap(mangwon.cards[[]string{"k1", "k2"}[i%2]]); err != nil {
				t.Fatal(err)
			}
			<-d.shown
		}
		wait.For(t, 20*time.Second, "every event acknowledged", func() bool { f, _, _ := d.st.Waiting(); return f == 0 })
	}
	taps(10) // events 1..10
	s.stopBridge()
	db := filepath.Join(s.dir, "bridge.db")
	copyFile(t, db, db+".backup")
	s.startBridge(t)
	taps(10) // 11..20: acknowledged, so deleted at the terminal
	s.stopBridge()
	copyFile(t, db+".backup", db) // the restore
	s.startBridge(t)
	for i := range 3 { // 21..23 arrive, and stall behind 11..20
		d.clk.Add(time.Minute)
		d.term.Tap(mangwon.cards[[]string{"k1", "k2"}[i%2]])
		<-d.shown
	}
	var v api.GapsView
	wait.For(t, 30*time.Second, "the stall reported", func() bool {
		s.call(t, "GET", "/gaps?centre="+mangwon.id, nil, &v)
		return len(v.Stalled) == 1
	})
	st := v.Stalled[0]
	if st.Device != "door" || st.Log != d.st.LogID() || st.Last != 10 || st.Lowest != 21 {
		t.Fatalf("stall %+v", st)
	}
	if f, _, _ := d.st.Waiting(); f != 21 {
		t.Fatalf("the terminal waits from %d", f)
	}
	if r := d.up.Status().Rejected; r == nil || !strings.Contains(r.Reason, "the portal must record the gap") {
		t.Fatalf("the terminal's status does not report the gap: %+v", r)
	}
	// A wrong -through would lose events the terminal still has, or leave
	// the stall: refused.
	if code := s.call(t, "POST", "/gap", api.GapRequest{Centre: mangwon.id, Device: "door", Through: 19, By: "op.kim"}, nil); code != http.StatusBadRequest {
		t.Fatalf("through 19: HTTP %d", code)
	}
	var g api.Gap
	if code := s.call(t, "POST", "/gap", api.GapRequest{Centre: mangwon.id, Device: "door", Through: 20, By: "op.kim"}, &g); code != http.StatusOK || g.From != 11 || g.To != 20 {
		t.Fatalf("accept: HTTP %d %+v", code, g)
	}
	wait.For(t, 30*time.Second, "the events beyond the gap acknowledged", func() bool { f, _, _ := d.st.Waiting(); return f == 0 })
	var seqs []uint64
	s.bst.Events(mangwon.id, func(e protocol.Event) bool { seqs = append(seqs, e.Seq); return true })
	if len(seqs) != 13 || seqs[9] != 10 || seqs[10] != 21 || seqs[12] != 23 {
		t.Fatalf("stored %v", seqs)
	}
	s.call(t, "GET", "/gaps?centre="+mangwon.id, nil, &v)
	if len(v.Stalled) != 0 || len(v.Recorded) != 1 || v.Recorded[0].By != "op.kim" {
		t.Fatalf("after: %+v", v)
	}
}
