package firmware

import "time"

// Language of the screen.
type Language string

// Languages.
const (
	Korean  Language = "ko"
	English Language = "en"
)

// Feedback is what the terminal shows and sounds for a tap: a named
// LED/buzzer pattern (package indicator plays it) and up to three lines of
// screen text.
type Feedback struct {
	Pattern string
	Lines   []string
}

// Pattern names; each outcome has its own colour and beeps.
const (
	PatternArrival   = "arrival"    // green, one beep
	PatternDeparture = "departure"  // green, two beeps
	PatternDuplicate = "duplicate"  // green, one low blip
	PatternNoData    = "no_data"    // amber, three beeps
	PatternNotInUse  = "not_in_use" // amber, one long beep
	PatternUnknown   = "unknown"    // red, two beeps
	PatternReplaced  = "replaced"   // red, three beeps
	PatternError     = "error"      // red blinking, long beep
	PatternEnrol     = "enrol"      // amber steady, no sound: enrolment open
	PatternBound     = "bound"      // green, one long beep: a card bound
)

// FeedbackFor says what to show for a decision. name is the child's
// display name (masked here); at is the tap's time.
func FeedbackFor(d Decision, name string, at time.Time, lang Language) Feedback {
	ko := lang != English
	t := ClockOf(at).String()
	who := MaskName(name)
	pick := func(k, e string) string {
		if ko {
			return k
		}
		return e
	}
	switch d.Outcome {
	case CheckIn:
		return Feedback{PatternArrival, []string{who, pick("입실 "+t, "In "+t)}}
	case CheckOut:
		return Feedback{PatternDeparture, []string{who, pick("퇴실 "+t, "Out "+t)}}
	case Duplicate:
		return Feedback{PatternDuplicate, []string{who, pick("이미 찍었어요", "Already recorded")}}
	case NoData:
		if d.Reason == ReasonCentreClosed {
			return Feedback{PatternNoData, []string{pick("오늘은 운영일이", "The centre is"), pick("아닙니다 (노데이터)", "closed (no data)")}}
		}
		return Feedback{PatternNoData, []string{pick("오늘은 이용일이", "Not a usage day"), pick("아닙니다 (노데이터)", "(no data)")}}
	case NotInUse:
		switch d.Reason {
		case ReasonScheduled:
			return Feedback{PatternNotInUse, []string{pick("이용예정 상태입니다", "Booking not in use"), pick("선생님께 알려주세요", "Tell a teacher")}}
		case ReasonApplied:
			return Feedback{PatternNotInUse, []string{pick("신청 상태입니다", "Booking pending"), pick("선생님께 알려주세요", "Tell a teacher")}}
		}
		return Feedback{PatternNotInUse, []string{pick("이용중인 예약이", "No booking"), pick("없습니다", "in use"), pick("선생님께 알려주세요", "Tell a teacher")}}
	case UnknownCard:
		return Feedback{PatternUnknown, []string{pick("등록되지 않은", "Card not"), pick("카드입니다", "registered")}}
	case ReplacedCard:
		if d.Reason == ReasonCardConflict {
			return Feedback{PatternReplaced, []string{pick("다른 곳에 등록된", "Card registered"), pick("카드입니다", "elsewhere"), pick("선생님께 알려주세요", "Tell a teacher")}}
		}
		return Feedback{PatternReplaced, []string{pick("사용할 수 없는", "Card no longer"), pick("카드입니다", "valid"), pick("(교체·분실 카드)", "(replaced or lost)")}}
	}
	return ErrorFeedback(lang)
}

// ErrorFeedback is shown when a tap could not be recorded (a full disk, a
// broken store): the child must tap again or tell a teacher.
func ErrorFeedback(lang Language) Feedback {
	if lang == English {
		return Feedback{PatternError, []string{"Not recorded", "Tell a teacher"}}
	}
	return Feedback{PatternError, []string{"기록하지 못했어요", "선생님께 알려주세요"}}
}

// EnrolFeedback shows an enrolment screen (Step.Screen).
func EnrolFeedback(lines []string) Feedback { return Feedback{PatternEnrol, lines} }

// BoundFeedback confirms a card bound to a child.
func BoundFeedback(name string, replaced bool) Feedback {
	l := []string{"카드 등록 완료", MaskName(name)}
	if replaced {
		l = append(l, "이전 카드는 사용 중지")
	}
	return Feedback{PatternBound, l}
}

// RefusedFeedback shows why an enrolment was refused, in a word for staff.
func RefusedFeedback(why Reason) Feedback {
	line := map[Reason]string{
		RefuseUnknownChild:     "명단에 없는 아이",
		RefuseStaffCard:        "교사 카드입니다",
		RefuseCardOfOther:      "다른 아이의 카드",
		RefuseAlreadyBound:     "이미 등록된 카드",
		RefuseNoActiveCard:     "등록된 카드 없음",
		RefuseScheduledBooking: "이용예정 예약 있음",
		RefuseBoundElsewhere:   "다른 곳에 등록된 카드",
	}[why]
	if line == "" {
		line = string(why)
	}
	return Feedback{PatternUnknown, []string{"등록할 수 없음", line, "선생님께 문의"}}
}
