package source

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic, and what it accepts it writes
// back in a form it accepts again, unchanged. The seed corpus is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Parse(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an accepted source does not marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("an accepted source, written back, is refused: %v\n%s", err, out)
		}
		out2, _ := json.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzImportCSV: no staff list makes ImportCSV panic or change its base,
// and what it accepts is a valid source. The seed corpus is in
// testdata/fuzz/FuzzImportCSV.
func FuzzImportCSV(f *testing.F) {
	base, err := Parse([]byte(minimal))
	if err != nil {
		f.Fatal(err)
	}
	before, _ := json.Marshal(base)
	f.Fuzz(func(t *testing.T, list []byte) {
		s, err := ImportCSV(bytes.NewReader(list), base, testKey, importNow)
		if after, _ := json.Marshal(base); !bytes.Equal(before, after) {
			t.Fatal("ImportCSV changed its base")
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "source: ") {
				t.Fatalf("an error that does not say where it comes from: %v", err)
			}
			return
		}
		if len(s.Roster.Children) == 0 {
			t.Fatal("accepted a list of no children")
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("an imported source is refused: %v\n%s", err, out)
		}
	})
}
