package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Board is a centre's day at its door: what 오늘 shows.
type Board struct {
	Centre, Name string
	Day          string // 2026-12-01 (KST)
	Inside       []Child
	NotYet       []Child // booked for today, not arrived
	Refused      []Refusal
	Auto         []Child   // automatic check-outs to look at
	FailedTexts  []textRow // today's texts that failed (문자 sends them again)
	// NotArrived are today's not-arrived alerts (미등원), open first;
	// Absent the children marked absent (결석) for today.
	NotArrived []Alerted
	Absent     []AbsentChild
	// Marking: 결석 can be marked here (Options.MarkAbsent); CSRF is the
	// session's token for its forms.
	Marking bool
	CSRF    string
}

// Alerted is a not-arrived alert on the board.
type Alerted struct {
	ID, Name, Window, Due string
	Told                  int
	Arrived               string // HH:MM of the arrival that ended it; "" while open
}

// AbsentChild is a child marked absent for today.
type AbsentChild struct{ ID, Name, By, Note string }

// Child is a child on the board.
type Child struct {
	ID, Name string
	At       string // HH:MM KST: arrival, or the automatic check-out
}

// Refusal is a refused tap, with its reason in the FAQ's words and what
// staff do about it.
type Refusal struct {
	At, Name, Device string
	Outcome, Reason  string
	Fix              string
}

// fixes say what staff do about a refused tap, in the FAQ's words.
var fixes = map[firmware.Reason]string{
	firmware.ReasonNotUsageDay:      "오늘은 예약의 이용일이 아닙니다(노데이터, FAQ Q21). 오늘도 이용하려면 포털에서 예약의 이용 요일을 고치거나 임시 예약을 만드세요.",
	firmware.ReasonCentreClosed:     "오늘은 센터 운영일이 아닙니다(노데이터). 운영일이 맞다면 포털의 운영 일정을 고치세요.",
	firmware.ReasonAfterClosing:     "운영 시간이 끝난 뒤의 태그입니다(노데이터).",
	firmware.ReasonScheduled:        "예약이 이용예정 상태입니다(FAQ Q19). 포털에서 예약을 이용중으로 바꾸면 태그가 됩니다.",
	firmware.ReasonApplied:          "예약이 아직 신청 상태입니다. 포털에서 승인하고 이용중으로 바꾸세요.",
	firmware.ReasonRejected:         "예약이 미승인되었습니다. 새로 예약하세요.",
	firmware.ReasonCancelled:        "예약이 이용취소되었습니다. 다시 이용하려면 새로 예약하세요.",
	firmware.ReasonEnded:            "예약이 종료되었습니다. 다시 이용하려면 새로 예약하세요.",
	firmware.ReasonPeriodOver:       "예약의 이용기간이 지났습니다. 포털에서 기간을 늘리거나 새로 예약하세요.",
	firmware.ReasonNotYetStarted:    "예약의 이용기간이 아직 시작되지 않았습니다.",
	firmware.ReasonNoBooking:        "이 아이의 예약이 없습니다. 포털에서 예약하세요.",
	firmware.ReasonCardUnbound:      "등록되지 않은 카드입니다. 아동·카드에서 이 카드를 아이에게 등록하세요.",
	firmware.ReasonCardReplaced:     "교체된 옛 카드입니다. 새 카드를 쓰게 하세요.",
	firmware.ReasonCardRevoked:      "사용 중지된 카드입니다. 새 카드를 등록하세요.",
	firmware.ReasonCardConflict:     "다른 센터에 먼저 등록된 카드입니다. 새 카드를 등록하세요.",
	firmware.ReasonChildNotInRoster: "명단에 없는 아이의 카드입니다. 포털의 명단을 확인하세요.",
}

// refused are the outcomes staff look at.
var refused = []firmware.Outcome{firmware.NoData, firmware.NotInUse, firmware.UnknownCard, firmware.ReplacedCard}

// dayStart is the start (KST) of now's day.
func dayStart(now time.Time) time.Time {
	d := now.In(firmware.KST)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, firmware.KST)
}

