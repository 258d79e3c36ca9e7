package web

import (
	"errors"
	"net/http"
	"slices"

	"kiumtap/firmware"
	"kiumtap/portal/sms"
	"kiumtap/portal/store"
)

// 문자: the parents' texts of a centre, sent, waiting and failed with the
// provider's reason (Q22), and a failed one sent again once its number is
// corrected.

var textKinds = map[string]string{"arrival": "입실", "departure": "퇴실", "auto_check_out": "자동 퇴실", "not_arrived": "미등원"}

var textStates = map[string]string{
	store.JobPending: "보낼 차례", store.JobSending: "보내는 중", store.JobSent: "보냄",
	store.JobFailed: "실패", store.JobHeld: "보류",
}

type textRow struct {
	ID, At, Name, Kind, To, State, Reason string
	Channel                               string // 알림톡, SMS, LMS, with the fallback's reason
	Retriable                             bool
}

var channelNames = map[string]string{sms.ChannelAlimTalk: "알림톡", sms.ChannelSMS: "SMS", sms.ChannelLMS: "LMS"}

// channelOf says how a text went, for staff.
func channelOf(j store.Job) string {
	name := channelNames[j.Channel]
	switch {
	case j.Reporting:
		return "알림톡 (전달 확인 중)"
	case j.Fallback != "" && j.Channel != sms.ChannelAlimTalk:
		return name + " (알림톡 대체: " + j.Fallback + ")"
	case j.Fallback != "":
		return name + " (" + j.Fallback + ")"
	}
	return name
}

// monthChannels counts a centre's texts sent this month by channel.
type monthChannels struct {
	Month                        string
	AlimTalk, SMS, LMS, FellBack int
}

// maskPhone shows a number as staff may see it in a list: 010-****-5678.
func maskPhone(p string) string {
	if len(p) < 8 {
		return "****"
	}
	return p[:3] + "-****-" + p[len(p)-4:]
}

// The page lists a centre's texts of the last textDays days, newest
// first, at most maxTexts.
const (
	textDays = 31
	maxTexts = 200
)

func (s *Server) texts(w http.ResponseWriter, r *http.Request) {
	s.renderTexts(w, r, "", false, http.StatusOK)
}

func (s *Server) renderTexts(w http.ResponseWriter, r *http.Request, msg string, bad bool, code int) {
	c := r.PathValue("centre")
	var jobs []store.Job
	err := s.o.Texts.CentreJobs(r.Context(), c, dayStart(s.o.Now()).AddDate(0, 0, -textDays), func(j store.Job) bool {
		jobs = append(jobs, j)
		return true
	})
	if err != nil {
		s.o.Logger.Error("web: the texts", "centre", c, "err", err)
		http.Error(w, "잠시 뒤에 다시 하세요 (저장소가 답하지 않습니다)", http.StatusServiceUnavailable)
		return
	}
	slices.SortStableFunc(jobs, func(a, b store.Job) int { return b.At.Compare(a.At) })
	src := s.o.Source(c)
	var rows []textRow
	for _, j := range jobs[:min(len(jobs), maxTexts)] {
		name := j.Child
		if src != nil {
			if ch := src.Roster.ChildByID(j.Child); ch != nil {
				name = ch.Name
			}
		}
		state := textStates[j.State]
		if j.Reporting {
			state = "전달 확인 중"
		}
		rows = append(rows, textRow{ID: j.ID, At: j.At.In(firmware.KST).Format("01-02 15:04"), Name: name, Kind: textKinds[j.Kind], To: maskPhone(j.To),
			State: state, Reason: j.Reason, Channel: channelOf(j), Retriable: j.State == store.JobFailed || j.State == store.JobHeld})
	}
	month := dayStart(s.o.Now())
	month = month.AddDate(0, 0, 1-month.Day())
	mc := &monthChannels{Month: month.Format("2006-01")}
	for _, j := range jobs {
		if j.State != store.JobSent || j.SentAt.Before(month) {
			continue
		}
		switch j.Channel {
		case sms.ChannelAlimTalk:
			mc.AlimTalk++
		case sms.ChannelLMS:
			mc.LMS++
		default:
			mc.SMS++
		}
		if j.Fallback != "" && j.Channel != sms.ChannelAlimTalk {
			mc.FellBack++
		}
	}
	v := s.view(r)
	v.Centre, v.Texts, v.Message, v.Bad, v.Channels = c, rows, msg, bad, mc
	s.render(w, "texts.html", v, code)
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	c, u := r.PathValue("centre"), userOf(r)
	id, phone := r.PostFormValue("id"), r.PostFormValue("phone")
	err := s.o.Resend(r.Context(), c, id, phone)
	switch {
	case errors.Is(err, store.ErrNotRetriable):
		s.renderTexts(w, r, "다시 보낼 수 있는 문자가 아닙니다 (실패하거나 보류된 문자만 다시 보냅니다)", true, http.StatusConflict)
	case err != nil:
		s.o.Accounts.Record(r.Context(), u.Name, c, "resend failed", id+": "+err.Error())
		s.renderTexts(w, r, "다시 보내지 못했습니다: "+err.Error(), true, http.StatusBadRequest)
	default:
		s.o.Accounts.Record(r.Context(), u.Name, c, "resend", id+" to "+maskPhone(phone))
		s.renderTexts(w, r, "보호자 번호를 고치고 문자를 다시 보냅니다.", false, http.StatusOK)
	}
}
