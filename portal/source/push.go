package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Push checks a roster source and writes it, atomically, into dir as
// CENTRE.json, where a running bridge picks it up and publishes the next
// revision (PushTo, on Dir(dir)).
func Push(dir, centre, keyHex, file string, now time.Time) (*Source, error) {
	return PushTo(context.Background(), Dir(dir), centre, keyHex, file, now)
}

// PushTo checks a roster source and writes it to srcs, where every
// running bridge picks it up and publishes the next revision. file is a
// source (JSON), or a staff list (CSV) merged into the centre's current
// source; a CSV needs the centre and, for card UIDs, the centre's key in
// hex.
func PushTo(ctx context.Context, srcs Sources, centre, keyHex, file string, now time.Time) (*Source, error) {
	// The bridge changes sources too (bindings made at terminals): holding
	// the sources keeps a push and a binding from overwriting each other.
	release, err := srcs.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var src *Source
	if strings.HasSuffix(strings.ToLower(file), ".csv") {
		if centre == "" {
			return nil, errors.New("a CSV staff list updates a centre's source: name the centre")
		}
		base, err := srcs.Get(ctx, centre)
		if err != nil {
			return nil, fmt.Errorf("the current source of %s (the CSV updates it): %w", centre, err)
		}
		if base == nil {
			return nil, fmt.Errorf("the current source of %s (the CSV updates it): %s has none: push the centre's source (JSON) first", centre, srcs)
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
		// The current one is read for its version, the one the write
		// replaces; the push replaces it even if it does not read well.
		srcs.Get(ctx, src.Roster.Centre.ID)
	}
	if centre != "" && src.Roster.Centre.ID != centre {
		return nil, fmt.Errorf("the source is of centre %q, not %q", src.Roster.Centre.ID, centre)
	}
	if err := srcs.Write(ctx, src); err != nil {
		return nil, err
	}
	return src, nil
}

// Summary names a source's centre and counts what it holds.
func (s *Source) Summary() string {
	return fmt.Sprintf("roster of %s (%d children, %d cards, %d bookings)", s.Roster.Centre.ID, len(s.Roster.Children), len(s.Roster.Cards), len(s.Roster.Bookings))
}
