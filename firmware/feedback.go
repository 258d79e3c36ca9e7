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
// display name (masked here; "" when no child is known); at is the tap's
// time. A refusal shows the child, the reason's label (Reason.Label: the
// same words kiumctl and the portal show) and what to do.
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
	why := d.Reason.Label().In(lang)
	tell := pick("선생님께 알려주세요", "Tell a teacher")
	switch d.Outcome {
	case CheckIn:
		return Feedback{PatternArrival, []string{who, pick("입실 "+t, "In "+t)}}
	case CheckOut:
		return Feedback{PatternDeparture, []string{who, pick("퇴실 "+t, "Out "+t)}}
	case Duplicate:
		return Feedback{PatternDuplicate, []string{who, pick("이미 찍었어요", "Already recorded")}}
	case NoData:
		return Feedback{PatternNoData, lines(who, why, pick("(노데이터)", "(no data)"))}
	case NotInUse:
		return Feedback{PatternNotInUse, lines(who, why, tell)}
	case UnknownCard:
		if d.Reason == ReasonChildNotInRoster {
			return Feedback{PatternUnknown, lines(why, tell)}
		}
		return Feedback{PatternUnknown, []string{pick("등록되지 않은", "Card not"), pick("카드입니다", "registered")}}
	case ReplacedCard:
		return Feedback{PatternReplaced, lines(who, why, tell)}
	}
	return ErrorFeedback(lang)
}

// lines drops the empty ones (no child known).
func lines(l ...string) []string {
	out := l[:0]
	for _, s := range l {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ErrorFeedback is shown when a tap could not be recorded (a full disk, a
// broken store): the child must tap again or tell a teacher.
func ErrorFeedback(lang Language) Feedback {
	if lang == English {
		return Feedback{PatternError, []string{"Not recorded", "Tell a teacher"}}
	}
	return Feedback{PatternError, []string{"기록하지 못했어요", "선생님께 알려주세요"}}
}

// ReaderFaultFeedback is shown while the card reader does not answer
// (unplugged, a loose wire): taps cannot be read, so a child must tell a
// teacher; kiumtapd keeps retrying the reader and says when it is back.
func ReaderFaultFeedback(lang Language) Feedback {
	if lang == English {
		return Feedback{PatternError, []string{"Card reader fault", "Tell a teacher"}}
	}
	return Feedback{PatternError, []string{"카드 리더 고장", "선생님께 알려주세요"}}
}

// ReaderBackFeedback is shown when the card reader answers again.
func ReaderBackFeedback(lang Language) Feedback {
	if lang == English {
		return Feedback{PatternBound, []string{"Card reader OK", "Tap your card"}}
	}
	return Feedback{PatternBound, []string{"카드 리더 정상", "카드를 대주세요"}}
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
	return Feedback{PatternUnknown, []string{"등록할 수 없음", why.Label().Ko, "선생님께 문의"}}
}
