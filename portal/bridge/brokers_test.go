package bridge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/pgtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/bridge"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

// Two bridges, each with a PostgreSQL pool of its own on one database
// (two hosts, as far as the database can tell), on two brokers: a
// terminal sends its outbox through the first broker, which stops half
// way; it fails over to the second and sends again what was not
// acknowledged. Every event is stored once and in order, each text goes
// once, and the roster is retained on both brokers.
func TestSeveralBrokersOnePostgres(t *testing.T) {
	mqA, mqB := startTestBroker(t), startTestBroker(t)
	dsn := pgtest.Shared(t).NewDatabase(t)
	dir := t.TempDir()
	writeTestSource(t, dir)
	texts := &countTexts{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bs []*bridge.Bridge
	var dbs []*pgstore.Store
	for i := range 2 {
		db, err := pgstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
		b, err := bridge.New(bridge.Options{Brokers: []string{mqA.URL(), mqB.URL()}, Password: portalPass, ClientID: fmt.Sprintf("host%d", i),
			Key: portalKey, DB: db, SourceDir: dir, Provider: texts, From: "0212345678"})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		wg.Add(1)
		go func() { defer wg.Done(); b.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	wait.For(t, 30*time.Second, "both bridges on both brokers", func() bool {
		for _, b := range bs {
			for _, l := range b.Status().Brokers {
				if !l.Connected {
					return false
				}
			}
		}
		return true
	})
	// The roster is retained on each broker.
	for _, mq := range []string{mqA.URL(), mqB.URL()} {
		got := make(chan struct{}, 1)
		c := publisher(t, mq)
		c.Subscribe(protocol.Topics{Centre: "mangwon1"}.Roster(), 1, func(mqtt.Client, mqtt.Message) {
			select {
			case got <- struct{}{}:
			default:
			}
		})
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("no roster retained on %s", mq)
		}
	}

	const n = 600
	tm := fillTerminalOn(t, filepath.Join(dir, "kiumtap.db"), []string{mqA.URL(), mqB.URL()}, n)
	wait.For(t, 60*time.Second, "a third of the events stored", func() bool {
		k := 0
		dbs[0].Events(context.Background(), "mangwon1", func(protocol.Event) bool { k++; return true })
		return k >= n/3
	})
	mqA.Stop()
	wait.For(t, 120*time.Second, "the terminal's outbox to empty through the second broker", func() bool { f, _, _ := tm.Waiting(); return f == 0 })
	o, _ := tm.Outbox()
	var got int
	var last uint64
	inOrder, want := true, 0
	err := dbs[1].Events(context.Background(), "mangwon1", func(e protocol.Event) bool {
		got++
		inOrder = inOrder && e.Seq == last+1
		last = e.Seq
		if firmware.Outcome(e.Outcome).Accepted() {
			want += guardiansTexted[e.Child]
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(got) != o.LastSeq || got < n || !inOrder {
		t.Fatalf("%d of %d events stored (in order: %v)", got, o.LastSeq, inOrder)
	}
	texts.once(t, want)
	var byBridge []int
	for _, b := range bs {
		byBridge = append(byBridge, b.Stats().Ingest.Stored)
	}
	t.Logf("%d events, %d texts; stored by bridge %v", got, want, byBridge)
}
