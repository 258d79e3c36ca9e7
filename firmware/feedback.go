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
