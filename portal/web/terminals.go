package web

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
)

// terminalRow is a terminal as 단말기 shows it, in words.
type terminalRow struct {
	Device, State, Since    string
	Outbox, Roster, Reader  string
	Clock, Version, Trouble string
	Bad                     bool // offline, a reader in trouble, events refused or a clash
}

// ago says a duration in Korean, coarsely.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d초", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d분", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d시간", int(d.Hours()))
	}
	return fmt.Sprintf("%d일", int(d.Hours()/24))
}

func terminalRows(ts []api.TerminalView, now time.Time) []terminalRow {
	var out []terminalRow
	for _, t := range ts {
		r := terminalRow{Device: t.Device, State: "알 수 없음"}
		if st := t.Status; st != nil {
			since := st.Time
			if !t.Received.IsZero() {
				since = t.Received
			}
			r.Since = since.In(firmware.KST).Format("01-02 15:04") + " (" + ago(now.Sub(since)) + " 전)"
			if st.State == "online" {
				r.State = "온라인"
			} else {
				r.State, r.Bad = "오프라인", true
			}
			r.Outbox = fmt.Sprintf("%d건", st.OutboxDepth)
			if st.OutboxDepth > 0 {
				r.Outbox += fmt.Sprintf(", 가장 오래된 것 %s 기다림", ago(time.Duration(st.OldestAgeS*float64(time.Second))))
			}
			r.Roster = fmt.Sprintf("%d판, %s 전", st.RosterRev, ago(time.Duration(st.RosterAgeS*float64(time.Second))))
			r.Reader = "정상"
			if !st.ReaderHealthy {
				r.Reader, r.Bad = "이상: 리더를 확인하세요", true
			}
			if st.ReaderResets > 0 {
				r.Reader += fmt.Sprintf(" (복구 %d회)", st.ReaderResets)
			}
			r.Clock = "맞음"
			if !st.ClockSynced {
				r.Clock = "맞추지 못함: 단말기의 네트워크 시간을 확인하세요"
			}
			r.Version = st.Version
		}
		var trouble []string
		if t.Refused != nil {
			trouble = append(trouble, "포털이 이 단말기의 기록을 받지 않습니다: "+t.Refused.Reason)
		}
		if t.Clash != nil {
			trouble = append(trouble, fmt.Sprintf("같은 단말기 ID를 쓰는 기기가 둘 이상입니다 (%d번 바뀜): SD 카드나 인증서를 복사했는지 확인하세요", t.Clash.Switches))
		}
		if len(trouble) > 0 {
			r.Trouble, r.Bad = strings.Join(trouble, " / "), true
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b terminalRow) int { return strings.Compare(a.Device, b.Device) })
	return out
}

func (s *Server) terminals(w http.ResponseWriter, r *http.Request) {
	c := r.PathValue("centre")
	ts, err := s.o.Terminals(c)
	if err != nil {
		s.o.Logger.Error("web: the terminals", "centre", c, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	v := s.view(r)
	v.Centre, v.Terminals = c, terminalRows(ts, s.o.Now())
	s.render(w, "terminals.html", v, http.StatusOK)
}
