package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/portal/api"
	"kiumtap/protocol"
)

// Terminals: every terminal keeps its status retained on its status topic
// (its last will says offline). The bridge listens to all of them, so an
// operator sees each terminal's health (kiumctl terminals) and the portal
// can send a command to a terminal that has not sent an event yet.

// statusTopic is every terminal's status.
var statusTopic = protocol.Prefix + "/c/+/d/+/status"

// idWatch is a device's online instances, in the order they came, within
// ClashWindow.
type idWatch struct {
	seen []instanceAt
}

type instanceAt struct {
	instance string
	at       time.Time
}

// online notes an online status from instance at now and returns the clash
// it shows, if any: an instance that was online before another, online
// again.
func (w *idWatch) online(instance string, now time.Time) *api.Clash {
	if n := len(w.seen); n == 0 || w.seen[n-1].instance != instance {
		w.seen = append(w.seen, instanceAt{instance, now})
	}
	for len(w.seen) > 1 && now.Sub(w.seen[1].at) > api.ClashWindow {
		w.seen = w.seen[1:]
	}
	var insts []string
	back := false
	for _, s := range w.seen {
		if slices.Contains(insts, s.instance) {
			back = true
		} else {
			insts = append(insts, s.instance)
		}
	}
	if !back {
		return nil
	}
	slices.Sort(insts)
	return &api.Clash{Instances: insts, Since: w.seen[0].at, Switches: len(w.seen) - 1}
}

// onStatus keeps a terminal's status. A malformed one is logged and kept
// out; an empty retained message (a terminal retired) removes it.
func (b *Bridge) onStatus(broker string, m mqtt.Message) {
	centre, device, leaf, ok := protocol.ParseDeviceTopic(m.Topic())
	if !ok || leaf != "status" {
		return
	}
	k := centre + "/" + device
	if len(m.Payload()) == 0 {
		b.mu.Lock()
		delete(b.terminals, k)
		delete(b.said, k)
		b.mu.Unlock()
		return
	}
	st, err := protocol.DecodeStatus(m.Payload())
	if err != nil {
		b.log.Warn("bridge: a malformed terminal status", "topic", m.Topic(), "err", err)
		return
	}
	now := b.o.Now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	view := api.TerminalView{Centre: centre, Device: device, Status: st, Received: now}
	words := b.said[k]
	if words == nil {
		words = map[string]*protocol.Status{}
		b.said[k] = words
	}
	words[broker] = st
	var others []*protocol.Status
	for u, o := range words {
		if u != broker {
			others = append(others, o)
		}
	}
	if !newest(st, others) {
		return // another broker has newer word of the terminal: it is there
	}
	if prev, ok := b.terminals[k]; ok {
		view.Clash = prev.Clash
	}
	if st.State == "online" && st.Instance != "" {
		w := b.ids[k]
		if w == nil {
			w = &idWatch{}
			b.ids[k] = w
		}
		clash := w.online(st.Instance, now)
		if clash != nil && view.Clash == nil {
			b.log.Error("bridge: two terminals use one device ID (a cloned SD card or certificate?); give each its own device ID and certificate", "centre", centre, "device", device, "instances", clash.Instances)
		}
		view.Clash = clash
	}
	b.terminals[k] = view
}

// Terminals returns the statuses of a centre's terminals, by device, with
// the refusals of their events. A terminal whose events are refused is
// listed even before its first status.
func (b *Bridge) Terminals(centre string) ([]api.TerminalView, error) {
	if !b.serves(centre) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	refused := map[string]*protocol.Refusal{}
	for _, r := range b.in.Refusals() {
		if r.Centre == centre {
			refused[r.Device] = &protocol.Refusal{Seq: r.Seq, Reason: r.Reason, Since: r.Since, Count: r.Count}
		}
	}
	b.mu.Lock()
	out := []api.TerminalView{}
	for _, t := range b.terminals {
		if t.Centre == centre {
			t.Refused = refused[t.Device]
			delete(refused, t.Device)
			out = append(out, t)
		}
	}
	b.mu.Unlock()
	for device, r := range refused {
		out = append(out, api.TerminalView{Centre: centre, Device: device, Refused: r})
	}
	slices.SortFunc(out, func(a, b api.TerminalView) int { return strings.Compare(a.Device, b.Device) })
	return out, nil
}

// TerminalCount is how many terminals the bridge holds a status of (each
// terminal's retained status; a retired terminal's is removed), of every
// centre, and how many of them say they are online.
func (b *Bridge) TerminalCount() (known, online int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.terminals {
		known++
		if t.Status != nil && t.Status.State == "online" {
			online++
		}
	}
	return known, online
}

// devices are a centre's terminals: those the bridge has events from, and
// those whose status it has seen.
func (b *Bridge) devices(centre string) ([]string, error) {
	ds, err := b.db.Devices(context.Background(), centre)
	if err != nil {
		return nil, err
	}
	ts, _ := b.Terminals(centre)
	for _, t := range ts {
		if !slices.Contains(ds, t.Device) {
			ds = append(ds, t.Device)
		}
	}
	slices.Sort(ds)
	return ds, nil
}

// newest reports whether st, just come from one broker, is newer than
// every other broker's last word on the terminal (others): with several
// brokers, each keeps the last status it delivered of a terminal (a will
// when it lost it, or a retained online), and the terminal's status is
// the one with the newest time (docs/protocol.md, "Several brokers").
// Times compare within one start of the terminal, or between two whose
// clocks are set; else the status received last wins.
func newest(st *protocol.Status, others []*protocol.Status) bool {
	for _, o := range others {
		if o == nil || o.Time.IsZero() || st.Time.IsZero() {
			continue
		}
		if o.Instance != st.Instance && (!o.ClockSynced || !st.ClockSynced) {
			continue
		}
		if st.Time.Before(o.Time) {
			return false
		}
	}
	return true
}
