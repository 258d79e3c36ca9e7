package source

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/portal/store/boltstore"
)

// sourcesKind is one implementation of Sources, for the tests below that
// run the same cases against each.
type sourcesKind struct {
	name string
	// open returns n values over one new, empty place: n Dir values of
	// one directory, or n Stored values of one store.
	open func(t *testing.T, n int) []Sources
}

var sourcesKinds = []sourcesKind{
	{"Dir", func(t *testing.T, n int) []Sources {
		t.Helper()
		path := t.TempDir()
		out := make([]Sources, n)
		for i := range out {
			out[i] = Dir(path)
		}
		return out
	}},
	{"Stored", func(t *testing.T, n int) []Sources {
		t.Helper()
		c := openStoredContract(t)
		out := make([]Sources, n)
		for i := range out {
			out[i] = Stored(c)
		}
		return out
	}},
}

// openStoredContract opens a new bbolt store, closed when the test ends.
func openStoredContract(t *testing.T) StoredStore {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatalf("opening the bbolt store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the bbolt store: %v", err)
		}
	})
	return s.Contract()
}

// forEachSources runs fn as a subtest for each implementation.
func forEachSources(t *testing.T, fn func(t *testing.T, k sourcesKind)) {
	t.Helper()
	for _, k := range sourcesKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

// sourceFor is the minimal source (source_test.go) as centre id's, with
// its first n children (1 or 2): the count tells a source's versions
// apart.
func sourceFor(t *testing.T, id string, n int) *Source {
	t.Helper()
	raw := strings.Replace(minimal, `"id": "m1"`, fmt.Sprintf("%q: %q", "id", id), 1)
	s, err := Parse([]byte(raw))
	if err != nil {
		t.Fatalf("the source of %s: %v", id, err)
	}
	if n < 1 || n > len(s.Roster.Children) {
		t.Fatalf("sourceFor(%s, %d): the minimal source has 1 to %d children", id, n, len(s.Roster.Children))
	}
	for _, c := range s.Roster.Children[n:] {
		delete(s.Guardians, c.ID)
	}
	s.Roster.Children = s.Roster.Children[:n]
	if err := s.Validate(); err != nil {
		t.Fatalf("the source of %s with %d children: %v", id, n, err)
	}
	return s
}

// describe names sources by centre and children, in the centres' order:
// "m1/2 m2/1".
func describe(srcs []*Source) string {
	var out []string
	for _, s := range srcs {
		out = append(out, fmt.Sprintf("%s/%d", s.Roster.Centre.ID, len(s.Roster.Children)))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// wantChanged calls Changed on srcs and checks it returns no error and the
// sources want describes (see describe; "" for none).
func wantChanged(t *testing.T, who string, srcs Sources, want string) {
	t.Helper()
	got, err := srcs.Changed(context.Background())
	if err != nil {
		t.Fatalf("%s: Changed: %v", who, err)
	}
	if d := describe(got); d != want {
		t.Fatalf("%s: Changed returned [%s], want [%s]", who, d, want)
	}
}

// wantGet calls Get and checks the source it returns: want "" for none,
// else as describe.
func wantGet(t *testing.T, who string, srcs Sources, centre, want string) {
	t.Helper()
	got, err := srcs.Get(context.Background(), centre)
	if err != nil {
		t.Fatalf("%s: Get(%s): %v", who, centre, err)
	}
	switch {
	case got == nil && want == "":
	case got == nil:
		t.Fatalf("%s: Get(%s) = nil, want %s", who, centre, want)
	case want == "":
		t.Fatalf("%s: Get(%s) = %s, want nil", who, centre, describe([]*Source{got}))
	case describe([]*Source{got}) != want:
		t.Fatalf("%s: Get(%s) = %s, want %s", who, centre, describe([]*Source{got}), want)
	}
}

func mustWrite(t *testing.T, who string, srcs Sources, s *Source) {
	t.Helper()
	if err := srcs.Write(context.Background(), s); err != nil {
		t.Fatalf("%s: Write(%s): %v", who, describe([]*Source{s}), err)
	}
}

// A fresh value's first Changed returns every source, then nothing until
// another value writes; a value's own writes are not Changed for it.
func TestSourcesChanged(t *testing.T) {
	forEachSources(t, func(t *testing.T, k sourcesKind) {
		v := k.open(t, 3)
		a, b, c := v[0], v[1], v[2]
		wantChanged(t, "B, with no sources yet", b, "")
		mustWrite(t, "A", a, sourceFor(t, "m1", 2))
		mustWrite(t, "A", a, sourceFor(t, "m2", 2))
		wantChanged(t, "A, after its own writes", a, "")
		wantChanged(t, "B, after A's writes", b, "m1/2 m2/2")
		wantChanged(t, "B, again", b, "")
		wantChanged(t, "C, fresh", c, "m1/2 m2/2")
		wantChanged(t, "C, again", c, "")

		// A rewrites m1: once for B and C, never for A.
		mustWrite(t, "A", a, sourceFor(t, "m1", 1))
		wantChanged(t, "A, after rewriting m1", a, "")
		wantChanged(t, "B, after A rewrote m1", b, "m1/1")
		wantChanged(t, "B, again", b, "")
		wantChanged(t, "C, after A rewrote m1", c, "m1/1")

		// B, which has read m2 (Changed), writes it: once for A.
		mustWrite(t, "B", b, sourceFor(t, "m2", 1))
		wantChanged(t, "B, after its own write", b, "")
		wantChanged(t, "A, after B wrote m2", a, "m2/1")
		wantChanged(t, "A, again", a, "")
		wantChanged(t, "C, after B wrote m2", c, "m2/1")

		// Writing the same source again is a change all the same.
		mustWrite(t, "A", a, sourceFor(t, "m2", 1))
		wantChanged(t, "B, after A wrote m2 again unchanged", b, "m2/1")
	})
}

func TestSourcesGet(t *testing.T) {
	forEachSources(t, func(t *testing.T, k sourcesKind) {
		v := k.open(t, 2)
		a, b := v[0], v[1]
		wantGet(t, "A, with no sources", a, "m1", "")
		mustWrite(t, "A", a, sourceFor(t, "m1", 2))
		wantGet(t, "A, after writing m1", a, "m1", "m1/2")
		wantGet(t, "B, after A wrote m1", b, "m1", "m1/2")
		wantGet(t, "B, of another centre", b, "m2", "")
		mustWrite(t, "A", a, sourceFor(t, "m1", 1))
		wantGet(t, "B, after A rewrote m1", b, "m1", "m1/1")
		// What Get returns is validated: its indexes are built.
		s, err := b.Get(context.Background(), "m1")
		if err != nil || s == nil {
			t.Fatalf("Get(m1): %v, %v", s, err)
		}
		if len(s.Roster.BookingsOf("c1")) != 1 {
			t.Errorf("Get(m1): c1 has %d bookings, want 1 (the roster's indexes not built?)", len(s.Roster.BookingsOf("c1")))
		}
		if got := s.Phones("c1"); !slices.Equal(got, []string{"01012345678"}) {
			t.Errorf("Get(m1): c1's phones %q, want the guardian's, as digits", got)
		}
	})
}

// Write refuses a source that does not validate, and stores nothing.
func TestSourcesWriteInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*Source)
		want  string
	}{
		{"no centre name", func(s *Source) { s.Roster.Centre.Name = "" }, "centre.name: missing"},
		{"no terms", func(s *Source) { s.Roster.Centre.Terms = nil }, "centre.terms: no terms"},
		{"bad phone", func(s *Source) { s.Guardians["c1"][0].Phone = "02-123-4567" }, "not a Korean mobile number"},
		{"guardian of no child", func(s *Source) { s.Guardians["c9"] = s.Guardians["c1"] }, `no child "c9"`},
		{"no roster", func(s *Source) { s.Roster = nil }, "roster: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachSources(t, func(t *testing.T, k sourcesKind) {
				v := k.open(t, 2)
				a, b := v[0], v[1]
				s := sourceFor(t, "m1", 2)
				tc.spoil(s)
				err := a.Write(context.Background(), s)
				if err == nil {
					t.Fatal("Write of an invalid source: no error")
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Write: %v\nlacks %q", err, tc.want)
				}
				wantGet(t, "A, after its refused write", a, "m1", "")
				wantChanged(t, "B, after A's refused write", b, "")
				// The refusal leaves the value writing.
				mustWrite(t, "A", a, sourceFor(t, "m1", 2))
				wantChanged(t, "B, after A's write", b, "m1/2")
			})
		})
	}
}

