package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Push checks a roster source and writes it, atomically, into dir as
// CENTRE.json, where a running bridge picks it up and publishes the next
// revision. file is a source (JSON), or a staff list (CSV) merged into the
// centre's current source in dir; a CSV needs the centre and, for card
// UIDs, the centre's key in hex.
func Push(dir, centre, keyHex, file string, now time.Time) (*Source, error) {
	// The bridge changes sources too (bindings made at terminals): the
	// directory's lock keeps a push and a binding from overwriting each
	// other.
	unlock, err := Lock(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var src *Source
	if strings.HasSuffix(strings.ToLower(file), ".csv") {
		if centre == "" {
			return nil, errors.New("a CSV staff list updates a centre's source: name the centre")
		}
		base, err := Load(filepath.Join(dir, centre+".json"))
		if err != nil {
			return nil, fmt.Errorf("the current source of %s (the CSV updates it): %w", centre, err)
		}
		key, err := ParseCentreKey(keyHex)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if src, err = ImportCSV(f, base, key, now); err != nil {
			return nil, err
		}
	} else {
		if src, err = Load(file); err != nil {
			return nil, err
		}
	}
	if centre != "" && src.Roster.Centre.ID != centre {
		return nil, fmt.Errorf("the source is of centre %q, not %q", src.Roster.Centre.ID, centre)
	}
	if err := Write(filepath.Join(dir, src.Roster.Centre.ID+".json"), src); err != nil {
		return nil, err
	}
	return src, nil
}

// Summary names a source's centre and counts what it holds.
func (s *Source) Summary() string {
	return fmt.Sprintf("roster of %s (%d children, %d cards, %d bookings)", s.Roster.Centre.ID, len(s.Roster.Children), len(s.Roster.Cards), len(s.Roster.Bookings))
}
