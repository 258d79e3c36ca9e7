package uplink

import (
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"kiumtap/daemon/clock/clocktest"
	"kiumtap/internal/wait"
	"kiumtap/protocol"
)

// Wall times follow the terminal's clock (Options.Clock), not the
// process's: with the clock set years before the real time, a roster's
// arrival, the status, the link's state, a command's expiry, a ping's
// answer and a rejection all say the clock's time, and the roster's age
// in the status is measured on that one clock.
func TestWallTimesFollowTheClock(t *testing.T) {
	at := time.Date(2020, 3, 2, 6, 30, 0, 0, time.UTC) // years from the real time
	clk := clocktest.New(at)
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), func(o *Options) { o.Clock = clk })
	topics := protocol.Topics{Centre: centre, Device: device}
	p.publish(topics.Roster(), true, snapshotMsg(sampleRoster(2)))
	tm.run()
	wait.For(t, 10*time.Second, "roster revision 2 applied", func() bool {
		r, _, err := tm.st.Roster()
		return err == nil && r.Revision == 2
	})
	wait.For(t, 10*time.Second, "an online status with revision 2", func() bool {
		s := p.lastStatus()
		return s.State == "online" && s.RosterRev == 2
	})

	// A command valid by the clock, expired by the real time; and a
	// forged one, refused.
	cmd := func(id, name string, key ed25519.PrivateKey) []byte {
		raw, _ := json.Marshal(protocol.Command{V: 1, ID: id, Centre: centre, Device: device, Name: name, Expires: at.Add(time.Minute)})
		return protocol.Sign(key, raw)
	}
	p.publish(topics.Cmd(), false, cmd("ping-1", protocol.CmdPing, portalPriv))
	var ping protocol.Reply
	wait.For(t, 10*time.Second, "the ping's reply", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.replies {
			if r.ID == "ping-1" {
				ping = r
				return true
			}
		}
		return false
	})
	_, forger, _ := ed25519.GenerateKey(nil)
	p.publish(topics.Cmd(), false, cmd("forged", protocol.CmdResync, forger))
	wait.For(t, 10*time.Second, "the forged command refused", func() bool { return tm.up.Stats().Rejected > 0 })

	var pinged struct {
		Time time.Time `json:"time"`
	}
	json.Unmarshal(ping.Result, &pinged)
	_, received, err := tm.st.Roster()
	if err != nil {
		t.Fatal(err)
	}
	st := tm.up.Status()
	rej := tm.up.Stats().Rejections
	for _, tc := range []struct {
		what string
		got  time.Time
	}{
		{"the roster's arrival (store)", received},
		{"the link's since", tm.up.Link().Since},
		{"the status's time", st.Time},
		{"the ping's answer", pinged.Time},
		{"the rejection's time", rej[len(rej)-1].Time},
	} {
		if !tc.got.Equal(at) {
			t.Errorf("%s = %v, want the clock's %v", tc.what, tc.got, at)
		}
	}
	if !ping.OK {
		t.Errorf("a ping valid until %v by the clock was refused: %+v", at.Add(time.Minute), ping)
	}
	if st.RosterRev != 2 || st.RosterAgeS != 0 {
		t.Errorf("status: roster %d, %v s old; want revision 2, 0 s old by the clock", st.RosterRev, st.RosterAgeS)
	}
}
