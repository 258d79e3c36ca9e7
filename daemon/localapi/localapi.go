// Package localapi answers staff's and operators' questions about a
// running terminal on a local unix socket: status, events, the roster. It
// reads the store; it never changes it. kiumctl is its client; the same
// queries run on a store file directly when kiumtapd is stopped.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
)

// Status is the terminal at a glance.
type Status struct {
	Device         string     `json:"device"`
	Boots          uint64     `json:"boots"`
	RosterRevision uint64     `json:"roster_revision"`
	RosterReceived time.Time  `json:"roster_received,omitzero"`
	RosterAge      string     `json:"roster_age,omitempty"`
	Children       int        `json:"children"`
	Inside         []Presence `json:"inside"`
	OutboxDepth    int        `json:"outbox_depth"`
	OutboxOldest   time.Time  `json:"outbox_oldest,omitzero"`
	LastSeq        uint64     `json:"last_seq"`
	// Link is the link to the portal; nil without one (no broker
	// configured, or the store read directly).
	Link *uplink.Link `json:"link,omitempty"`
}

// Presence is a child inside the centre.
type Presence struct {
	Child string    `json:"child"`
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// StatusOf reads the status from a store.
func StatusOf(st *store.Store, now time.Time) (Status, error) {
	s := Status{Device: st.DeviceID(), Boots: st.Boots()}
	r, received, err := st.Roster()
	if err != nil && !errors.Is(err, store.ErrNoRoster) {
		return s, err
	}
	if r != nil {
		s.RosterRevision, s.RosterReceived, s.Children = r.Revision, received, len(r.Children)
		s.RosterAge = now.Sub(received).Round(time.Second).String()
	}
	pres, err := st.Presence()
	if err != nil {
		return s, err
	}
	today := firmware.DateOf(now)
	for id, p := range pres {
		if p.Inside && p.Day == today {
			name := ""
			if r != nil && r.ChildByID(id) != nil {
				name = r.ChildByID(id).Name
			}
			s.Inside = append(s.Inside, Presence{Child: id, Name: name, Since: p.Since})
		}
	}
	slices.SortFunc(s.Inside, func(a, b Presence) int { return a.Since.Compare(b.Since) })
	o, err := st.Outbox()
	if err != nil {
		return s, err
	}
	s.OutboxDepth, s.OutboxOldest, s.LastSeq = o.Depth, o.Oldest, o.LastSeq
	return s, nil
}

// Filter selects events.
type Filter struct {
	Day     firmware.Date    // zero: every day
	Outcome firmware.Outcome // empty: every outcome
	Child   string           // empty: every child
	Limit   int              // 0: 1000
}

// Event is an event as staff read it.
type Event struct {
	ID      string           `json:"id"`
	Seq     uint64           `json:"seq"`
	Time    time.Time        `json:"time"`
	Synced  bool             `json:"clock_synced"`
	Outcome firmware.Outcome `json:"outcome"`
	Reason  firmware.Reason  `json:"reason"`
	Flags   []firmware.Flag  `json:"flags,omitempty"`
	Child   string           `json:"child,omitempty"`
	Name    string           `json:"name,omitempty"`
	Card    string           `json:"card,omitempty"`
}

// EventsOf returns the newest events that pass the filter, oldest first.
func EventsOf(st *store.Store, f Filter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	r, _, _ := st.Roster()
	var out []Event
	err := st.Events(0, func(ev store.Event) bool {
		if (!f.Day.IsZero() && firmware.DateOf(ev.Time) != f.Day) || (f.Outcome != "" && ev.Outcome != f.Outcome) || (f.Child != "" && ev.ChildID != f.Child) {
			return true
		}
		e := Event{ID: ev.ID(st.DeviceID()), Seq: ev.Seq, Time: ev.Time.In(firmware.KST), Synced: ev.ClockSynced,
			Outcome: ev.Outcome, Reason: ev.Reason, Flags: ev.Flags, Child: ev.ChildID, Card: ev.CardKey}
		if r != nil && r.ChildByID(ev.ChildID) != nil {
			e.Name = r.ChildByID(ev.ChildID).Name
		}
		out = append(out, e)
		if len(out) > f.Limit {
			out = out[1:]
		}
		return true
	})
	return out, err
}

// ParseFilter reads a filter from query parameters (day, outcome, child,
// limit); errors name the parameter.
func ParseFilter(day, outcome, child, limit string) (Filter, error) {
	var f Filter
	var err error
	if day != "" {
		if f.Day, err = firmware.ParseDate(day); err != nil {
			return f, fmt.Errorf("day: %w", err)
		}
	}
	switch o := firmware.Outcome(outcome); o {
	case "", firmware.CheckIn, firmware.CheckOut, firmware.Duplicate, firmware.NoData, firmware.NotInUse, firmware.UnknownCard, firmware.ReplacedCard, firmware.AutoCheckOut:
		f.Outcome = o
	default:
		return f, fmt.Errorf("outcome: %q is not one of check_in, check_out, duplicate, no_data, not_in_use, unknown_card, replaced_card, auto_check_out", outcome)
	}
	f.Child = child
	if limit != "" {
		if f.Limit, err = strconv.Atoi(limit); err != nil || f.Limit < 1 {
			return f, fmt.Errorf("limit: %q is not a positive number", limit)
		}
	}
	return f, nil
}

// Handler serves /status, /events and /roster as JSON. link, when not nil,
// adds the link to the portal to the status.
func Handler(st *store.Store, now func() time.Time, link func() uplink.Link) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s, err := StatusOf(st, now())
		if link != nil {
			l := link()
			s.Link = &l
		}
		reply(w, s, err)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, err := ParseFilter(q.Get("day"), q.Get("outcome"), q.Get("child"), q.Get("limit"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs, err := EventsOf(st, f)
		reply(w, evs, err)
	})
	mux.HandleFunc("GET /roster", func(w http.ResponseWriter, r *http.Request) {
		ro, _, err := st.Roster()
		reply(w, ro, err)
	})
	return mux
}

// Serve answers on a unix socket at path until ctx ends. A stale socket
// file is replaced; the socket is for the owner and the group (0660).
func Serve(ctx context.Context, path string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("localapi: %s is answered by another process: is another kiumtapd running?", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("localapi: listening on %s: %w", path, err)
	}
	os.Chmod(path, 0o660)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err = srv.Serve(l)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return ctx.Err()
	}
	return err
}

// Client asks a running kiumtapd over its socket.
func Client(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}
