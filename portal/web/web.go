// Package web is the staff page kiumbridge serves (issue 15): a centre's
// day at its door (오늘), live, in Korean, server-rendered with
// html/template and one small script, for the office PC, a tablet and a
// phone. It owns the staff accounts (argon2id passwords, a lock after
// repeated failures), their sessions (HttpOnly, SameSite=Strict cookies,
// Secure behind TLS; a CSRF token on every change) and the audit of who
// did what, all kept in the store's registry, so any instance answers.
//
// A user sees only the centres of its account: a URL of any other
// centre, known or not, is the same 404.
package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"kiumtap/portal/api"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
)

//go:embed templates/*.html static/*
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"cardtableOf": func(centre string, p *cardsPage, csrf string) any {
		return struct {
			Centre string
			Cards  *cardsPage
			CSRF   string
		}{centre, p, csrf}
	},
}).ParseFS(files, "templates/*.html"))

// Cookie is the session cookie's name.
const Cookie = "kiumtap_session"

// Options configure the staff page. Zero values take the documented
// defaults.
type Options struct {
	// Accounts keeps users, sessions and the audit. Required.
	Accounts *Accounts
	// Events are the terminals' events (the board reads today's).
	// Required.
	Events store.Events
	// Source is a centre's roster source as the bridge has it now, nil
	// for a centre it does not serve. Required.
	Source func(centre string) *source.Source
	// Terminals are a centre's terminals as the bridge last heard of
	// them (단말기); nil: the page is not offered.
	Terminals func(centre string) ([]api.TerminalView, error)
	// Export is a centre's month, as kiumbridge export has it (통계);
	// nil: the page is not offered.
	Export func(centre, month string) (*api.ExportView, error)
	// Cards, History, Revoke and Enrol are the bridge's (아동·카드): a
	// centre's children and cards, its binding changes, a revoke by the
	// Q18 rule (a refusal is a *firmware.Refused), an enrolment started on
	// a terminal. Nil Cards: the page is not offered.
	Cards   func(centre string) (*api.CardsView, error)
	History func(centre, child string) ([]api.Change, error)
	Revoke  func(centre, child, by string) (api.Change, error)
	Enrol   func(ctx context.Context, req api.EnrolRequest) (*api.EnrolResult, error)
	// Texts are the parents' texts (문자), and Resend sends a failed one
	// again to a corrected number (the guardian's number corrected in the
	// source; store.ErrNotRetriable for a text not failed or held). Nil
	// Texts: the page is not offered.
	Texts  store.TextQueue
	Resend func(ctx context.Context, centre, id, phone string) error
	// Alerts are a centre's not-arrived alerts and absences of today
	// (package absence), shown on 오늘; MarkAbsent marks a child absent
	// (결석) for today, or takes it back. Nil: not shown, not offered.
	Alerts     func(ctx context.Context, centre string) (*api.AlertsView, error)
	MarkAbsent func(ctx context.Context, req api.AbsentRequest) error
	// Secure marks cookies Secure: the page is served over TLS, directly
	// or behind a TLS proxy. Default false (plain HTTP on loopback).
	Secure bool
	// Every is how often a live board looks for changes besides being
	// told (Notify): events stored by other instances; default 1 s.
	Every  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Server is the staff page.
type Server struct {
	o   Options
	mux *http.ServeMux

	mu      sync.Mutex
	changed chan struct{}               // closed and replaced by Notify
	days    map[string]*store.DayEvents // by centre
	routes  []string                    // the patterns served, for the tests' sweep
}

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// boardOf reads a centre's board now.
func (s *Server) boardOf(ctx context.Context, centre string) (*Board, error) {
	s.mu.Lock()
	d := s.days[centre]
	if d == nil {
		d = &store.DayEvents{}
		s.days[centre] = d
	}
	s.mu.Unlock()
	now := s.o.Now()
	evs, err := d.Read(ctx, s.o.Events, centre, dayStart(now))
	if err != nil {
		return nil, err
	}
	var alerts *api.AlertsView
	if s.o.Alerts != nil {
		if alerts, err = s.o.Alerts(ctx, centre); err != nil {
			return nil, err
		}
	}
	b, err := board(ctx, evs, s.o.Texts, alerts, s.o.Source(centre), centre, now)
	if err != nil {
		return nil, err
	}
	b.Marking = s.o.MarkAbsent != nil
	if csrf, ok := ctx.Value(csrfKey).(string); ok {
		b.CSRF = csrf
	}
	return b, nil
}

// addressOf is the client's address: behind a TLS proxy (Secure), the
// proxy's X-Forwarded-For's last hop, else the connection's.
func (s *Server) addressOf(r *http.Request) string {
	if s.o.Secure {
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			parts := strings.Split(f, ",")
			return strings.TrimSpace(parts[len(parts)-1])
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// New checks the options.
func New(o Options) (*Server, error) {
	if o.Accounts == nil || o.Events == nil || o.Source == nil {
		return nil, errors.New("web: Accounts, Events and Source are required")
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, mux: http.NewServeMux(), changed: make(chan struct{}), days: map[string]*store.DayEvents{}}
	s.handle("GET /static/", http.FileServerFS(files).ServeHTTP)
	s.handle("GET /login", s.loginPage)
	s.handle("POST /login", s.login)
	s.handle("POST /logout", s.authed(s.logout))
	s.handle("GET /{$}", s.authed(s.home))
	s.handle("GET /c/{centre}/today", s.authed(s.centre(s.today)))
	s.handle("GET /c/{centre}/today/live", s.authed(s.centre(s.live)))
	if o.MarkAbsent != nil {
		s.handle("POST /c/{centre}/absent", s.authed(s.centre(s.absent)))
	}
	if o.Cards != nil {
		if o.History == nil || o.Revoke == nil || o.Enrol == nil {
			return nil, errors.New("web: Cards needs History, Revoke and Enrol")
		}
		s.handle("GET /c/{centre}/cards", s.authed(s.centre(s.cards)))
		s.handle("GET /c/{centre}/cards/live", s.authed(s.centre(s.cardsLive)))
		s.handle("POST /c/{centre}/cards/revoke", s.authed(s.centre(s.revoke)))
		s.handle("POST /c/{centre}/cards/enrol", s.authed(s.centre(s.enrol)))
	}
	if o.Texts != nil {
		if o.Resend == nil {
			return nil, errors.New("web: Texts needs Resend")
		}
		s.handle("GET /c/{centre}/texts", s.authed(s.centre(s.texts)))
		s.handle("POST /c/{centre}/texts/resend", s.authed(s.centre(s.resend)))
	}
	if o.Export != nil {
		s.handle("GET /c/{centre}/stats", s.authed(s.centre(s.stats)))
		s.handle("GET /c/{centre}/stats/{kind}", s.authed(s.centre(s.download)))
	}
	if o.Terminals != nil {
		s.handle("GET /c/{centre}/terminals", s.authed(s.centre(s.terminals)))
	}
	return s, nil
}

// Notify tells live boards that events were stored: they look now.
func (s *Server) Notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) notified() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// ServeHTTP serves the page, with headers that keep it in its own frame
// and its own scripts.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "다른 사이트에서 온 요청은 받지 않습니다", http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// sameOrigin: a browser's POST says where it comes from (Sec-Fetch-Site,
// or Origin); one from another site is refused. A client that says
// neither (not a browser) is left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

type ctxKey int

const (
	userKey ctxKey = iota
	csrfKey
	sessionTokenKey
)

// authed serves h to a live session's user; others go to the login page
// (a page) or get 401 (a live stream).
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie(Cookie)
		var token string
		if c != nil {
			token = c.Value
		}
		u, csrf, err := s.o.Accounts.Session(r.Context(), token)
		if err != nil {
			s.o.Logger.Error("web: reading a session", "err", err)
			http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
			return
		}
		if u == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "로그인하세요", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(csrf)) != 1 {
				http.Error(w, "요청이 만료되었습니다. 페이지를 새로 고친 뒤 다시 하세요", http.StatusForbidden)
				return
			}
		}
		ctx := context.WithValue(r.Context(), userKey, u)
		ctx = context.WithValue(ctx, csrfKey, csrf)
		ctx = context.WithValue(ctx, sessionTokenKey, token)
		h(w, r.WithContext(ctx))
	}
}

