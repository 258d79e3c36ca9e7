package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// make run's day, faster: every scripted outcome, every text, every event
// acknowledged.
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
	for _, want := range []string{"texts sent to parents: 8 (failed 0)", "events acknowledged by the portal: 11 of 11", "자동 퇴실", "roster revision 2 applied"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the day's output lacks %q:\n%s", want, out.String())
		}
	}
}
