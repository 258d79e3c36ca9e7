package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
	"kiumtap/internal/unixhttp"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/portal/registry"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/web"
	"kiumtap/protocol"
)

// The control socket: kiumctl's questions about cards and its enrol and
// revoke, and stalled event logs (gap.go), on a local unix socket
// (Options.Control). The API (endpoints, request and response types,
// errors and their statuses, the client) is package api's; this is its
// handler.
//
// The store is the running bridge's (bbolt locks it): kiumbridge status,
// texts and export ask here, so that reading it never means stopping the
// texts to parents.

// publishWait is how long a publish waits for the broker's
// acknowledgement.
const publishWait = 10 * time.Second

// published waits for a publish's acknowledgement: an error wrapping
// ErrBroker if it failed or did not come in publishWait.
func published(t mqtt.Token) error {
	if !t.WaitTimeout(publishWait) {
		return fmt.Errorf("%w: timed out after %v waiting for its acknowledgement (the broker is slow or unreachable)", api.ErrBroker, publishWait)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("%w: %w", api.ErrBroker, err)
	}
	return nil
}

// TerminalError is a terminal's refusal of a command: answered 409.
type TerminalError struct {
	Device, Message string
}

func (e *TerminalError) Error() string {
	return fmt.Sprintf("terminal %s refused: %s", e.Device, e.Message)
}

