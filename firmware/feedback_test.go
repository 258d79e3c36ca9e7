package firmware

import (
	"strings"
	"testing"
)

func TestFeedbackPerOutcome(t *testing.T) {
	at := at("2026-11-23 15:02:00")
	seen := map[string]Outcome{}
	for _, d := range []Decision{
		{Outcome: CheckIn}, {Outcome: CheckOut}, {Outcome: Duplicate},
		{Outcome: NoData, Reason: ReasonNotUsageDay}, {Outcome: NotInUse, Reason: ReasonScheduled},
		{Outcome: UnknownCard}, {Outcome: ReplacedCard, Reason: ReasonCardReplaced},
	} {
		for _, lang := range []Language{Korean, English} {
			f := FeedbackFor(d, "김민준", at, lang)
			if len(f.Lines) == 0 || len(f.Lines) > 3 {
				t.Errorf("%s/%s: %d lines", d.Outcome, lang, len(f.Lines))
			}
			if prev, ok := seen[f.Pattern]; ok && prev != d.Outcome {
				t.Errorf("%s and %s share pattern %s", prev, d.Outcome, f.Pattern)
			}
			seen[f.Pattern] = d.Outcome
		}
	}
	if f := FeedbackFor(Decision{Outcome: CheckIn}, "김민준", at, Korean); f.Lines[0] != "김*준" || f.Lines[1] != "입실 15:02" {
		t.Errorf("arrival screen %q", f.Lines)
	}
	for _, tc := range []struct {
		d    Decision
		name string
		want string
	}{
		{Decision{Outcome: NoData, Reason: ReasonNotUsageDay}, "김민준", "김*준|이용일 아님|(노데이터)"},
		{Decision{Outcome: NoData, Reason: ReasonAfterClosing}, "김민준", "김*준|운영 종료|(노데이터)"},
		{Decision{Outcome: NotInUse, Reason: ReasonScheduled}, "김민준", "김*준|이용예정 상태|선생님께 알려주세요"},
		{Decision{Outcome: NotInUse, Reason: ReasonCancelled}, "김민준", "김*준|이용취소|선생님께 알려주세요"},
		{Decision{Outcome: NotInUse, Reason: ReasonScheduled}, "", "이용예정 상태|선생님께 알려주세요"},
		{Decision{Outcome: ReplacedCard, Reason: ReasonCardConflict}, "김민준", "김*준|다른 곳에 등록된 카드|선생님께 알려주세요"},
		{Decision{Outcome: CheckOut, Reason: ReasonCorrectsAutoExit}, "김민준", "김*준|퇴실 15:02"},
		{Decision{Outcome: UnknownCard, Reason: ReasonCardUnbound}, "", "등록되지 않은|카드입니다"},
	} {
		if f := FeedbackFor(tc.d, tc.name, at, Korean); strings.Join(f.Lines, "|") != tc.want {
			t.Errorf("%s/%s: %q, want %q", tc.d.Outcome, tc.d.Reason, strings.Join(f.Lines, "|"), tc.want)
		}
	}
	// Each refusal reason has its own screen: staff can tell an ended
	// booking from a cancelled one at the door.
	screens := map[string]Reason{}
	for _, why := range []Reason{ReasonNoBooking, ReasonApplied, ReasonScheduled, ReasonRejected, ReasonCancelled, ReasonEnded, ReasonPeriodOver, ReasonNotYetStarted} {
		f := strings.Join(FeedbackFor(Decision{Outcome: NotInUse, Reason: why}, "김민준", at, Korean).Lines, "|")
		if other, ok := screens[f]; ok {
			t.Errorf("%s and %s share the screen %q", other, why, f)
		}
		screens[f] = why
	}
}
