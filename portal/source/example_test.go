package source

import "testing"

// The documented example of a centre's source (docs/examples, shown in the
// README) loads as it is: a new operator can start from it.
func TestDocumentedExample(t *testing.T) {
	s, err := Load("../../docs/examples/mangwon1.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Roster.Children) != 2 || len(s.Roster.Bookings) != 2 || len(s.Roster.Staff) != 1 {
		t.Fatalf("roster %+v", s.Roster)
	}
	if g := s.Guardians["c1"]; len(g) != 2 || g[0].Phone != "01012345678" || !g[0].Texts {
		t.Fatalf("guardians of c1: %+v", g)
	}
	if p := s.Phones("c1"); len(p) != 1 {
		t.Fatalf("c1 texts %v, want the one guardian who wants texts", p)
	}
}