// Cards returns a centre's children and their cards, names masked.
func (b *Bridge) Cards(centre string) (*api.CardsView, error) {
	r := b.rosterOf(centre)
	if r == nil {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	v := &api.CardsView{Centre: centre, Name: r.Centre.Name, Children: []api.ChildCards{}}
	for _, c := range r.Children {
		cc := api.ChildCards{Child: c.ID, Name: firmware.MaskName(c.Name)}
		var latest *firmware.Card
		for i := range r.Cards {
			k := &r.Cards[i]
			if k.ChildID != c.ID {
				continue
			}
			cc.Cards = append(cc.Cards, *k)
			switch {
			case latest == nil, k.State == firmware.CardActive:
				latest = k
			case latest.State != firmware.CardActive && k.Since.After(latest.Since):
				latest = k
			}
		}
		if latest != nil {
			cc.Card, cc.State, cc.Since = latest.Key, latest.State, latest.Since
		}
		slices.SortFunc(cc.Cards, func(a, b firmware.Card) int { return b.Since.Compare(a.Since) })
		v.Children = append(v.Children, cc)
	}
	slices.SortFunc(v.Children, func(a, b api.ChildCards) int { return strings.Compare(a.Child, b.Child) })
	return v, nil
}

// ResendText sends a failed text again to a corrected number (FAQ Q22):
// the guardian's number is corrected in the centre's source first, so
// later texts go right too, then the text is queued again. It refuses a
// text of another centre, or one not failed or held
// (store.ErrNotRetriable).
func (b *Bridge) ResendText(ctx context.Context, centre, id, phone string) error {
	p, err := source.NormalizePhone(phone)
	if err != nil {
		return badRequest(err.Error())
	}
	var job *store.Job
	err = b.db.Jobs(ctx, true, func(j store.Job) bool {
		if j.ID == id {
			job = &j
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if job == nil || job.Centre != centre {
		return fmt.Errorf("%w: no text %s at %s", store.ErrNotRetriable, id, centre)
	}
	if job.State != store.JobFailed && job.State != store.JobHeld {
		return fmt.Errorf("%w: %s is %s", store.ErrNotRetriable, id, job.State)
	}
	if p != job.To {
		if err := b.bind.SetGuardianPhone(centre, job.Child, job.To, p); err != nil {
			return err
		}
	}
	if err := b.db.Retry(ctx, id, p, b.o.Now()); err != nil {
		return err
	}
	b.tx.Kick()
	return nil
}

// Revoke revokes a child's active card from the portal, by the Q18 rule
// (package binder); a refusal is a *firmware.Refused.
func (b *Bridge) Revoke(centre, child, by string) (api.Change, error) {
	return b.bind.Revoke(centre, child, by)
}

// History returns a centre's binding changes, of one child (all when
// child is empty), oldest first.
func (b *Bridge) History(centre, child string) ([]api.Change, error) {
	if b.rosterOf(centre) == nil {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	h, err := b.bind.History(context.Background(), centre, child)
	if h == nil {
		h = []api.Change{}
	}
	return h, err
}

// waiter is an enrol command waiting for its reply.
type waiter struct {
	topic string // the reply topic of the terminal it went to
	ch    chan protocol.Reply
}

// replyTopic is every terminal's reply topic.
const replyTopic = protocol.Prefix + "/c/+/d/+/reply"

// onReply hands a terminal's reply to the command waiting for it. The
// broker's ACL lets a terminal publish only on its own reply topic, so a
// reply counts only from the topic of the terminal the command went to.
func (b *Bridge) onReply(_ mqtt.Client, m mqtt.Message) {
	r, err := protocol.DecodeReply(m.Payload())
	if err != nil {
		b.log.Warn("bridge: a malformed command reply", "topic", m.Topic(), "err", err)
		return
	}
	b.mu.Lock()
	w, ok := b.waiters[r.ID]
	b.mu.Unlock()
	if !ok || w.topic != m.Topic() {
		return // not ours, or a reply again (duplicate delivery)
	}
	select {
	case w.ch <- *r:
	default:
	}
}

// Enrol asks a centre's terminal to bind the next card presented to a
// child (a signed enrol command, valid 5 minutes) and waits for its answer
// up to Options.CommandWait. The terminal is device, or the centre's only
// terminal the bridge has seen (its events or its status). The binding itself comes back
// later as the terminal's card_bound event.
func (b *Bridge) Enrol(ctx context.Context, req api.EnrolRequest) (*api.EnrolResult, error) {
	r := b.rosterOf(req.Centre)
	if r == nil {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, req.Centre)
	}
	c := r.ChildByID(req.Child)
	if c == nil {
		return nil, &firmware.Refused{Reason: firmware.RefuseUnknownChild, Detail: fmt.Sprintf("no child %q in the roster of %s", req.Child, req.Centre)}
	}
	if req.By == "" || len(req.By) > 64 {
		return nil, errors.New("who enrols (by) is required, 1 to 64 bytes: it goes into the audit")
	}
	devices, err := b.devices(req.Centre)
	if err != nil {
		return nil, err
	}
	device := req.Device
	switch {
	case device != "" && !slices.Contains(devices, device):
		return nil, fmt.Errorf("%w %s: never seen at %s, neither its events nor its status (terminals seen there: %s)", api.ErrDevice, device, req.Centre, list(devices))
	case device == "" && len(devices) == 1:
		device = devices[0]
	case device == "" && len(devices) == 0:
		return nil, fmt.Errorf("%w: no terminal of %s has connected yet (kiumctl terminals lists those that have)", api.ErrDevice, req.Centre)
	case device == "":
		return nil, fmt.Errorf("%w: %s has several terminals (%s); name one with -device", api.ErrDevice, req.Centre, list(devices))
	}
	if b.client() == nil {
		return nil, api.ErrNotConnected
	}
	now := b.o.Now().UTC()
	var nonce [4]byte
	rand.Read(nonce[:])
	args, _ := json.Marshal(protocol.EnrolArgs{Child: req.Child, By: req.By})
	cmd := protocol.Command{V: protocol.Version, ID: fmt.Sprintf("enrol-%s-%s", now.Format("20060102T150405"), hex.EncodeToString(nonce[:])),
		Centre: req.Centre, Device: device, Name: protocol.CmdEnrol, Expires: now.Add(5 * time.Minute), Args: args}
	payload, _ := json.Marshal(cmd)
	topics := protocol.Topics{Centre: req.Centre, Device: device}
	w := waiter{topic: topics.Reply(), ch: make(chan protocol.Reply, 1)}
	b.mu.Lock()
	b.waiters[cmd.ID] = w
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiters, cmd.ID)
		b.mu.Unlock()
	}()
	// On every broker: the terminal is on one of them. A command ID runs
	// once, so one that reaches it twice is answered once.
	if err := b.publishAll(topics.Cmd(), 1, false, protocol.Sign(b.o.Key, payload)); err != nil {
		return nil, fmt.Errorf("publishing the enrol command to %s: %w", device, err)
	}
	b.log.Info("bridge: enrol command sent", "centre", req.Centre, "device", device, "child", req.Child, "by", req.By, "id", cmd.ID)
	timer := time.NewTimer(b.o.CommandWait)
	defer timer.Stop()
	var rep protocol.Reply
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("terminal %s %w in %v (offline?); the command expires at %s", device, api.ErrNoAnswer, b.o.CommandWait, registry.KST(cmd.Expires))
	case rep = <-w.ch:
	}
	if !rep.OK {
		return nil, &TerminalError{Device: device, Message: rep.Error}
	}
	res := &api.EnrolResult{Centre: req.Centre, Device: device, Child: req.Child, Name: firmware.MaskName(c.Name), Command: cmd.ID}
	var body struct {
		Screen []string `json:"screen"`
	}
	json.Unmarshal(rep.Result, &body)
	res.Screen = body.Screen
	return res, nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// ControlHandler serves the control socket's endpoints.
func (b *Bridge) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cards", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.Cards(r.URL.Query().Get("centre"))
		answer(w, v, err)
	})
	mux.HandleFunc("GET /history", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		h, err := b.History(q.Get("centre"), q.Get("child"))
		answer(w, h, err)
	})
	mux.HandleFunc("POST /enrol", func(w http.ResponseWriter, r *http.Request) {
		var req api.EnrolRequest
		if err := readJSON(r, &req); err != nil {
			answer(w, nil, err)
			return
		}
		res, err := b.Enrol(r.Context(), req)
		answer(w, res, err)
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		var req api.RevokeRequest
		if err := readJSON(r, &req); err != nil {
			answer(w, nil, err)
			return
		}
		if req.By == "" {
			answer(w, nil, badRequest("who revokes (by) is required: it goes into the audit"))
			return
		}
		c, err := b.Revoke(req.Centre, req.Child, req.By)
		answer(w, c, err)
	})
	mux.HandleFunc("GET /alerts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		v, err := b.Alerts(r.Context(), q.Get("centre"), q.Get("day"))
		answer(w, v, err)
	})
	mux.HandleFunc("POST /absent", func(w http.ResponseWriter, r *http.Request) {
		var req api.AbsentRequest
		if err := readJSON(r, &req); err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, struct{}{}, b.MarkAbsent(r.Context(), req))
	})
	mux.HandleFunc("GET /terminals", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.Terminals(r.URL.Query().Get("centre"))
		answer(w, v, err)
	})
	mux.HandleFunc("GET /gaps", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.Gaps(r.URL.Query().Get("centre"))
		answer(w, v, err)
	})
	mux.HandleFunc("POST /gap", func(w http.ResponseWriter, r *http.Request) {
		var req api.GapRequest
		if err := readJSON(r, &req); err != nil {
			answer(w, nil, err)
			return
		}
		g, err := b.AcceptGap(req)
		answer(w, g, err)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		answer(w, b.Status(), nil)
	})
	mux.HandleFunc("GET /texts", func(w http.ResponseWriter, r *http.Request) {
		v, err := Texts(b.db, r.URL.Query().Get("state"))
		answer(w, v, err)
	})
	// Staff accounts of the staff page (package web), for kiumbridge user.
	acc := &web.Accounts{Reg: b.db, Now: b.o.Now}
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		us, err := acc.Users(r.Context())
		v := []api.UserView{}
		for _, u := range us {
			v = append(v, api.UserView{Name: u.Name, Centres: u.Centres, Disabled: u.Disabled, Locked: u.Locked, Created: u.Created})
		}
		answer(w, v, err)
	})
	for path, do := range map[string]func(context.Context, api.UserRequest) error{
		"POST /users": func(ctx context.Context, q api.UserRequest) error {
			return acc.Add(ctx, q.Name, q.Password, q.Centres, q.By)
		},
		"POST /users/passwd": func(ctx context.Context, q api.UserRequest) error {
			return acc.SetPassword(ctx, q.Name, q.Password, q.By)
		},
		"POST /users/disable": func(ctx context.Context, q api.UserRequest) error { return acc.Disable(ctx, q.Name, q.By) },
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			var req api.UserRequest
			if err := readJSON(r, &req); err != nil {
				answer(w, nil, err)
				return
			}
			if req.By == "" {
				answer(w, nil, badRequest("who asks (by) is required: it goes into the audit"))
				return
			}
			err := do(r.Context(), req)
			var inv *web.Invalid
			if errors.As(err, &inv) {
				err = badRequest(inv.Msg)
			}
			answer(w, struct{}{}, err)
		})
	}
	mux.HandleFunc("GET /export", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		v, err := b.Export(q.Get("centre"), q.Get("month"))
		answer(w, v, err)
	})
	return mux
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

