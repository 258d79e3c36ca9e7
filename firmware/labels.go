package firmware

// Label is how people read an outcome, a reason or a flag: in Korean, in
// the words of the portal's FAQ (노데이터, 이용예정, 이용중, 미승인,
// 이용취소, 종료, 운영 종료), and in English. The screen, kiumctl, the
// portal's views and the exports all show these, never the codes alone.
type Label struct{ Ko, En string }

// In returns the label in a language.
func (l Label) In(lang Language) string {
	if lang == English {
		return l.En
	}
	return l.Ko
}

// Label of an outcome; an outcome this code does not know reads as its
// code.
func (o Outcome) Label() Label { return labelOf(outcomeLabels, o) }

// Label of a reason; a reason this code does not know reads as its code.
func (r Reason) Label() Label { return labelOf(reasonLabels, r) }

// Label of a flag; a flag this code does not know reads as its code.
func (f Flag) Label() Label { return labelOf(flagLabels, f) }

func labelOf[K ~string](m map[K]Label, k K) Label {
	if l, ok := m[k]; ok {
		return l
	}
	return Label{string(k), string(k)}
}

var outcomeLabels = map[Outcome]Label{
	CheckIn:      {"입실", "arrival"},
	CheckOut:     {"퇴실", "departure"},
	Duplicate:    {"중복 태그", "tapped twice"},
	NoData:       {"노데이터", "no data"},
	NotInUse:     {"이용중 아님", "not in use"},
	UnknownCard:  {"미등록 카드", "unknown card"},
	ReplacedCard: {"사용 중지 카드", "card not valid"},
	AutoCheckOut: {"자동 퇴실", "automatic departure"},
	CardBound:    {"카드 등록", "card registered"},
}

var reasonLabels = map[Reason]Label{
	ReasonArrival:          {"입실", "arrival"},
	ReasonDeparture:        {"퇴실", "departure"},
	ReasonWithinWindow:     {"1분 안에 다시 찍음", "tapped again at once"},
	ReasonCentreClosed:     {"운영일 아님", "closed today"},
	ReasonNotUsageDay:      {"이용일 아님", "not a usage day"},
	ReasonNoBooking:        {"예약 없음", "no booking"},
	ReasonApplied:          {"신청 상태", "booking applied"},
	ReasonScheduled:        {"이용예정 상태", "booking scheduled"},
	ReasonRejected:         {"미승인", "booking rejected"},
	ReasonCancelled:        {"이용취소", "booking cancelled"},
	ReasonEnded:            {"이용 종료", "booking ended"},
	ReasonPeriodOver:       {"이용기간 지남", "period over"},
	ReasonNotYetStarted:    {"이용기간 전", "not started yet"},
	ReasonCardUnbound:      {"등록되지 않은 카드", "card not registered"},
	ReasonCardReplaced:     {"교체된 카드", "card replaced"},
	ReasonCardRevoked:      {"사용 중지된 카드", "card revoked"},
	ReasonCardConflict:     {"다른 곳에 등록된 카드", "used elsewhere"},
	ReasonChildNotInRoster: {"명단에 없는 아이", "child not in roster"},
	ReasonClosingTime:      {"운영 종료 시각", "closing time"},
	ReasonDayRolledOver:    {"날짜 바뀜", "the day ended"},
	ReasonAfterClosing:     {"운영 종료", "after closing time"},
	ReasonCorrectsAutoExit: {"자동 퇴실 후 퇴실", "left after auto-out"},
	// Card enrolment: the flows, and the refusals (RefuseBoundElsewhere
	// is ReasonCardConflict).
	Reason(FlowDevice):     {"단말기에서 등록", "registered at the terminal"},
	Reason(FlowPortal):     {"포털에서 등록", "registered from the portal"},
	RefuseUnknownChild:     {"명단에 없는 아이", "child not in the roster"},
	RefuseStaffCard:        {"교사 카드", "a staff card"},
	RefuseCardOfOther:      {"다른 아이의 카드", "another child's card"},
	RefuseAlreadyBound:     {"이미 등록된 카드", "card already registered"},
	RefuseNoActiveCard:     {"등록된 카드 없음", "no active card"},
	RefuseScheduledBooking: {"이용예정 예약 있음", "a booking is scheduled (이용예정)"},
	// The portal's own refusals of a binding (portal/bridge).
	"no_source": {"센터 명단 파일 없음", "no roster source for the centre"},
	"invalid":   {"명단이 맞지 않게 됨", "would make the roster invalid"},
}

var flagLabels = map[Flag]Label{
	FlagEarly:       {"예약시간 전 입실", "arrived before the booked time"},
	FlagLate:        {"예약시간 후 입실", "arrived after the booked time"},
	FlagRosterStale: {"명단 갱신 지연", "roster out of date"},
	FlagAuto:        {"자동 퇴실", "automatic departure"},
}
