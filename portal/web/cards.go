package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
)

// 아동·카드: each child's card and its history; enrolment started on a
// terminal and watched to its end; revokes by the Q18 rule.

var cardStates = map[firmware.CardState]string{
	firmware.CardActive:   "사용 중",
	firmware.CardReplaced: "교체됨",
	firmware.CardRevoked:  "사용 중지",
	firmware.CardConflict: "다른 센터에 먼저 등록됨",
}

var changeOutcomes = map[string]string{
	api.ChangeApplied:  "반영",
	api.ChangeRefused:  "거절",
	api.ChangeConflict: "충돌: 다른 센터에 먼저 등록된 카드",
	api.ChangeReleased: "풀림",
}

type cardRow struct {
	ID, Name, State, Since string
	Active                 bool
	// Note explains a state staff must act on (a conflict).
	Note string
}

// conflictNote explains a card that lost a conflict, and what to do.
const conflictNote = "충돌: 이 카드는 다른 센터나 다른 아이에게 먼저 등록되어 있어, 여기서 태그하면 \"다른 센터에 먼저 등록된 카드\"로 거절됩니다. " +
	"한 카드는 한 곳에만 등록됩니다(먼저 등록한 곳이 가집니다). 아이에게 새 카드를 등록하거나, 먼저 등록된 곳에서 그 카드를 사용 중지한 뒤 여기서 다시 등록하세요."

type historyRow struct {
	At, Name, Outcome, What, Why, By string
}

type cardsPage struct {
	Children []cardRow
	Devices  []string
	History  []historyRow
	Message  string
	Refusal  bool
}

func (s *Server) cardsOf(ctx context.Context, centre string) (*cardsPage, error) {
	v, err := s.o.Cards(centre)
	if err != nil {
		return nil, err
	}
	src := s.o.Source(centre)
	name := func(id string) string {
		if src != nil {
			if c := src.Roster.ChildByID(id); c != nil {
				return c.Name
			}
		}
		return id
	}
	p := &cardsPage{}
	for _, c := range v.Children {
		r := cardRow{ID: c.Child, Name: name(c.Child), State: "카드 없음", Active: c.State == firmware.CardActive}
		if c.State != "" {
			r.State = cardStates[c.State]
			if r.State == "" {
				r.State = string(c.State)
			}
		}
		if c.State == firmware.CardConflict {
			r.Note = conflictNote
		}
		if !c.Since.IsZero() {
			r.Since = c.Since.In(firmware.KST).Format("2006-01-02 15:04")
		}
		p.Children = append(p.Children, r)
	}
	if s.o.Terminals != nil {
		ts, err := s.o.Terminals(centre)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			p.Devices = append(p.Devices, t.Device)
		}
		slices.Sort(p.Devices)
	}
	hist, err := s.o.History(centre, "")
	if err != nil {
		return nil, err
	}
	for i := len(hist) - 1; i >= 0 && len(p.History) < 30; i-- { // newest first
		h := hist[i]
		what := "카드 등록"
		if h.Flow == firmware.FlowPortal && h.NewCard == "" {
			what = "카드 사용 중지"
		}
		why := h.Detail
		switch {
		case h.Outcome == api.ChangeConflict || h.Reason == firmware.RefuseBoundElsewhere:
			why = conflictNote + " (" + h.Detail + ")"
		case h.Reason != "":
			why = h.Reason.Label().Ko + ": " + h.Detail
		}
		out := changeOutcomes[h.Outcome]
		if out == "" {
			out = h.Outcome
		}
		p.History = append(p.History, historyRow{At: h.Recorded.In(firmware.KST).Format("01-02 15:04"), Name: name(h.Child), Outcome: out, What: what, Why: why, By: h.By})
	}
	return p, nil
}

func (s *Server) cards(w http.ResponseWriter, r *http.Request) {
	s.renderCards(w, r, "", false, http.StatusOK)
}

