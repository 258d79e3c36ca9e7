package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"kiumtap/portal/absence"
	"kiumtap/portal/api"
)

// absent marks a child absent (결석) for today from 오늘, or takes the
// mark back (undo): no not-arrived alert is raised for it then. Audited.
func (s *Server) absent(w http.ResponseWriter, r *http.Request) {
	centre, u := r.PathValue("centre"), userOf(r)
	id, _, ok := s.child(r)
	if !ok {
		http.Error(w, "그런 아이가 명단에 없습니다", http.StatusBadRequest)
		return
	}
	undo := r.PostFormValue("undo") != ""
	note := strings.TrimSpace(r.PostFormValue("note"))
	if r := []rune(note); len(r) > 100 {
		note = string(r[:100])
	}
	err := s.o.MarkAbsent(r.Context(), api.AbsentRequest{Centre: centre, Child: id, By: "web:" + u.Name, Note: note, Undo: undo})
	switch {
	case errors.Is(err, absence.ErrNotBooked):
		http.Error(w, "결석으로 표시하지 못했습니다: 오늘 예약이 없는 아이입니다", http.StatusBadRequest)
		return
	case err != nil:
		s.o.Logger.Error("web: marking an absence", "centre", centre, "child", id, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	what := "absent"
	if undo {
		what = "absent undone"
	}
	s.o.Accounts.Record(r.Context(), u.Name, centre, what, id+" "+note)
	s.Notify()
	http.Redirect(w, r, "/c/"+url.PathEscape(centre)+"/today", http.StatusSeeOther)
}
