package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// make run's day, faster: every scripted outcome, a card bound at the door
// and taken into the portal's roster, every text, every event acknowledged.
func TestScriptedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a whole day")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-script", "../../testdata/demo/day.json", "-speed", "1500"}, strings.NewReader(""), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"texts sent to parents: 8 (failed 0)", "events acknowledged by the portal: 13 of 13", "자동 퇴실", "roster revision 2 applied",
		"카드 등록 완료 / 이*연", "takes in the binding", "cards bound at the door: 1", "등록 취소"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the day's output lacks %q:\n%s", want, out.String())
		}
	}
}
