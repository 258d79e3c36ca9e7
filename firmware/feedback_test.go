package firmware

import (
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
	if f := FeedbackFor(Decision{Outcome: NoData}, "", at, Korean); f.Lines[1] != "아닙니다 (노데이터)" {
		t.Errorf("no-data screen %q", f.Lines)
	}
	if f := FeedbackFor(Decision{Outcome: NotInUse, Reason: ReasonScheduled}, "", at, Korean); f.Lines[0] != "이용예정 상태입니다" || f.Lines[1] != "선생님께 알려주세요" {
		t.Errorf("scheduled screen %q", f.Lines)
	}
	if f := FeedbackFor(Decision{Outcome: UnknownCard}, "", at, Korean); f.Lines[0]+" "+f.Lines[1] != "등록되지 않은 카드입니다" {
		t.Errorf("unknown card screen %q", f.Lines)
	}
}