// board makes a centre's day of its events of today (KST), its roster
// (names and today's bookings) and its texts of today.
func board(ctx context.Context, evs []protocol.Event, texts store.TextQueue, alerts *api.AlertsView, src *source.Source, centre string, now time.Time) (*Board, error) {
	start := dayStart(now)
	slices.SortStableFunc(evs, func(a, b protocol.Event) int { return a.Time.Compare(b.Time) })
	b := &Board{Centre: centre, Day: start.Format("2006-01-02")}
	var r *firmware.Roster
	if src != nil {
		r = src.Roster
		b.Name = r.Centre.Name
	}
	name := func(id string) string {
		if r != nil {
			if c := r.ChildByID(id); c != nil {
				return c.Name
			}
		}
		if id == "" {
			return "(알 수 없는 카드)"
		}
		return id
	}
	hhmm := func(t time.Time) string { return t.In(firmware.KST).Format("15:04") }
	arrived := map[string]bool{}
	for _, s := range attendance.Sessions(evs) {
		arrived[s.Child] = true
		switch {
		case s.Open():
			b.Inside = append(b.Inside, Child{ID: s.Child, Name: name(s.Child), At: hhmm(s.In)})
		case s.Auto:
			b.Auto = append(b.Auto, Child{ID: s.Child, Name: name(s.Child), At: hhmm(s.Out)})
		}
	}
	for i := len(evs) - 1; i >= 0; i-- { // newest first
		e := evs[i]
		if !slices.Contains(refused, firmware.Outcome(e.Outcome)) {
			continue
		}
		why := firmware.Reason(e.Reason)
		b.Refused = append(b.Refused, Refusal{At: hhmm(e.Time), Name: name(e.Child), Device: e.Device,
			Outcome: firmware.Outcome(e.Outcome).Label().Ko, Reason: why.Label().Ko, Fix: fixes[why]})
	}
	if r != nil {
		for _, c := range r.Children {
			if arrived[c.ID] {
				continue
			}
			// Booked for today: a tap of its card now would be an arrival.
			for _, k := range r.Cards {
				if k.ChildID != c.ID || k.State != firmware.CardActive {
					continue
				}
				d := firmware.Decide(firmware.Input{Tap: firmware.Tap{CardKey: k.Key, At: now}, Roster: r,
					Presence: func(string) firmware.Presence { return firmware.Presence{} }})
				if d.Outcome == firmware.CheckIn {
					b.NotYet = append(b.NotYet, Child{ID: c.ID, Name: c.Name})
				}
				break
			}
		}
	}
	if texts != nil {
		err := texts.CentreJobs(ctx, centre, start, func(j store.Job) bool {
			if j.State == store.JobFailed {
				b.FailedTexts = append(b.FailedTexts, textRow{ID: j.ID, At: hhmm(j.At), Name: name(j.Child), Kind: textKinds[j.Kind], To: maskPhone(j.To), Reason: j.Reason})
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	if alerts != nil {
		absent := map[string]bool{}
		for _, m := range alerts.Absent {
			absent[m.Child] = true
			b.Absent = append(b.Absent, AbsentChild{ID: m.Child, Name: name(m.Child), By: strings.TrimPrefix(m.By, "web:"), Note: m.Note})
		}
		b.NotYet = slices.DeleteFunc(b.NotYet, func(c Child) bool { return absent[c.ID] })
		for _, a := range alerts.Alerts {
			al := Alerted{ID: a.Child, Name: name(a.Child), Window: a.Window, Due: hhmm(a.Due), Told: a.Told}
			if !a.Arrived.IsZero() {
				al.Arrived = hhmm(a.Arrived)
			}
			b.NotArrived = append(b.NotArrived, al)
		}
		slices.SortStableFunc(b.NotArrived, func(x, y Alerted) int {
			return strings.Compare(fmt.Sprint(x.Arrived != "")+x.Due+x.Name, fmt.Sprint(y.Arrived != "")+y.Due+y.Name)
		})
	}
	slices.SortFunc(b.Inside, func(a, b Child) int { return strings.Compare(a.At+a.Name, b.At+b.Name) })
	slices.SortFunc(b.NotYet, func(a, b Child) int { return strings.Compare(a.Name, b.Name) })
	return b, nil
}