func userOf(r *http.Request) *User { return r.Context().Value(userKey).(*User) }

// centre serves h for a centre the user sees and the bridge serves;
// anything else is the same 404, so a URL tells nothing of other
// centres.
func (s *Server) centre(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := r.PathValue("centre")
		if !userOf(r).Sees(c) || s.o.Source(c) == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}
}

type view struct {
	User      *User
	CSRF      string
	Error     string
	Centres   []centreLink
	Centre    string // the centre of the page, "" for none
	Board     *Board
	Terminals []terminalRow
	Stats     *stats
	Cards     *cardsPage
	Texts     []textRow
	Channels  *monthChannels
	Message   string
	Bad       bool
}

type centreLink struct{ ID, Name string }

func (s *Server) render(w http.ResponseWriter, name string, v view, code int) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, v); err != nil {
		s.o.Logger.Error("web: rendering", "page", name, "err", err)
		http.Error(w, "페이지를 만들지 못했습니다", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login.html", view{}, http.StatusOK)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "잘못된 요청입니다", http.StatusBadRequest)
		return
	}
	token, _, err := s.o.Accounts.Login(r.Context(), r.PostFormValue("user"), r.PostFormValue("password"), s.addressOf(r))
	switch {
	case errors.Is(err, ErrTooMany):
		s.render(w, "login.html", view{Error: err.Error()}, http.StatusTooManyRequests)
		return
	case errors.Is(err, ErrLogin), errors.Is(err, ErrLocked):
		s.render(w, "login.html", view{Error: err.Error()}, http.StatusUnauthorized)
		return
	case err != nil:
		s.o.Logger.Error("web: a login", "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: token, Path: "/", HttpOnly: true, Secure: s.o.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionFor.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.o.Accounts.Logout(r.Context(), r.Context().Value(sessionTokenKey).(string)); err != nil {
		s.o.Logger.Error("web: a logout", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: "", Path: "/", HttpOnly: true, Secure: s.o.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) view(r *http.Request) view {
	u := userOf(r)
	v := view{User: u, CSRF: r.Context().Value(csrfKey).(string)}
	for _, c := range u.Centres {
		if src := s.o.Source(c); src != nil {
			v.Centres = append(v.Centres, centreLink{ID: c, Name: src.Roster.Centre.Name})
		}
	}
	return v
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	v := s.view(r)
	if len(v.Centres) == 1 {
		http.Redirect(w, r, "/c/"+url.PathEscape(v.Centres[0].ID)+"/today", http.StatusSeeOther)
		return
	}
	s.render(w, "home.html", v, http.StatusOK)
}

func (s *Server) today(w http.ResponseWriter, r *http.Request) {
	c := r.PathValue("centre")
	b, err := s.boardOf(r.Context(), c)
	if err != nil {
		s.o.Logger.Error("web: reading the day", "centre", c, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	v := s.view(r)
	v.Board, v.Centre = b, c
	s.render(w, "today.html", v, http.StatusOK)
}

// live streams the board (its HTML) as Server-Sent Events whenever it
// changes.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	c := r.PathValue("centre")
	s.stream(w, r, func() ([]byte, error) {
		b, err := s.boardOf(r.Context(), c)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		err = pages.ExecuteTemplate(&buf, "board", b)
		return buf.Bytes(), err
	})
}

// stream sends what render makes, as the Server-Sent Event "update",
// whenever it changes: at once when told (Notify), and each Every for
// what other instances stored.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, render func() ([]byte, error)) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "no streaming", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	t := time.NewTicker(s.o.Every)
	defer t.Stop()
	var last []byte
	for {
		changed := s.notified()
		if html, err := render(); err == nil && !bytes.Equal(html, last) {
			last = html
			w.Write([]byte("event: update\n"))
			for _, line := range bytes.Split(last, []byte("\n")) {
				w.Write(append(append([]byte("data: "), line...), '\n'))
			}
			w.Write([]byte("\n"))
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