// A stored source is written only over the version its writer last read
// or wrote.
func TestStoredCompareAndSet(t *testing.T) {
	ctx := context.Background()
	c := openStoredContract(t)
	a, b, obs := Stored(c), Stored(c), Stored(c)

	wantMoved := func(who string, srcs Sources, s *Source) {
		t.Helper()
		err := srcs.Write(ctx, s)
		if !errors.Is(err, ErrSourceMoved) {
			t.Fatalf("%s: Write over a source it has not read: %v, want ErrSourceMoved", who, err)
		}
		if !strings.Contains(err.Error(), "m1") {
			t.Errorf("%s: the error %q does not name the centre", who, err)
		}
	}

	// Neither has a source for m1 yet: A's write makes one, B's is refused.
	wantGet(t, "A", a, "m1", "")
	wantGet(t, "B", b, "m1", "")
	mustWrite(t, "A", a, sourceFor(t, "m1", 2))
	wantMoved("B, after A wrote m1", b, sourceFor(t, "m1", 1))
	wantGet(t, "A, after B's refused write", a, "m1", "m1/2")
	wantChanged(t, "an observer", obs, "m1/2")
	// B reads m1 again (Get): its write goes through.
	wantGet(t, "B, again", b, "m1", "m1/2")
	mustWrite(t, "B", b, sourceFor(t, "m1", 1))
	wantChanged(t, "the observer, after B's write", obs, "m1/1")

	// Both have read m1 (A wrote version 1, B read version 1 then wrote
	// version 2): A is refused; after Changed, its write goes through.
	wantMoved("A, after B wrote m1", a, sourceFor(t, "m1", 2))
	wantChanged(t, "the observer, after A's refused write", obs, "")
	wantChanged(t, "A", a, "m1/1")
	mustWrite(t, "A", a, sourceFor(t, "m1", 2))
	wantChanged(t, "the observer, after A's write", obs, "m1/2")

	// Both Get; A writes; B is refused; after Changed it writes.
	wantGet(t, "A", a, "m1", "m1/2")
	wantGet(t, "B", b, "m1", "m1/2")
	mustWrite(t, "A", a, sourceFor(t, "m1", 1))
	wantMoved("B, after A wrote m1", b, sourceFor(t, "m1", 2))
	wantChanged(t, "B", b, "m1/1")
	mustWrite(t, "B", b, sourceFor(t, "m1", 2))
	wantGet(t, "A", a, "m1", "m1/2")

	// A fresh value, which has read nothing, may not replace a source.
	wantMoved("a fresh value", Stored(c), sourceFor(t, "m1", 1))
	// Other centres are apart: B's write of m2 does not need m1 read.
	mustWrite(t, "B", b, sourceFor(t, "m2", 1))
}

