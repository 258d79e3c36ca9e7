package web

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/absence"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// A Wednesday at 15:00 KST: c1's regular booking (Mon, Wed, Fri 14–18)
// makes today a usage day for c1.
var wednesday = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

type site struct {
	t     *testing.T
	st    store.Store
	acc   *Accounts
	srv   *Server
	ts    *httptest.Server
	mu    sync.Mutex
	now   time.Time
	seq   map[string]uint64
	srcOf map[string]*source.Source
	// terminals are what the bridge knows of each centre's terminals.
	terminals map[string][]api.TerminalView
	cards     *fakeCards
	// alerts are the not-arrived alerts and absences the bridge has.
	alerts map[string]*api.AlertsView
}

func (s *site) alertsOf(_ context.Context, centre string) (*api.AlertsView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.alerts[centre]
	if v == nil {
		return &api.AlertsView{Centre: centre}, nil
	}
	c := *v
	c.Alerts, c.Absent = slices.Clone(v.Alerts), slices.Clone(v.Absent)
	return &c, nil
}

func (s *site) markAbsent(_ context.Context, req api.AbsentRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Child == "c2" && !req.Undo { // the site's c2: not booked today, as the fake has it
		return fmt.Errorf("%w: c2", absence.ErrNotBooked)
	}
	v := s.alerts[req.Centre]
	if v == nil {
		v = &api.AlertsView{Centre: req.Centre}
		s.alerts[req.Centre] = v
	}
	v.Absent = slices.DeleteFunc(v.Absent, func(a api.AbsentView) bool { return a.Child == req.Child })
	if !req.Undo {
		v.Absent = append(v.Absent, api.AbsentView{Child: req.Child, By: req.By, At: s.now, Note: req.Note})
	}
	return nil
}

// fakeCards is the bridge's side of 아동·카드: children's cards, the
// changes, a revoke refused by Q18 for a child with a scheduled booking
// (c2), enrolments started.
type fakeCards struct {
	mu      sync.Mutex
	state   map[string]firmware.CardState
	changes []api.Change
	enrols  []api.EnrolRequest
}

func (f *fakeCards) view(centre string) (*api.CardsView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := &api.CardsView{Centre: centre}
	for _, c := range []string{"c1", "c2"} {
		v.Children = append(v.Children, api.ChildCards{Child: c, Name: "masked", Card: "k-" + c, State: f.state[c], Since: wednesday})
	}
	return v, nil
}

func (f *fakeCards) history(centre, child string) ([]api.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes), nil
}

func (f *fakeCards) revoke(centre, child, by string) (api.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := api.Change{Centre: centre, BindingChange: firmware.BindingChange{Child: child, By: by, Flow: firmware.FlowPortal}, Recorded: wednesday}
	if child == "c2" {
		ref := &firmware.Refused{Reason: firmware.RefuseScheduledBooking, Detail: "booking b2 is 이용예정"}
		ch.Outcome, ch.Reason, ch.Detail = api.ChangeRefused, ref.Reason, ref.Detail
		f.changes = append(f.changes, ch)
		return ch, ref
	}
	f.state[child] = firmware.CardRevoked
	ch.Outcome, ch.Detail = api.ChangeApplied, "card revoked from the portal"
	f.changes = append(f.changes, ch)
	return ch, nil
}

func (f *fakeCards) enrol(_ context.Context, req api.EnrolRequest) (*api.EnrolResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Device == "" {
		return nil, fmt.Errorf("no terminal named")
	}
	f.enrols = append(f.enrols, req)
	return &api.EnrolResult{Centre: req.Centre, Device: req.Device, Child: req.Child}, nil
}

// conflict: the child's card lost a conflict (bound earlier elsewhere).
func (f *fakeCards) conflict(child string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[child] = firmware.CardConflict
	f.changes = append(f.changes, api.Change{Outcome: api.ChangeConflict, Reason: firmware.RefuseBoundElsewhere, Recorded: wednesday,
		Detail:        "the same card was bound earlier at seogyo1 by seogyo-door (12-02 14:00): this binding lost",
		BindingChange: firmware.BindingChange{Child: child, NewCard: "k-c2", By: "door", Flow: firmware.FlowDevice}})
}

// bound: the card presented at the terminal was bound (as the bridge's
// binder records it).
func (f *fakeCards) bound(child string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[child] = firmware.CardActive
	f.changes = append(f.changes, api.Change{Outcome: api.ChangeApplied, Recorded: wednesday, BindingChange: firmware.BindingChange{Child: child, NewCard: "k-new", By: "web:mangwon.kim", Flow: firmware.FlowDevice}})
}

func (s *site) clock() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.now }

func (s *site) advance(d time.Duration) { s.mu.Lock(); s.now = s.now.Add(d); s.mu.Unlock() }

