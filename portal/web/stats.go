package web

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
)

// stats is 통계: a centre's month (Q23, Q24).
type stats struct {
	Month, Prev, Next string
	Days              []dayStat
	Hours             []int // 0..23: the most children inside in that hour on any day
	Peak              int
	Children          []childStat
	Regular, Temp     int // children who came, by the kind of their booking
	Visits            int // sessions
}

type dayStat struct {
	Day      string
	Children int
	Hours    [24]int
}

type childStat struct {
	ID, Name, Kind  string
	Visits, Minutes int
}

var monthForm = regexp.MustCompile(`^\d{4}-\d{2}$`)

// monthOf is the month asked (?month=2026-11), this month (KST) if none.
func monthOf(r *http.Request, now time.Time) (string, bool) {
	m := r.URL.Query().Get("month")
	if m == "" {
		return now.In(firmware.KST).Format("2006-01"), true
	}
	if !monthForm.MatchString(m) {
		return "", false
	}
	_, err := time.Parse("2006-01", m)
	return m, err == nil
}

// kindOf: 정기 for a child with a regular booking, 일시 otherwise.
func kindOf(r *firmware.Roster, child string) string {
	if r == nil {
		return ""
	}
	for _, b := range r.BookingsOf(child) {
		if b.Type == firmware.Regular {
			return "정기"
		}
	}
	if len(r.BookingsOf(child)) > 0 {
		return "일시"
	}
	return ""
}

func makeStats(v *api.ExportView, r *firmware.Roster) *stats {
	t, _ := time.Parse("2006-01", v.Month)
	st := &stats{Month: v.Month, Prev: t.AddDate(0, -1, 0).Format("2006-01"), Next: t.AddDate(0, 1, 0).Format("2006-01"), Hours: make([]int, 24)}
	for _, o := range v.Occupancy {
		st.Days = append(st.Days, dayStat{Day: o.Day.String(), Children: o.Children, Hours: o.Hours})
		for h, n := range o.Hours {
			st.Hours[h] = max(st.Hours[h], n)
			st.Peak = max(st.Peak, n)
		}
	}
	by := map[string]*childStat{}
	for _, s := range v.Sessions {
		c := by[s.Child]
		if c == nil {
			name := v.Names[s.Child]
			if name == "" {
				name = s.Child
			}
			c = &childStat{ID: s.Child, Name: name, Kind: kindOf(r, s.Child)}
			by[s.Child] = c
		}
		c.Visits++
		c.Minutes += s.Minutes()
		st.Visits++
	}
	for _, c := range by {
		st.Children = append(st.Children, *c)
		switch c.Kind {
		case "정기":
			st.Regular++
		case "일시":
			st.Temp++
		}
	}
	slices.SortFunc(st.Children, func(a, b childStat) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	return st
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) (*api.ExportView, string, bool) {
	c := r.PathValue("centre")
	month, ok := monthOf(r, s.o.Now())
	if !ok {
		http.Error(w, "달은 2026-11처럼 쓰세요", http.StatusBadRequest)
		return nil, "", false
	}
	v, err := s.o.Export(c, month)
	if err != nil {
		s.o.Logger.Error("web: a month's report", "centre", c, "month", month, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return nil, "", false
	}
	return v, month, true
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	v, _, ok := s.export(w, r)
	if !ok {
		return
	}
	var roster *firmware.Roster
	if src := s.o.Source(r.PathValue("centre")); src != nil {
		roster = src.Roster
	}
	page := s.view(r)
	page.Centre, page.Stats = r.PathValue("centre"), makeStats(v, roster)
	s.render(w, "stats.html", page, http.StatusOK)
}

// download sends the month as CSV (UTF-8 with a BOM, for Excel) or as an
// Excel workbook.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	v, month, ok := s.export(w, r)
	if !ok {
		return
	}
	name := fmt.Sprintf("%s-%s", r.PathValue("centre"), month)
	var err error
	switch r.PathValue("kind") {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		err = attendance.WriteReport(w, v.Sessions, v.Occupancy, v.Names)
	case "xlsx":
		w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.xlsx"`)
		err = attendance.WriteXLSX(w, month, v.Sessions, v.Occupancy, v.Names)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.o.Logger.Error("web: writing a month's report", "err", err)
	}
}