// Changed refuses the files of a directory that do not read, or are not
// named for their centre, and returns the good ones.
func TestDirChangedRefuses(t *testing.T) {
	path := t.TempDir()
	w, r := Dir(path), Dir(path)
	mustWrite(t, "the writer", w, sourceFor(t, "m1", 2))
	bad := filepath.Join(path, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"roster": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	misnamed := filepath.Join(path, "other.json")
	if err := Write(misnamed, sourceFor(t, "m2", 1)); err != nil {
		t.Fatal(err)
	}
	// Files not named *.json are not sources.
	if err := os.WriteFile(filepath.Join(path, "notes.txt"), []byte("not a source"), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := r.Changed(context.Background())
	if d := describe(got); d != "m1/2" {
		t.Errorf("Changed returned [%s], want the good file's [m1/2]", d)
	}
	if err == nil {
		t.Fatal("Changed: no error for the bad and the misnamed file")
	}
	msg := err.Error()
	for _, want := range []string{
		bad,
		"ends too early",
		misnamed + ` holds centre "m2"`,
		"name the file m2.json",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Changed's error\n%s\nlacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "notes.txt") {
		t.Errorf("Changed's error names notes.txt, which is not a source: %s", msg)
	}

	// Refused once: not again until the files change.
	wantChanged(t, "the reader, again", r, "")
	// The misnamed file renamed is taken.
	if err := os.Rename(misnamed, filepath.Join(path, "m2.json")); err != nil {
		t.Fatal(err)
	}
	wantChanged(t, "the reader, after the rename", r, "m2/1")
	// The bad file mended is taken.
	if err := Write(bad, sourceFor(t, "bad", 1)); err != nil {
		t.Fatal(err)
	}
	wantChanged(t, "the reader, after the mend", r, "bad/1")

	// A directory that is not there is an error.
	if _, err := Dir(filepath.Join(path, "none")).Changed(context.Background()); err == nil {
		t.Error("Changed of a missing directory: no error")
	}
}

type holdResult struct {
	release func()
	err     error
}

// holdAsync calls srcs.Hold in a goroutine, its result sent on the
// channel returned.
func holdAsync(ctx context.Context, srcs Sources) <-chan holdResult {
	done := make(chan holdResult, 1)
	go func() {
		r, err := srcs.Hold(ctx)
		done <- holdResult{r, err}
	}()
	return done
}

// notYet checks that done has nothing, for a short while.
func notYet(t *testing.T, what string, done <-chan holdResult) {
	t.Helper()
	select {
	case r := <-done:
		if r.release != nil {
			r.release()
		}
		t.Fatalf("%s returned (error %v) while another holds", what, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

// returns waits for done, and checks it holds.
func returns(t *testing.T, what string, done <-chan holdResult) func() {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		if r.release == nil {
			t.Fatalf("%s: no release", what)
		}
		return r.release
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return once released", what)
	}
	return nil
}

func TestSourcesHold(t *testing.T) {
	forEachSources(t, func(t *testing.T, k sourcesKind) {
		ctx := context.Background()
		v := k.open(t, 3)
		a, b, c := v[0], v[1], v[2]
		releaseA, err := a.Hold(ctx)
		if err != nil {
			t.Fatalf("A's Hold: %v", err)
		}
		bDone := holdAsync(ctx, b)
		notYet(t, "B's Hold", bDone)
		releaseA()
		releaseB := returns(t, "B's Hold", bDone)

		// A's second release does not let C in while B holds.
		releaseA()
		cDone := holdAsync(ctx, c)
		notYet(t, "C's Hold, after A released twice", cDone)
		releaseB()
		releaseB()
		releaseC := returns(t, "C's Hold", cDone)
		releaseC()

		// A value holds again once it released.
		releaseA, err = a.Hold(ctx)
		if err != nil {
			t.Fatalf("A's second Hold: %v", err)
		}
		releaseA()
	})
}

// Stored's Hold waits no longer than its ctx.
func TestStoredHoldCtx(t *testing.T) {
	c := openStoredContract(t)
	a, b := Stored(c), Stored(c)
	releaseA, err := a.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer releaseA()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	release, err := b.Hold(ctx)
	if err == nil {
		release()
		t.Fatal("B's Hold returned no error while A holds")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("B's Hold: %v, want one wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("B's Hold took %v with a 100 ms deadline", d)
	}
	if release != nil {
		t.Error("B's Hold failed but returned a release")
	}
	// A push waits for the sources no longer either.
	file := writeSourceFile(t, sourceFor(t, "m1", 1))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := PushTo(ctx2, b, "", "", file, importNow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PushTo while A holds: %v, want one wrapping context.DeadlineExceeded", err)
	}
	wantGet(t, "A", a, "m1", "")
}

// writeSourceFile writes s as a source file (JSON) in a new directory.
func writeSourceFile(t *testing.T, s *Source) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), s.Roster.Centre.ID+"-push.json")
	if err := Write(path, s); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPushTo(t *testing.T) {
	forEachSources(t, func(t *testing.T, k sourcesKind) {
		ctx := context.Background()
		v := k.open(t, 2)
		a, b := v[0], v[1]
		keyHex := hex.EncodeToString(testKey)
		csv := filepath.Join(t.TempDir(), "staff.CSV")
		if err := os.WriteFile(csv, []byte(staffList), 0o600); err != nil {
			t.Fatal(err)
		}

		// A CSV with no source to update.
		_, err := PushTo(ctx, a, "mangwon1", keyHex, csv, importNow)
		if err == nil {
			t.Fatal("a CSV push with no source for the centre: no error")
		}
		for _, want := range []string{"the current source of mangwon1", a.String() + " has none", "push the centre's source (JSON) first"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("a CSV push with no source: %v\nlacks %q", err, want)
			}
		}
		if _, err := PushTo(ctx, a, "", keyHex, csv, importNow); err == nil || !strings.Contains(err.Error(), "name the centre") {
			t.Errorf("a CSV push with no centre: %v", err)
		}
		wantChanged(t, "B, after the refused pushes", b, "")

		// A source (JSON) is written.
		src, err := PushTo(ctx, a, "", "", filepath.Join("testdata", "mangwon1.json"), importNow)
		if err != nil {
			t.Fatalf("pushing testdata/mangwon1.json: %v", err)
		}
		if src.Roster.Centre.ID != "mangwon1" {
			t.Errorf("PushTo returned the source of %q", src.Roster.Centre.ID)
		}
		wantChanged(t, "B, after the JSON push", b, "mangwon1/6")
		wantChanged(t, "A, after its own push", a, "")

		// A source (JSON) for another centre than the one named.
		m1 := writeSourceFile(t, sourceFor(t, "m1", 2))
		_, err = PushTo(ctx, a, "mangwon1", "", m1, importNow)
		if err == nil || !strings.Contains(err.Error(), `the source is of centre "m1", not "mangwon1"`) {
			t.Errorf("a JSON push naming another centre: %v", err)
		}
		wantGet(t, "B", b, "m1", "")
		wantGet(t, "B", b, "mangwon1", "mangwon1/6")
		wantChanged(t, "B, after the refused push", b, "")
		// Named for its own centre, it goes.
		if _, err := PushTo(ctx, a, "m1", "", m1, importNow); err != nil {
			t.Fatalf("pushing m1's source as m1: %v", err)
		}
		wantChanged(t, "B, after m1's push", b, "m1/2")

		// A CSV updates the centre's source: c01, c02, c06 and c07.
		src, err = PushTo(ctx, a, "mangwon1", keyHex, csv, importNow)
		if err != nil {
			t.Fatalf("pushing the staff list: %v", err)
		}
		if got := describe([]*Source{src}); got != "mangwon1/4" {
			t.Errorf("the staff list's push returned %s, want mangwon1/4", got)
		}
		wantChanged(t, "B, after the CSV push", b, "mangwon1/4")
		if s, err := b.Get(ctx, "mangwon1"); err != nil || s == nil {
			t.Fatalf("B: Get(mangwon1): %v, %v", s, err)
		} else if got := s.Phones("c07"); !slices.Equal(got, []string{"01077778888"}) {
			t.Errorf("after the CSV push, c07's phones are %q", got)
		}
		// A bad key is refused, and nothing is written.
		if _, err := PushTo(ctx, a, "mangwon1", "", csv, importNow); err == nil || !strings.Contains(err.Error(), "card key is missing") {
			t.Errorf("a CSV push without the centre's key: %v", err)
		}
		wantChanged(t, "B, after the keyless push", b, "")

		// A push replaces a source another value wrote, unread by the
		// pusher (it reads the current one itself).
		mustWrite(t, "B", b, sourceFor(t, "m1", 1))
		if _, err := PushTo(ctx, a, "", "", m1, importNow); err != nil {
			t.Fatalf("pushing m1 over B's write: %v", err)
		}
		wantChanged(t, "B, after A's push over its write", b, "m1/2")
		// So does a CSV's.
		if _, err := PushTo(ctx, b, "mangwon1", keyHex, csv, importNow); err != nil {
			t.Fatalf("B pushing the staff list again: %v", err)
		}
		wantChanged(t, "A, after B's CSV push", a, "mangwon1/4")
	})
}

// Push is PushTo on Dir.
func TestPushDir(t *testing.T) {
	path := t.TempDir()
	m1 := writeSourceFile(t, sourceFor(t, "m1", 2))
	if _, err := Push(path, "", "", m1, importNow); err != nil {
		t.Fatal(err)
	}
	wantChanged(t, "Dir", Dir(path), "m1/2")
	if _, err := Load(filepath.Join(path, "m1.json")); err != nil {
		t.Errorf("the pushed file: %v", err)
	}
}

// A centre ID that would name a file outside the directory is refused.
func TestDirRefusesPathsOut(t *testing.T) {
	d := Dir(t.TempDir())
	for _, id := range []string{"../x", "a/b", "..", `a\b`} {
		if _, err := d.Get(context.Background(), id); err == nil || !strings.Contains(err.Error(), "cannot name a file") {
			t.Errorf("Get %q: %v", id, err)
		}
		s := sourceFor(t, "m1", 1)
		s.Roster.Centre.ID = id
		if err := d.Write(context.Background(), s); err == nil {
			t.Errorf("Write of centre %q: no error", id)
		}
	}
}