// newSite: centres mangwon1 (the example source) and seogyo1 (a copy),
// staff "mangwon.kim" of mangwon1, operator "gu.lee" of both.
func newSite(t *testing.T) *site {
	t.Helper()
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s := &site{t: t, st: b.Contract(), now: wednesday, seq: map[string]uint64{}, srcOf: map[string]*source.Source{},
		cards: &fakeCards{state: map[string]firmware.CardState{"c1": firmware.CardActive, "c2": firmware.CardActive}}, alerts: map[string]*api.AlertsView{}}
	for _, id := range []string{"mangwon1", "seogyo1"} {
		src, err := source.Load("../../docs/examples/mangwon1.json")
		if err != nil {
			t.Fatal(err)
		}
		src.Roster.Centre.ID, src.Roster.Centre.Name = id, "센터 "+id
		s.srcOf[id] = src
	}
	s.acc = &Accounts{Reg: s.st, Now: s.clock}
	ctx := context.Background()
	if err := s.acc.Add(ctx, "mangwon.kim", "password-of-kim", []string{"mangwon1"}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.acc.Add(ctx, "gu.lee", "password-of-lee", []string{"mangwon1", "seogyo1"}, "test"); err != nil {
		t.Fatal(err)
	}
	s.srv, err = New(Options{Accounts: s.acc, Events: s.st, Source: func(c string) *source.Source { return s.srcOf[c] }, Now: s.clock, Every: 20 * time.Millisecond,
		Terminals: func(c string) ([]api.TerminalView, error) { return s.terminals[c], nil },
		Export:    s.export, Alerts: s.alertsOf, MarkAbsent: s.markAbsent,
		Cards: s.cards.view, History: s.cards.history, Revoke: s.cards.revoke, Enrol: s.cards.enrol,
		Texts: s.st, Resend: func(ctx context.Context, centre, id, phone string) error {
			p, err := source.NormalizePhone(phone)
			if err != nil {
				return err
			}
			return s.st.Retry(ctx, id, p, s.clock())
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.ts = httptest.NewServer(s.srv)
	t.Cleanup(s.ts.Close)
	return s
}

// export is a centre's month from the store, as kiumbridge's is.
func (s *site) export(centre, month string) (*api.ExportView, error) {
	var evs []protocol.Event
	if err := s.st.Events(context.Background(), centre, func(e protocol.Event) bool { evs = append(evs, e); return true }); err != nil {
		return nil, err
	}
	sessions := attendance.Sessions(evs)
	sessions, occ, err := attendance.Month(month, sessions, attendance.Occupancies(sessions))
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, c := range s.srcOf[centre].Roster.Children {
		names[c.ID] = c.Name
	}
	return &api.ExportView{Centre: centre, Month: month, Sessions: sessions, Occupancy: occ, Names: names}, nil
}

// tap stores a terminal's event at the site's clock.
func (s *site) tap(centre, child, outcome, reason string) {
	s.t.Helper()
	s.seq[centre]++
	n := s.seq[centre]
	e := protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", n), Centre: centre, Device: "door", Log: "L-" + centre, Seq: n, Time: s.clock(), ClockSynced: true,
		Child: child, Outcome: outcome, Reason: reason, RosterRev: 1}
	if _, err := s.st.Put(context.Background(), []protocol.Event{e}, store.Plan{}); err != nil {
		s.t.Fatal(err)
	}
	s.srv.Notify()
}

// failedText stores a check-in of child with a text to its guardian, and
// records the text as failed for a wrong number; it returns its ID.
func (s *site) failedText(centre, child string) string {
	s.t.Helper()
	ctx := context.Background()
	s.seq[centre]++
	n := s.seq[centre]
	e := protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", n), Centre: centre, Device: "door", Log: "L-" + centre, Seq: n, Time: s.clock(), ClockSynced: true,
		Child: child, Outcome: "check_in", Reason: "arrival", RosterRev: 1}
	plan := store.Plan{Texts: func(e *protocol.Event) []store.Job {
		return []store.Job{{ID: e.ID + "/0", EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: "arrival", At: e.Time, To: "01012345678", Created: e.Time, State: store.JobPending, NextAt: e.Time}}
	}}
	if _, err := s.st.Put(ctx, []protocol.Event{e}, plan); err != nil {
		s.t.Fatal(err)
	}
	jobs, err := s.st.Claim(ctx, "t", s.clock().Add(time.Hour), 100, time.Minute)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := range jobs {
		jobs[i].State, jobs[i].Reason = store.JobFailed, "없는 번호입니다 (provider 3059)"
	}
	if err := s.st.Finish(ctx, "t", jobs...); err != nil {
		s.t.Fatal(err)
	}
	s.srv.Notify()
	return e.ID + "/0"
}

// client is a browser of its own (a cookie jar; redirects not followed).
func (s *site) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (s *site) login(c *http.Client, user, pw string) *http.Response {
	s.t.Helper()
	res, err := c.PostForm(s.ts.URL+"/login", url.Values{"user": {user}, "password": {pw}})
	if err != nil {
		s.t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// postForm posts a form and returns the status and the body.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	res, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// audited lists a centre's audit records, each as line makes it.
func (s *site) audited(centre string, line func(AuditRecord) string) []string {
	s.t.Helper()
	audit, err := s.acc.Audit(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, a := range audit {
		if a.Centre == centre {
			out = append(out, line(a))
		}
	}
	return out
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// The day at the door: who is inside since when, who is booked and not
// here, refused taps with the reason and the fix in the FAQ's words.
func TestToday(t *testing.T) {
	s := newSite(t)
	s.tap("mangwon1", "c1", "check_in", "arrival")
	s.tap("mangwon1", "c2", "no_data", "not_a_usage_day")
	s.tap("mangwon1", "", "unknown_card", "card_not_registered")
	c := s.client()
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/today")
	if code != http.StatusOK {
		t.Fatalf("today: %d", code)
	}
	for _, want := range []string{"센터 mangwon1 오늘", `<tr data-child="c1"><td>김민준</td><td>15:00</td></tr>`, "노데이터", "이용일 아님", "FAQ Q21",
		"미등록 카드", "아동·카드에서 이 카드를 아이에게 등록하세요", "센터 안 <span class=\"count\">1명"} {
		if !strings.Contains(page, want) {
			t.Errorf("today lacks %q:\n%s", want, page)
		}
	}
	// c2's booking (Tue, Thu) is not today's: not listed as awaited; c1
	// is in.
	if strings.Contains(page, `<li data-child="c2">`) || strings.Contains(page, `<li data-child="c1">`) {
		t.Errorf("awaited children wrong:\n%s", page)
	}
}

// A live board: a tap stored appears on the stream without a reload.
func TestTodayLive(t *testing.T) {
	s := newSite(t)
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	wait := watchStream(t, c, s.ts.URL+"/c/mangwon1/today/live")
	wait("the first board", "아직 아무도 없습니다")
	s.tap("mangwon1", "c1", "check_in", "arrival")
	wait("c1's arrival", `data: <tr data-child="c1"><td>김민준</td><td>15:00</td></tr>`)
}

// Every route of a centre: the staff of another centre get the same 404
// as for a centre that does not exist, never its data; a district
// operator sees both.
func TestOtherCentreRefused(t *testing.T) {
	s := newSite(t)
	s.tap("seogyo1", "c1", "check_in", "arrival")
	kim, lee := s.client(), s.client()
	s.login(kim, "mangwon.kim", "password-of-kim")
	s.login(lee, "gu.lee", "password-of-lee")
	s.terminals = map[string][]api.TerminalView{"seogyo1": {{Centre: "seogyo1", Device: "seogyo-door"}}}
	for _, path := range []string{"/c/seogyo1/today", "/c/seogyo1/today/live", "/c/seogyo1/terminals", "/c/seogyo1/cards", "/c/seogyo1/cards/live", "/c/seogyo1/stats", "/c/seogyo1/stats/csv", "/c/seogyo1/stats/xlsx",
		"/c/nowhere/today", "/c/nowhere/today/live", "/c/nowhere/terminals", "/c/nowhere/stats", "/c/nowhere/stats/csv"} {
		code, body := get(t, kim, s.ts.URL+path)
		if code != http.StatusNotFound || strings.Contains(body, "김민준") || strings.Contains(body, "seogyo") {
			t.Errorf("mangwon.kim GET %s: %d\n%s", path, code, body)
		}
	}
	if code, body := get(t, lee, s.ts.URL+"/c/seogyo1/today"); code != http.StatusOK || !strings.Contains(body, "김민준") {
		t.Errorf("the operator of both: %d\n%s", code, body)
	}
	if code, body := get(t, lee, s.ts.URL+"/"); code != http.StatusOK || !strings.Contains(body, "센터 seogyo1") || !strings.Contains(body, "센터 mangwon1") {
		t.Errorf("the operator's centres: %d\n%s", code, body)
	}
}

// Without a session every page goes to the login, every stream and
// change is refused.
func TestNoSession(t *testing.T) {
	s := newSite(t)
	c := s.client()
	for _, path := range []string{"/", "/c/mangwon1/today"} {
		res, err := c.Get(s.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Errorf("GET %s: %d to %q", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	req, _ := http.NewRequest("GET", s.ts.URL+"/c/mangwon1/today/live", nil)
	req.Header.Set("Accept", "text/event-stream")
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the stream: %v %v", res, err)
	}
	res, err := c.PostForm(s.ts.URL+"/logout", url.Values{"csrf": {"x"}})
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("logout without a session: %v %v", res, err)
	}
}

// A change needs the session's CSRF token; a browser's POST from another
// site is refused; logout ends the session for good.
func TestCSRFAndLogout(t *testing.T) {
	s := newSite(t)
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	_, page := get(t, c, s.ts.URL+"/c/mangwon1/today")
	token := csrfOf(t, page)
	for name, form := range map[string]url.Values{"no token": {}, "a wrong token": {"csrf": {"wrong"}}} {
		res, err := c.PostForm(s.ts.URL+"/logout", form)
		if err != nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("logout with %s: %v %v", name, res, err)
		}
	}
	req, _ := http.NewRequest("POST", s.ts.URL+"/logout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST with the right token: %v %v", res, err)
	}
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusOK {
		t.Fatalf("the refused logouts ended the session: %d", code)
	}
	res, err := c.PostForm(s.ts.URL+"/logout", url.Values{"csrf": {token}})
	if err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %v %v", res, err)
	}
	// The old cookie, kept by an attacker, is dead too.
	old := &http.Cookie{Name: Cookie, Value: sessionCookie(t, c, s.ts.URL)}
	if old.Value != "" {
		t.Fatal("the cookie was not cleared")
	}
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusSeeOther {
		t.Errorf("after logout: %d", code)
	}
	audit, _ := s.acc.Audit(context.Background())
	if len(audit) == 0 || audit[len(audit)-1].Action != "logout" || audit[len(audit)-1].User != "mangwon.kim" {
		t.Errorf("the audit's last record: %+v", audit[len(audit)-1])
	}
}

func sessionCookie(t *testing.T, c *http.Client, base string) string {
	u, _ := url.Parse(base)
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == Cookie {
			return k.Value
		}
	}
	return ""
}

// A stolen token from before a logout does not come back to life.
func TestLoggedOutTokenDead(t *testing.T) {
	s := newSite(t)
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	token := sessionCookie(t, c, s.ts.URL)
	_, page := get(t, c, s.ts.URL+"/c/mangwon1/today")
	c.PostForm(s.ts.URL+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	thief := s.client()
	u, _ := url.Parse(s.ts.URL)
	thief.Jar.SetCookies(u, []*http.Cookie{{Name: Cookie, Value: token}})
	if code, _ := get(t, thief, s.ts.URL+"/c/mangwon1/today"); code != http.StatusSeeOther {
		t.Errorf("a logged-out token: %d", code)
	}
}

// A session lasts SessionFor (12 hours) from its login, then the page
// asks for a login again, whatever the cookie.
func TestSessionExpires(t *testing.T) {
	s := newSite(t)
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	token := sessionCookie(t, c, s.ts.URL)
	s.advance(SessionFor - time.Minute)
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusOK {
		t.Fatalf("a session before its end: %d", code)
	}
	s.advance(time.Minute)
	u, _ := url.Parse(s.ts.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: Cookie, Value: token}}) // a browser that kept it
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusSeeOther {
		t.Errorf("a session 12 hours old: %d", code)
	}
}

// Five wrong passwords lock the account for 15 minutes, the right one
// included; a disabled account and an unknown name get the same answer
// as a wrong password.
func TestLoginLocked(t *testing.T) {
	s := newSite(t)
	c := s.client()
	for i := range MaxFailures - 1 {
		if res := s.login(c, "mangwon.kim", "wrong"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, res.StatusCode)
		}
	}
	res, err := c.PostForm(s.ts.URL+"/login", url.Values{"user": {"mangwon.kim"}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "잠시 잠겼습니다") {
		t.Fatalf("the fifth wrong password: %d\n%s", res.StatusCode, body)
	}
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the right password while locked: %d", res.StatusCode)
	}
	s.advance(LockFor)
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right password after the lock: %d", res.StatusCode)
	}
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusOK {
		t.Fatalf("after login: %d", code)
	}
	// Disabled: the session ends at once, and the login is refused.
	if err := s.acc.Disable(context.Background(), "mangwon.kim", "test"); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/today"); code != http.StatusSeeOther {
		t.Errorf("a disabled user's session: %d", code)
	}
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a disabled user's login: %d", res.StatusCode)
	}
	if res := s.login(c, "nobody", "password-of-kim"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unknown user: %d", res.StatusCode)
	}
}