// maxRequest bounds a control request's body.
const maxRequest = 64 << 10

func readJSON(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		return badRequest("request: " + err.Error())
	}
	if err := strictjson.Decode(raw, maxRequest, "request", v); err != nil {
		return badRequest(err.Error())
	}
	return nil
}

func answer(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status, body := http.StatusInternalServerError, api.ControlError{Error: err.Error()}
		var ref *firmware.Refused
		var te *TerminalError
		var br badRequest
		switch {
		case errors.As(err, &ref):
			status, body.Reason, body.Detail = http.StatusConflict, ref.Reason, ref.Detail
		case errors.As(err, &te):
			status = http.StatusConflict
		case errors.As(err, &br), errors.Is(err, api.ErrDevice):
			status = http.StatusBadRequest
		case errors.Is(err, api.ErrUnknownCentre):
			status = http.StatusNotFound
		case errors.Is(err, api.ErrNotConnected), errors.Is(err, api.ErrBroker):
			status = http.StatusServiceUnavailable
		case errors.Is(err, api.ErrNoAnswer):
			status = http.StatusGatewayTimeout
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
		return
	}
	json.NewEncoder(w).Encode(v)
}

// listenControl listens on the control socket, mode 0600 (its directory,
// when made, 0700). A stale socket file is replaced; one another process
// answers on is an error.
func listenControl(path string) (net.Listener, error) {
	l, err := unixhttp.Listen(path, unixhttp.Options{Mode: 0o600, DirMode: 0o700})
	switch {
	case errors.Is(err, unixhttp.ErrInUse):
		return nil, fmt.Errorf("control socket %w: is another kiumbridge running?", err)
	case err != nil:
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// serveControl answers on l until ctx ends, and returns once every
// request in flight has been answered.
func (b *Bridge) serveControl(ctx context.Context, l net.Listener) {
	if err := unixhttp.Serve(ctx, l, b.ControlHandler()); ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		b.log.Error("bridge: control socket", "err", err)
	}
}

// Texts reads the text queue of st: the texts in state (all when empty)
// and the counts of all. A text a texter of this process is handing to
// its provider now is "sending" (on disk it is pending until its outcome
// is recorded).
func Texts(q store.TextQueue, state string) (*api.TextsView, error) {
	if state != "" && !slices.Contains(api.JobStates, state) {
		return nil, badRequest(fmt.Sprintf("state %q: want one of %s", state, strings.Join(api.JobStates, ", ")))
	}
	v := &api.TextsView{Counts: map[string]int{}, Texts: []store.Job{}, Months: map[string]map[string]int{}}
	err := q.Jobs(context.Background(), true, func(j store.Job) bool {
		v.Counts[j.State]++
		if j.State == store.JobSent {
			month := j.SentAt.In(firmware.KST).Format("2006-01")
			if v.Months[month] == nil {
				v.Months[month] = map[string]int{}
			}
			ch := j.Channel
			if ch == "" {
				ch = "unrecorded"
			}
			v.Months[month][ch]++
			if j.Fallback != "" && ch != sms.ChannelAlimTalk {
				v.Months[month]["fallback"]++
			}
		}
		if state == "" || j.State == state {
			v.Texts = append(v.Texts, j)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("reading the text queue: %w", err)
	}
	return v, nil
}

// noSuchCentre is an export's unknown centre; it is ErrUnknownCentre.
type noSuchCentre struct {
	centre string
	known  []string
}

func (e *noSuchCentre) Error() string {
	return fmt.Sprintf("no such centre: %s (centres: %s)", e.centre, list(e.known))
}

func (e *noSuchCentre) Is(target error) bool { return target == api.ErrUnknownCentre }

// Export is a centre's month ("2026-11") from the running bridge. A
// centre is known by its roster source or by events stored.
func (b *Bridge) Export(centre, month string) (*api.ExportView, error) {
	names := map[string]string{}
	if r := b.rosterOf(centre); r != nil {
		for _, c := range r.Children {
			names[c.ID] = c.Name
		}
	}
	return export(b.db, b.centres(), names, centre, month)
}

// ExportStore is Export from a store read directly (a bbolt store no
// bridge runs on, opened read-only and given as its Contract, or
// PostgreSQL) and the roster sources srcs.
func ExportStore(st store.Events, srcs source.Sources, centre, month string) (*api.ExportView, error) {
	all, err := srcs.Changed(context.Background())
	if err != nil {
		return nil, fmt.Errorf("the roster sources, for the centres and the children's names: %w", err)
	}
	var known []string
	names := map[string]string{}
	for _, src := range all {
		known = append(known, src.Roster.Centre.ID)
		if src.Roster.Centre.ID == centre {
			for _, c := range src.Roster.Children {
				names[c.ID] = c.Name
			}
		}
	}
	return export(st, known, names, centre, month)
}

func export(st store.Events, known []string, names map[string]string, centre, month string) (*api.ExportView, error) {
	if centre == "" {
		return nil, badRequest("the centre is required")
	}
	if _, err := time.Parse("2006-01", month); err != nil {
		return nil, badRequest(fmt.Sprintf("month %q: want YYYY-MM, e.g. 2026-11", month))
	}
	ctx := context.Background()
	stored, err := st.Centres(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the centres of the events stored: %w", err)
	}
	for _, c := range stored {
		if !slices.Contains(known, c) {
			known = append(known, c)
		}
	}
	slices.Sort(known)
	if !slices.Contains(known, centre) {
		return nil, &noSuchCentre{centre: centre, known: known}
	}
	var evs []protocol.Event
	err = st.Events(ctx, centre, func(e protocol.Event) bool {
		if firmware.DateOf(e.Time).String()[:7] == month {
			evs = append(evs, e)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("reading the events of %s: %w", centre, err)
	}
	sessions := attendance.Sessions(evs)
	sessions, occ, err := attendance.Month(month, sessions, attendance.Occupancies(sessions))
	if err != nil {
		return nil, err
	}
	return &api.ExportView{Centre: centre, Month: month, Sessions: sessions, Occupancy: occ, Names: names}, nil
}
