package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"kiumtap/internal/pgtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/bridge"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

// Two bridges on one PostgreSQL, a terminal whose log has a hole at the
// portal (4..9 lost: a database restored from a backup): each bridge that
// the terminal's messages reach reports the stall. A third bridge on the
// same database, on a broker the terminal is not on, gets none of its
// messages: it lists the stall the others shared, and the gap is accepted
// through it. The record is in the shared store, and the later events are
// stored whichever bridge takes them.
func TestGapAcceptedWithSeveralBridges(t *testing.T) {
	mq := startTestBroker(t)
	dsn := pgtest.Shared(t).NewDatabase(t)
	dir := t.TempDir()
	writeTestSource(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bs []*bridge.Bridge
	var db0 *pgstore.Store
	for i := range 2 {
		db, err := pgstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if i == 0 {
			db0 = db
		}
		b, err := bridge.New(bridge.Options{Broker: mq.URL(), Password: portalPass, ClientID: fmt.Sprintf("host%d", i), Key: portalKey,
			DB: db, SourceDir: dir, Provider: &countTexts{}, From: "0212345678", StallAfter: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		wg.Add(1)
		go func() { defer wg.Done(); b.Run(ctx) }()
	}
	// The third, on a broker of its own.
	mq2 := startTestBroker(t)
	db2, err := pgstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	far, err := bridge.New(bridge.Options{Broker: mq2.URL(), Password: portalPass, ClientID: "host2", Key: portalKey,
		DB: db2, SourceDir: dir, Provider: &countTexts{}, From: "0212345678", StallAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); far.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitOnline(t, mq.URL(), 2)
	pub := publisher(t, mq.URL())
	send := func(seqs ...int) {
		t.Helper()
		var evs []protocol.Event
		for _, s := range seqs {
			evs = append(evs, protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", s), Centre: "mangwon1", Device: "door", Log: "L1", Seq: uint64(s),
				Time: time.Now().Add(time.Duration(s) * time.Minute), ClockSynced: true, Child: "c1", Outcome: "check_in", Reason: "test", RosterRev: 1})
		}
		raw, _ := json.Marshal(protocol.Batch{V: 1, Events: evs})
		if tok := pub.Publish(protocol.Topics{Centre: "mangwon1", Device: "door"}.Events(), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	last := func() uint64 { l, _ := db0.Last(context.Background(), "door", "L1"); return l }
	send(1, 2, 3)
	wait.For(t, 10*time.Second, "events 1..3 stored", func() bool { return last() == 3 })
	// The terminal sends from 10 on, again and again (as it does on each
	// ack's hint), so that both bridges see it stall.
	wait.For(t, 30*time.Second, "both bridges reporting the stall", func() bool {
		send(10, 11, 12)
		n := 0
		for _, b := range bs {
			v, err := b.Gaps("mangwon1")
			if err == nil && len(v.Stalled) == 1 && v.Stalled[0].Lowest == 10 && v.Stalled[0].Last == 3 {
				n++
			}
		}
		return n == 2
	})
	wait.For(t, 30*time.Second, "the third bridge listing the stall the others shared", func() bool {
		v, err := far.Gaps("mangwon1")
		return err == nil && len(v.Stalled) == 1 && v.Stalled[0].Lowest == 10 && v.Stalled[0].Last == 3 && v.Stalled[0].Log == "L1"
	})
	if _, err := far.AcceptGap(api.GapRequest{Centre: "mangwon1", Device: "door", Through: 8, By: "op.kim"}); err == nil {
		t.Fatal("a gap accepted short of the stall's: no error")
	}
	g, err := far.AcceptGap(api.GapRequest{Centre: "mangwon1", Device: "door", Through: 9, By: "op.kim"})
	if err != nil || g.From != 4 || g.To != 9 {
		t.Fatalf("accept: %+v, %v", g, err)
	}
	wait.For(t, 30*time.Second, "the later events stored", func() bool {
		send(10, 11, 12)
		return last() == 12
	})
	wait.For(t, 30*time.Second, "no bridge stalled any more", func() bool {
		send(12) // a resend: each bridge it reaches sees the log move on
		for _, b := range append(bs, far) {
			if v, err := b.Gaps("mangwon1"); err != nil || len(v.Stalled) != 0 {
				return false
			}
		}
		return true
	})
	for i, b := range append(bs, far) {
		v, err := b.Gaps("mangwon1")
		if err != nil || len(v.Recorded) != 1 || v.Recorded[0].To != 9 || len(v.Stalled) != 0 {
			t.Errorf("bridge %d: gaps %+v, %v", i, v, err)
		}
	}
	var seqs []uint64
	db0.Events(context.Background(), "mangwon1", func(e protocol.Event) bool { seqs = append(seqs, e.Seq); return true })
	if fmt.Sprint(seqs) != "[1 2 3 10 11 12]" {
		t.Fatalf("stored %v", seqs)
	}
}