// The cookie is HttpOnly and SameSite=Strict (Secure when so set); pages
// carry headers that keep them out of frames and foreign scripts.
func TestCookieAndHeaders(t *testing.T) {
	s := newSite(t)
	res, err := s.client().PostForm(s.ts.URL+"/login", url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	set := res.Header.Get("Set-Cookie")
	for _, want := range []string{Cookie + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
	for h, want := range map[string]string{"Content-Security-Policy": "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if !strings.Contains(res.Header.Get(h), want) {
			t.Errorf("%s: %q", h, res.Header.Get(h))
		}
	}
}

// Accounts: names and passwords checked, one account per name, a new
// password ends the sessions and unlocks.
func TestAccounts(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, pw string }{{"X", "long-enough-pw"}, {"ok.name", "short"}, {"mangwon.kim", "long-enough-pw"}} {
		if err := s.acc.Add(ctx, tc.name, tc.pw, []string{"mangwon1"}, "test"); err == nil {
			t.Errorf("Add %q %q: no error", tc.name, tc.pw)
		}
	}
	if err := s.acc.Add(ctx, "no.centre", "long-enough-pw", nil, "test"); err == nil {
		t.Error("an account of no centre: no error")
	}
	token, _, err := s.acc.Login(ctx, "mangwon.kim", "password-of-kim", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.acc.SetPassword(ctx, "mangwon.kim", "a-new-password", "test"); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := s.acc.Session(ctx, token); u != nil {
		t.Error("a session outlived a new password")
	}
	if _, _, err := s.acc.Login(ctx, "mangwon.kim", "password-of-kim", ""); err != ErrLogin {
		t.Errorf("the old password: %v", err)
	}
	if _, _, err := s.acc.Login(ctx, "mangwon.kim", "a-new-password", ""); err != nil {
		t.Errorf("the new password: %v", err)
	}
	us, _ := s.acc.Users(ctx)
	if len(us) != 2 || us[0].Hash != "" {
		t.Errorf("users listed: %+v", us)
	}
}

// 단말기: each terminal's state in words, those in trouble marked.
func TestTerminals(t *testing.T) {
	s := newSite(t)
	seen := s.clock().Add(-3 * time.Minute)
	s.terminals = map[string][]api.TerminalView{"mangwon1": {
		{Centre: "mangwon1", Device: "door-a", Received: seen, Status: &protocol.Status{V: 1, State: "online", Time: seen, OutboxDepth: 0, RosterRev: 7, RosterAgeS: 120, ClockSynced: true, ReaderHealthy: true, Version: "1.4.0"}},
		{Centre: "mangwon1", Device: "door-b", Received: seen, Status: &protocol.Status{V: 1, State: "offline", Time: seen, OutboxDepth: 12, OldestAgeS: 5400, RosterRev: 6, RosterAgeS: 90000, ReaderHealthy: false, ReaderResets: 3}},
	}}
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/terminals")
	if code != http.StatusOK {
		t.Fatalf("terminals: %d", code)
	}
	for _, want := range []string{
		`<tr data-device="door-a"><td>door-a</td><td>온라인</td><td>12-02 14:57 (3분 전)</td><td>0건</td><td>7판, 2분 전</td><td>정상</td><td>맞음</td><td>1.4.0</td></tr>`,
		`<tr data-device="door-b" class="bad"><td>door-b</td><td>오프라인</td>`,
		"12건, 가장 오래된 것 1시간 기다림", "이상: 리더를 확인하세요 (복구 3회)", "맞추지 못함", "6판, 25시간 전",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("terminals lack %q:\n%s", want, page)
		}
	}
}

