package firmware_test

import (
	"testing"

	"kiumtap/firmware"
	"kiumtap/hal/indicator"
)

// Every pattern the decisions ask for exists in the indicator.
func TestPatternsExist(t *testing.T) {
	for _, p := range []string{firmware.PatternArrival, firmware.PatternDeparture, firmware.PatternDuplicate,
		firmware.PatternNoData, firmware.PatternNotInUse, firmware.PatternUnknown, firmware.PatternReplaced, firmware.PatternError} {
		if _, ok := indicator.Patterns[indicator.Pattern(p)]; !ok {
			t.Errorf("indicator has no pattern %q", p)
		}
	}
}