func (s *Server) renderCards(w http.ResponseWriter, r *http.Request, msg string, refusal bool, code int) {
	c := r.PathValue("centre")
	p, err := s.cardsOf(r.Context(), c)
	if err != nil {
		s.o.Logger.Error("web: the cards", "centre", c, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	p.Message, p.Refusal = msg, refusal
	v := s.view(r)
	v.Centre, v.Cards = c, p
	s.render(w, "cards.html", v, code)
}

// child is the form's child, one of the centre's.
func (s *Server) child(r *http.Request) (string, string, bool) {
	id := r.PostFormValue("child")
	src := s.o.Source(r.PathValue("centre"))
	if src == nil {
		return "", "", false
	}
	c := src.Roster.ChildByID(id)
	if c == nil {
		return "", "", false
	}
	return id, c.Name, true
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	centre, u := r.PathValue("centre"), userOf(r)
	id, name, ok := s.child(r)
	if !ok {
		s.renderCards(w, r, "그런 아이가 명단에 없습니다", true, http.StatusBadRequest)
		return
	}
	_, err := s.o.Revoke(centre, id, "web:"+u.Name)
	var ref *firmware.Refused
	switch {
	case errors.As(err, &ref):
		msg := fmt.Sprintf("%s의 카드를 사용 중지하지 못했습니다: %s. %s", name, ref.Reason.Label().Ko, ref.Detail)
		if ref.Reason == firmware.RefuseScheduledBooking {
			msg += " (FAQ Q18: 이용예정 예약이 있는 아이의 카드는 사용 중지할 수 없습니다. 예약을 이용중으로 바꾸거나 취소한 뒤에 하세요.)"
		}
		s.o.Accounts.Record(r.Context(), u.Name, centre, "revoke refused", id+": "+string(ref.Reason))
		s.renderCards(w, r, msg, true, http.StatusConflict)
	case err != nil:
		s.o.Logger.Error("web: a revoke", "centre", centre, "child", id, "err", err)
		s.renderCards(w, r, "사용 중지하지 못했습니다: "+err.Error(), true, http.StatusServiceUnavailable)
	default:
		s.o.Accounts.Record(r.Context(), u.Name, centre, "revoke", id)
		s.renderCards(w, r, name+"의 카드를 사용 중지했습니다.", false, http.StatusOK)
	}
}

func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	centre, u := r.PathValue("centre"), userOf(r)
	id, name, ok := s.child(r)
	if !ok {
		s.renderCards(w, r, "그런 아이가 명단에 없습니다", true, http.StatusBadRequest)
		return
	}
	device := r.PostFormValue("device")
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := s.o.Enrol(ctx, api.EnrolRequest{Centre: centre, Child: id, Device: device, By: "web:" + u.Name})
	if err != nil {
		s.o.Accounts.Record(r.Context(), u.Name, centre, "enrol failed", id+" at "+device+": "+err.Error())
		s.renderCards(w, r, "카드 등록을 시작하지 못했습니다: "+err.Error(), true, http.StatusConflict)
		return
	}
	s.o.Accounts.Record(r.Context(), u.Name, centre, "enrol", id+" at "+res.Device)
	s.renderCards(w, r, fmt.Sprintf("단말기 %s이(가) %s의 카드를 기다립니다: 새 카드를 단말기에 대세요. 등록되면 이 표에 바로 나타납니다.", res.Device, name), false, http.StatusOK)
}

// cardsLive streams the cards' table when it changes (an enrolment
// completing at the terminal).
func (s *Server) cardsLive(w http.ResponseWriter, r *http.Request) {
	c := r.PathValue("centre")
	s.stream(w, r, func() ([]byte, error) {
		p, err := s.cardsOf(r.Context(), c)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		err = pages.ExecuteTemplate(&buf, "cardtable", struct {
			Centre string
			Cards  *cardsPage
			CSRF   string
		}{c, p, r.Context().Value(csrfKey).(string)})
		return buf.Bytes(), err
	})
}