// 통계: a month's children by kind and visits, the busiest hours, and
// the CSV (UTF-8 with a BOM) and Excel downloads of the same month.
func TestStats(t *testing.T) {
	s := newSite(t)
	s.tap("mangwon1", "c1", "check_in", "arrival") // 15:00
	s.advance(2*time.Hour + 10*time.Minute)
	s.tap("mangwon1", "c1", "check_out", "departure") // 17:10
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/stats")
	if code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	for _, want := range []string{"통계 2026-12", "이용 아동 <strong>1명</strong> (정기 1명, 일시 0명), 출석 <strong>1회</strong>",
		`<tr data-child="c1"><td>김민준</td><td>정기</td><td>1회</td><td>130분</td></tr>`, "<tr><td>2026-12-02</td><td>1명</td></tr>", `href="stats/xlsx?month=2026-12"`} {
		if !strings.Contains(page, want) {
			t.Errorf("stats lack %q:\n%s", want, page)
		}
	}
	if code, page := get(t, c, s.ts.URL+"/c/mangwon1/stats?month=2026-11"); code != http.StatusOK || !strings.Contains(page, "이 달의 이용 기록이 없습니다") {
		t.Errorf("another month: %d", code)
	}
	if code, _ := get(t, c, s.ts.URL+"/c/mangwon1/stats?month=11/2026"); code != http.StatusBadRequest {
		t.Errorf("a bad month: %d", code)
	}
	code, csv := get(t, c, s.ts.URL+"/c/mangwon1/stats/csv?month=2026-12")
	if code != http.StatusOK || !strings.HasPrefix(csv, attendance.BOM) || !strings.Contains(csv, "2026-12-02,c1,김민준,15:00,17:10,130,N,") {
		t.Errorf("the CSV: %d\n%s", code, csv)
	}
	res, err := c.Get(s.ts.URL + "/c/mangwon1/stats/xlsx?month=2026-12")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Disposition"), "mangwon1-2026-12.xlsx") {
		t.Fatalf("the workbook: %d %q", res.StatusCode, res.Header.Get("Content-Disposition"))
	}
	// It opens: a zip of the workbook's parts, holding the month's numbers.
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("the workbook does not open: %v", err)
	}
	var all strings.Builder
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		all.Write(b)
	}
	for _, want := range []string{"김민준", ">130<"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the workbook lacks %q", want)
		}
	}
}

