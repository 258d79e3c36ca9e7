// Package localapi answers staff's and operators' questions about a
// running terminal on a local unix socket: status, events, the roster. It
// reads the store; it never changes it. kiumctl is its client; the same
// queries run on a store file directly when kiumtapd is stopped.
//
// # The emulated reader
//
// With the emulated reader (reader.kind "emu") it also presents virtual
// cards to the reader for kiumctl emu (see Emulator): POST /emu/place,
// /emu/remove and /emu/tap put a card in the reader's field or take it out,
// and GET /emu/cards lists the cards it knows. They too never write the
// store: a card placed is decided, stored and shown by the tap loop exactly
// as a card on a real reader. With a real MFRC522 they answer 409 Conflict
// and say to put a card on the reader (ErrNotEmulated).
//
// # Stopping
//
// Serve stops when its context ends: requests in flight see their context
// end too, and Serve returns only once every handler has returned, so the
// caller may close the store then.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
	"kiumtap/internal/unixhttp"
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
	// Reader is the card reader's state; nil when the store was read
	// directly.
	Reader *Reader `json:"reader,omitempty"`
}

// Reader is the card reader's state.
type Reader struct {
	Up bool `json:"up"`
	// Since: answering since, or not answering since.
	Since time.Time `json:"since,omitzero"`
	// Error is why it does not answer, with what to check.
	Error string `json:"error,omitempty"`
	// Recoveries counts hard resets since kiumtapd started.
	Recoveries uint64 `json:"recoveries"`
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

// Options configure the local API's handler.
type Options struct {
	Store *store.Store
	// Now is the terminal's wall clock, for ages and "today"; default
	// time.Now.
	Now func() time.Time
	// Link, when not nil, adds the link to the portal to the status.
	Link func() uplink.Link
	// Reader, when not nil, adds the card reader's state to the status.
	Reader func() Reader
	// Emulator serves /emu/ when the reader is the emulated one; nil: a
	// real MFRC522, and /emu/ says so.
	Emulator *Emulator
}

// Handler serves /status, /events and /roster as JSON. link, when not nil,
// adds the link to the portal to the status. /emu/ answers that the reader
// is a real one: NewHandler with an Emulator serves it.
func Handler(st *store.Store, now func() time.Time, link func() uplink.Link) http.Handler {
	return NewHandler(Options{Store: st, Now: now, Link: link})
}

// NewHandler serves /status, /events and /roster as JSON, and the
// emulator's endpoints under /emu/.
func NewHandler(o Options) http.Handler {
	st, now, link := o.Store, o.Now, o.Link
	if now == nil {
		now = time.Now
	}
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
		if o.Reader != nil {
			rd := o.Reader()
			s.Reader = &rd
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
	emuRoutes(mux, o.Emulator)
	return mux
}

// EmuRequest asks the emulator to place, remove or tap a card.
type EmuRequest struct {
	// Card is a UID in hex, a label of reader.cards, or the name or ID of
	// a child or staff member; remove without one takes every card off.
	Card string `json:"card"`
	// Wait is how long to wait for the terminal; 0: 5 s.
	Wait Duration `json:"wait,omitzero"`
}

// Duration is a time.Duration written as "5s".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("wait: %q is not a duration such as 5s", b)
	}
	*d = Duration(v)
	return nil
}

func emuRoutes(mux *http.ServeMux, e *Emulator) {
	fail := func(w http.ResponseWriter, err error) {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotEmulated), errors.Is(err, ErrCardState):
			code = http.StatusConflict
		case errors.Is(err, ErrBadUID):
			code = http.StatusBadRequest
		case errors.Is(err, ErrUnknownCard):
			code = http.StatusNotFound
		case errors.Is(err, ErrNoFeedback):
			code = http.StatusGatewayTimeout
		case errors.Is(err, context.Canceled):
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
	}
	act := func(do func(*Emulator, context.Context, string, time.Duration) (EmuResult, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if e == nil {
				fail(w, ErrNotEmulated)
				return
			}
			var req EmuRequest
			raw, err := io.ReadAll(io.LimitReader(r.Body, 4097))
			if err == nil {
				err = strictjson.Decode(raw, 4096, "the request", &req)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			res, err := do(e, r.Context(), req.Card, time.Duration(req.Wait))
			if err != nil {
				fail(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(res)
		}
	}
	mux.HandleFunc("POST /emu/place", act((*Emulator).Place))
	mux.HandleFunc("POST /emu/remove", act((*Emulator).Remove))
	mux.HandleFunc("POST /emu/tap", act((*Emulator).Tap))
	mux.HandleFunc("GET /emu/cards", func(w http.ResponseWriter, r *http.Request) {
		if e == nil {
			fail(w, ErrNotEmulated)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(e.Cards())
	})
}

// Serve answers on a unix socket at path until ctx ends. A stale socket
// file is replaced; the socket is for the owner and the group (0660).
// Requests see their context end with ctx; Serve returns ctx's error once
// every request in flight has been answered (a handler that ignores its
// context delays it), or the error that stopped it.
func Serve(ctx context.Context, path string, h http.Handler) error {
	return ServeListening(ctx, path, h, nil)
}

// ServeListening is Serve, and closes listening (when not nil) once the
// socket takes connections.
func ServeListening(ctx context.Context, path string, h http.Handler, listening chan<- struct{}) error {
	l, err := unixhttp.Listen(path, unixhttp.Options{Mode: 0o660, DirMode: 0o755})
	if err != nil {
		var le *unixhttp.ListenError
		errors.As(err, &le)
		switch {
		case errors.Is(err, unixhttp.ErrInUse):
			return fmt.Errorf("localapi: %w: is another kiumtapd running?", err)
		case le != nil && le.Op == unixhttp.OpMkdir:
			return fmt.Errorf("localapi: %w (set socket in the configuration to a writable place)", err)
		case le != nil && le.Op == unixhttp.OpListen:
			return fmt.Errorf("localapi: %w (is the directory writable by kiumtapd? set socket in the configuration to move it)", err)
		}
		return fmt.Errorf("localapi: %w", err)
	}
	if listening != nil {
		close(listening)
	}
	err = unixhttp.Serve(ctx, l, h)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("localapi: serving on %s: %w", path, err)
}

// Client asks a running kiumtapd over its socket.
func Client(path string) *http.Client {
	c := unixhttp.Client(path)
	c.Timeout = 10 * time.Second
	return c
}