// 아동·카드: a revoke refused by Q18 says why, one applied is done and
// audited; another centre's child cannot be revoked; an enrolment starts
// on the terminal chosen, and its completion shows on the live table.
func TestCards(t *testing.T) {
	s := newSite(t)
	s.terminals = map[string][]api.TerminalView{"mangwon1": {{Centre: "mangwon1", Device: "door"}}, "seogyo1": {{Centre: "seogyo1", Device: "seogyo-door"}}}
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/cards")
	if code != http.StatusOK || !strings.Contains(page, `<tr data-child="c1"><td>김민준</td><td class="state">사용 중</td>`) || !strings.Contains(page, "<option>door</option>") {
		t.Fatalf("cards: %d\n%s", code, page)
	}
	token := csrfOf(t, page)
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		return postForm(t, c, s.ts.URL+path, form)
	}
	code, page = post("/c/mangwon1/cards/revoke", url.Values{"csrf": {token}, "child": {"c2"}})
	if code != http.StatusConflict || !strings.Contains(page, "이서연의 카드를 사용 중지하지 못했습니다: 이용예정 예약 있음") || !strings.Contains(page, "FAQ Q18") {
		t.Errorf("a revoke refused by Q18: %d\n%s", code, page)
	}
	if code, _ := post("/c/mangwon1/cards/revoke", url.Values{"child": {"c1"}}); code != http.StatusForbidden {
		t.Errorf("a revoke without the CSRF token: %d", code)
	}
	if code, _ := post("/c/seogyo1/cards/revoke", url.Values{"csrf": {token}, "child": {"c1"}}); code != http.StatusNotFound {
		t.Errorf("a revoke at another centre: %d", code)
	}
	if code, _ := post("/c/mangwon1/cards/revoke", url.Values{"csrf": {token}, "child": {"c9"}}); code != http.StatusBadRequest {
		t.Errorf("a revoke of a child not in the roster: %d", code)
	}
	code, page = post("/c/mangwon1/cards/revoke", url.Values{"csrf": {token}, "child": {"c1"}})
	if code != http.StatusOK || !strings.Contains(page, "김민준의 카드를 사용 중지했습니다") || !strings.Contains(page, `<td class="state">사용 중지</td>`) {
		t.Errorf("a revoke: %d\n%s", code, page)
	}
	code, page = post("/c/mangwon1/cards/enrol", url.Values{"csrf": {token}, "child": {"c1"}, "device": {"door"}})
	if code != http.StatusOK || !strings.Contains(page, "단말기 door이(가) 김민준의 카드를 기다립니다") {
		t.Errorf("an enrolment: %d\n%s", code, page)
	}
	if len(s.cards.enrols) != 1 || s.cards.enrols[0].By != "web:mangwon.kim" || s.cards.enrols[0].Device != "door" {
		t.Errorf("enrolments asked: %+v", s.cards.enrols)
	}
	acts := s.audited("mangwon1", func(a AuditRecord) string { return a.User + " " + a.Action })
	if want := "[mangwon.kim revoke refused mangwon.kim revoke mangwon.kim enrol]"; fmt.Sprint(acts) != want {
		t.Errorf("audited %v, want %s", acts, want)
	}
	// A card that lost a conflict: the table and the history say what
	// happened and what to do.
	s.cards.conflict("c2")
	code, page = get(t, c, s.ts.URL+"/c/mangwon1/cards")
	for _, want := range []string{`<td class="state">다른 센터에 먼저 등록됨</td>`, `<tr class="note"><td colspan="5">충돌: 이 카드는 다른 센터나 다른 아이에게 먼저 등록되어`,
		"<td>충돌: 다른 센터에 먼저 등록된 카드</td><td>충돌: 이 카드는", "새 카드를 등록하거나, 먼저 등록된 곳에서 그 카드를 사용 중지한 뒤", "(the same card was bound earlier at seogyo1"} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("a conflict: %d, lacks %q\n%s", code, want, page)
		}
	}
	// The card is presented: the live table shows it active.
	wait := watchStream(t, c, s.ts.URL+"/c/mangwon1/cards/live")
	s.cards.bound("c1")
	s.srv.Notify()
	wait("c1's new card", `data: <tr data-child="c1"><td>김민준</td><td class="state">사용 중</td>`)
}

// 문자: a centre's texts with their state and reason, numbers masked; a
// failed one sent again to a corrected number; a sent one is not.
func TestTexts(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	plan := store.Plan{Texts: func(e *protocol.Event) []store.Job {
		return []store.Job{{ID: e.ID + "/0", EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: "arrival", At: e.Time, To: "01012345678", Created: e.Time, State: store.JobPending, NextAt: e.Time}}
	}}
	for i, centre := range []string{"mangwon1", "mangwon1", "seogyo1"} {
		e := protocol.Event{V: 1, ID: fmt.Sprintf("%s-door-%d", centre, i), Centre: centre, Device: "door", Log: "L-" + centre, Seq: uint64(i%2 + 1), Time: s.clock().Add(time.Duration(i) * time.Minute),
			ClockSynced: true, Child: "c1", Outcome: "check_in", Reason: "arrival", RosterRev: 1}
		if centre == "seogyo1" {
			e.Seq = 1
		}
		if _, err := s.st.Put(ctx, []protocol.Event{e}, plan); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := s.st.Claim(ctx, "t", s.clock().Add(time.Hour), 10, time.Minute)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	jobs[0].State, jobs[0].Reason = store.JobFailed, "없는 번호입니다 (provider 3059)"
	jobs[1].State, jobs[2].State = store.JobSent, store.JobSent
	jobs[1].Channel, jobs[1].Fallback, jobs[1].SentAt = sms.ChannelSMS, "카카오톡 미사용자 (3104)", s.clock()
	jobs[2].Channel, jobs[2].SentAt = sms.ChannelAlimTalk, s.clock()
	if err := s.st.Finish(ctx, "t", jobs...); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/texts")
	failed := jobs[0].ID
	for _, want := range []string{`<tr data-text="` + failed + `" class="bad"><td>12-02 15:00</td><td>김민준</td><td>입실</td><td>010-****-5678</td><td class="state">실패</td><td class="channel"></td><td>없는 번호입니다 (provider 3059)</td>`,
		`<td class="state">보냄</td><td class="channel">SMS (알림톡 대체: 카카오톡 미사용자 (3104))</td>`,
		`<p id="channels">2026-12 보낸 문자: 알림톡 0건, SMS 1건, LMS 0건 (알림톡에서 문자로 대체 1건)</p>`} {
		if !strings.Contains(page, want) {
			t.Errorf("texts lack %q:\n%s", want, page)
		}
	}
	if code != http.StatusOK || strings.Contains(page, "seogyo1-door") || strings.Contains(page, "01012345678") {
		t.Errorf("texts: %d, another centre's text or an unmasked number:\n%s", code, page)
	}
	if _, today := get(t, c, s.ts.URL+"/c/mangwon1/today"); !strings.Contains(today, "보내지 못한 문자 <span class=\"count\">1건") ||
		!strings.Contains(today, "15:00 김민준 입실 → 010-****-5678: 없는 번호입니다 (provider 3059)") {
		t.Errorf("오늘 lacks the failed text:\n%s", today)
	}
	token := csrfOf(t, page)
	res, err := c.PostForm(s.ts.URL+"/c/mangwon1/texts/resend", url.Values{"csrf": {token}, "id": {jobs[1].ID}, "phone": {"010-9999-8888"}})
	if err != nil || res.StatusCode != http.StatusConflict {
		t.Errorf("a sent text again: %v %v", res, err)
	}
	res.Body.Close()
	res, err = c.PostForm(s.ts.URL+"/c/mangwon1/texts/resend", url.Values{"csrf": {token}, "id": {failed}, "phone": {"010-9999-8888"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "문자를 다시 보냅니다") || !strings.Contains(string(body), `<td>010-****-8888</td><td class="state">보낼 차례</td>`) {
		t.Errorf("resend: %d\n%s", res.StatusCode, body)
	}
}

// watchStream opens a live stream (Server-Sent Events) for the test and
// returns a wait for text on it: what it has sent so far, or within 10 s.
func watchStream(t *testing.T, c *http.Client, u string) func(what, want string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res, err := c.Do(req.WithContext(ctx))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the stream %s: %v %v", u, res, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 64<<10)
		var all strings.Builder
		for {
			n, err := res.Body.Read(buf)
			all.Write(buf[:n])
			select {
			case got <- all.String():
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var seen string
	return func(what, want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !strings.Contains(seen, want) {
			select {
			case seen = <-got:
			case <-deadline:
				t.Fatalf("the stream never showed %s (%q)", what, want)
			}
		}
	}
}

// A password tried across many accounts from one address: after
// MaxAddressFailures wrong logins that address is refused (429), the
// right password too, until the window ends; other addresses are not.
func TestLoginsPerAddress(t *testing.T) {
	s := newSite(t)
	c := s.client()
	for i := range MaxAddressFailures {
		if res := s.login(c, fmt.Sprintf("user%02d", i), "a-common-password"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong login %d: %d", i, res.StatusCode)
		}
	}
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right password from that address: %d", res.StatusCode)
	}
	// Another instance on the same store refuses that address too.
	other, err := New(s.srv.o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(other)
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/login", strings.NewReader(url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("another instance let the address in: %v %v", res, err)
	}
	// Behind a TLS proxy the address is the proxy's last hop of
	// X-Forwarded-For: another client there is not refused.
	s.srv.o.Secure = true
	req, _ = http.NewRequest("POST", s.ts.URL+"/login", strings.NewReader(url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	res, err := c.Do(req)
	if err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("another address: %v %v", res, err)
	}
	res.Body.Close()
	s.srv.o.Secure = false
	s.advance(LockFor)
	if res := s.login(c, "mangwon.kim", "password-of-kim"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after the window: %d", res.StatusCode)
	}
}

// Every route the page serves, swept: of a centre not the user's (known
// or not), each is the same 404 with nothing of that centre, whatever the
// method, with a valid CSRF token; without a session each page goes to
// the login and each change and stream is refused; each change without
// the CSRF token, or from another site, is refused and changes nothing.
func TestEveryRoute(t *testing.T) {
	s := newSite(t)
	s.tap("seogyo1", "c1", "check_in", "arrival")
	s.terminals = map[string][]api.TerminalView{"seogyo1": {{Centre: "seogyo1", Device: "seogyo-door"}}}
	kim := s.client()
	s.login(kim, "mangwon.kim", "password-of-kim")
	_, page := get(t, kim, s.ts.URL+"/c/mangwon1/today")
	token := csrfOf(t, page)
	nobody := s.client()
	path := func(pattern, centre string) string {
		p := strings.SplitN(pattern, " ", 2)[1]
		p = strings.ReplaceAll(p, "{centre}", centre)
		p = strings.ReplaceAll(p, "{kind}", "xlsx")
		return strings.ReplaceAll(p, "{$}", "")
	}
	do := func(c *http.Client, method, u string, form url.Values, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		return res.StatusCode, string(b)
	}
	form := url.Values{"csrf": {token}, "child": {"c1"}, "device": {"seogyo-door"}, "id": {"x"}, "phone": {"010-9999-8888"}}
	centred := 0
	for _, pattern := range s.srv.routes {
		method := strings.Fields(pattern)[0]
		if strings.Contains(pattern, "{centre}") {
			centred++
			for _, other := range []string{"seogyo1", "nowhere"} {
				code, body := do(kim, method, s.ts.URL+path(pattern, other), form, nil)
				if code != http.StatusNotFound || strings.Contains(body, "김민준") || strings.Contains(body, "seogyo") {
					t.Errorf("mangwon.kim %s of %s: %d\n%.300s", pattern, other, code, body)
				}
			}
		}
		if pattern == "GET /static/" || pattern == "GET /login" || pattern == "POST /login" {
			continue
		}
		code, _ := do(nobody, method, s.ts.URL+path(pattern, "mangwon1"), form, map[string]string{"Accept": "text/html"})
		if want := map[string]int{"GET": http.StatusSeeOther, "POST": http.StatusUnauthorized}[method]; code != want {
			t.Errorf("no session, %s: %d, want %d", pattern, code, want)
		}
		if method != "POST" {
			continue
		}
		for what, c := range map[string]struct {
			form   url.Values
			header map[string]string
		}{
			"no CSRF token":     {url.Values{"child": {"c1"}, "id": {"x"}}, nil},
			"a wrong token":     {url.Values{"csrf": {"forged"}, "child": {"c1"}, "id": {"x"}}, nil},
			"from another site": {form, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		} {
			if code, _ := do(kim, method, s.ts.URL+path(pattern, "mangwon1"), c.form, c.header); code != http.StatusForbidden {
				t.Errorf("%s with %s: %d, want 403", pattern, what, code)
			}
		}
	}
	if centred < 10 {
		t.Errorf("only %d routes of a centre swept: %v", centred, s.srv.routes)
	}
	if len(s.cards.enrols) != 0 || s.cards.state["c1"] != firmware.CardActive {
		t.Errorf("a refused request changed something: enrolments %v, c1's card %s", s.cards.enrols, s.cards.state["c1"])
	}
	if code, _ := get(t, kim, s.ts.URL+"/c/mangwon1/today"); code != http.StatusOK {
		t.Errorf("the session after the sweep: %d", code)
	}
}

// 오늘 shows the not-arrived alerts (open first, an ended one with its
// arrival), and a child booked not yet arrived can be marked 결석 there,
// audited, and taken back; a child not booked cannot.
func TestNotArrivedOnToday(t *testing.T) {
	s := newSite(t)
	s.alerts["mangwon1"] = &api.AlertsView{Centre: "mangwon1", Alerts: []api.AlertView{
		{Centre: "mangwon1", Child: "c2", Window: "13:00–18:00", Due: s.clock().Add(-90 * time.Minute), Told: 2, Arrived: s.clock().Add(-10 * time.Minute)},
		{Centre: "mangwon1", Child: "c1", Window: "14:00–18:00", Due: s.clock().Add(-30 * time.Minute)}}}
	c := s.client()
	s.login(c, "mangwon.kim", "password-of-kim")
	code, page := get(t, c, s.ts.URL+"/c/mangwon1/today")
	for _, want := range []string{`<section id="notarrived"><h2>미등원 알림 <span class="count">2건</span>`,
		`<tr data-child="c1" class="bad"><td>김민준</td><td>14:00–18:00</td><td>14:30</td><td>-</td><td class="state">미등원</td></tr>`,
		`<tr data-child="c2"><td>이서연</td><td>13:00–18:00</td><td>13:30</td><td>2건 보냄</td><td class="state">14:50 입실함</td></tr>`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("오늘 lacks %q:\n%s", want, page)
		}
	}
	if strings.Index(page, `data-child="c1" class="bad"`) > strings.Index(page, `<tr data-child="c2"><td>이서연`) {
		t.Errorf("the open alert is not first")
	}
	token := csrfOf(t, page)
	post := func(form url.Values) (int, string) {
		t.Helper()
		return postForm(t, c, s.ts.URL+"/c/mangwon1/absent", form)
	}
	// c1 is in 아직 안 옴 with a 결석 button (the wednesday of the site: c1 booked).
	if !strings.Contains(page, `<button class="absent">결석</button>`) {
		t.Fatalf("no 결석 button:\n%s", page)
	}
	if code, _ := post(url.Values{"csrf": {token}, "child": {"c1"}, "note": {"병원 진료"}}); code != http.StatusSeeOther {
		t.Errorf("결석: %d, want 303 to 오늘", code)
	}
	code, page = get(t, c, s.ts.URL+"/c/mangwon1/today")
	if code != http.StatusOK || !strings.Contains(page, `<section id="absent"><h2>결석 <span class="count">1명</span>`) || !strings.Contains(page, "김민준 (병원 진료) · mangwon.kim 표시") {
		t.Errorf("after 결석: %d\n%s", code, page)
	}
	if strings.Contains(page, `<li data-child="c1">김민준 <form`) {
		t.Errorf("c1 still listed as not yet arrived with a 결석 button")
	}
	if code, _ := post(url.Values{"csrf": {token}, "child": {"c9"}}); code != http.StatusBadRequest {
		t.Errorf("결석 of a child not in the roster: %d", code)
	}
	if code, body := post(url.Values{"csrf": {token}, "child": {"c2"}}); code != http.StatusBadRequest || !strings.Contains(body, "오늘 예약이 없는 아이입니다") {
		t.Errorf("결석 of a child not booked today: %d %s", code, body)
	}
	if code, _ := post(url.Values{"csrf": {token}, "child": {"c1"}, "undo": {"1"}}); code != http.StatusSeeOther {
		t.Errorf("결석 취소: %d", code)
	}
	code, page = get(t, c, s.ts.URL+"/c/mangwon1/today")
	if code != http.StatusOK || strings.Contains(page, `<section id="absent">`) {
		t.Errorf("after 결석 취소: %d\n%s", code, page)
	}
	acts := s.audited("mangwon1", func(a AuditRecord) string { return a.Action + " " + a.Detail })
	if want := "[absent c1 병원 진료 absent undone c1 ]"; fmt.Sprint(acts) != want {
		t.Errorf("audited %q, want %s", acts, want)
	}
}
