// Package source reads a centre's roster source on the portal side: the
// roster the terminals get, and the guardian directory, which never leaves
// the portal.
//
// A source is one JSON file per centre, {"roster": {...}, "guardians":
// {...}}, written by staff tools or made from a staff list exported as CSV
// (ImportCSV). Everything read here is outside input: the decoders are
// strict, bounded in size, and their errors name the field or the line and
// column at fault and say what to do. Raw card UIDs are never stored: a
// card is known by its key, firmware.CardKey.
package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
)

// MaxSource is the largest source file Load and Parse accept, in bytes.
const MaxSource = 16 << 20

// Guardian is a child's guardian, who may get arrival and departure texts.
type Guardian struct {
	Name  string `json:"name"`
	Phone string `json:"phone"` // digits, e.g. "01012345678"
	Texts bool   `json:"texts"` // wants arrival/departure texts
}

// Source is a centre's roster and its guardian directory, and the
// centre's choices for its not-arrived alert.
type Source struct {
	Roster    *firmware.Roster      `json:"roster"`
	Guardians map[string][]Guardian `json:"guardians"` // child ID -> guardians
	// NotArrived configures the not-arrived alert (미등원 알림, package
	// portal/absence); absent: its defaults.
	NotArrived *NotArrived `json:"not_arrived,omitempty"`
}

// NotArrived is a centre's not-arrived alert: staff are always told;
// guardians only where Guardians is set.
type NotArrived struct {
	// GraceMinutes after a booked window starts with no arrival, the
	// alert is raised; 0: DefaultGrace.
	GraceMinutes int `json:"grace_minutes,omitempty"`
	// Guardians: the guardians who get texts get one message too.
	Guardians bool `json:"guardians,omitempty"`
}

// DefaultGrace is the not-arrived alert's grace when a source sets none.
const DefaultGrace = 30 * time.Minute

// Grace is the centre's grace after a booked window starts.
func (s *Source) Grace() time.Duration {
	if s == nil || s.NotArrived == nil || s.NotArrived.GraceMinutes == 0 {
		return DefaultGrace
	}
	return time.Duration(s.NotArrived.GraceMinutes) * time.Minute
}

// TellGuardians reports whether the centre's guardians get the alert.
func (s *Source) TellGuardians() bool {
	return s != nil && s.NotArrived != nil && s.NotArrived.Guardians
}

// Load reads a source file; see Parse.
func Load(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxSource+1))
	if err != nil {
		return nil, fmt.Errorf("source: reading %s: %w", path, err)
	}
	s, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a source, {"roster": {...}, "guardians": {...}}, strictly
// (strictjson: unknown fields and data after the value are errors naming
// the field's path and line, roster.bookings[2].windw (line 40)). It then
// validates it (see Validate), so phone numbers come back as digits.
func Parse(raw []byte) (*Source, error) {
	if len(raw) > MaxSource {
		return nil, fmt.Errorf("source: %d bytes, more than the %d allowed: split the centre's source or trim it", len(raw), MaxSource)
	}
	var s Source
	if err := strictjson.Decode(raw, MaxSource, "source", &s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the source and normalises it in place: the roster must
// pass firmware's Validate (which also builds its indexes); every
// guardian's child must be in the roster; every phone number must be a
// Korean mobile number, which Validate rewrites as digits (see
// NormalizePhone). The errors, joined, name the field and what to do.
func (s *Source) Validate() error {
	if s.Roster == nil {
		return errors.New(`source: roster: missing: a source is {"roster": {...}, "guardians": {...}}`)
	}
	var errs []error
	if err := s.Roster.Validate(); err != nil {
		errs = append(errs, err)
	}
	if n := s.NotArrived; n != nil && (n.GraceMinutes < 0 || n.GraceMinutes > 24*60) {
		errs = append(errs, fmt.Errorf("source: not_arrived.grace_minutes: %d is not 0 (the default, 30) to 1440 minutes", n.GraceMinutes))
	}
	children := make(map[string]bool, len(s.Roster.Children))
	for _, c := range s.Roster.Children {
		children[c.ID] = true
	}
	ids := make([]string, 0, len(s.Guardians))
	for id := range s.Guardians {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !children[id] {
			errs = append(errs, fmt.Errorf("guardians[%q]: no child %q in roster.children: add the child to the roster or remove these guardians", id, id))
		}
		for i := range s.Guardians[id] {
			g := &s.Guardians[id][i]
			p, err := NormalizePhone(g.Phone)
			if err != nil {
				errs = append(errs, fmt.Errorf("guardians[%q][%d].phone (child %s, number %d of %d): %w: correct it in the guardian's contact", id, i, id, i+1, len(s.Guardians[id]), err))
				continue
			}
			g.Phone = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	return nil
}

// ErrNotMobile is the error of a phone number that is not a Korean mobile
// number.
var ErrNotMobile = errors.New("not a Korean mobile number (want 010-1234-5678, or 011, 016, 017, 018, 019 then 7 or 8 digits)")

// NormalizePhone returns a Korean mobile number as digits: 010 then 8
// digits, or 011, 016, 017, 018 or 019 then 7 or 8 digits. Hyphens and
// spaces between digits are accepted and dropped ("010-1234-5678" →
// "01012345678"); anything else is an error wrapping ErrNotMobile.
func NormalizePhone(s string) (string, error) {
	var b strings.Builder
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == '-' || c == ' ':
		default:
			return "", fmt.Errorf("%q: %w", s, ErrNotMobile)
		}
	}
	d := b.String()
	ok := false
	switch {
	case len(d) < 3 || d[:2] != "01":
	case d[2] == '0':
		ok = len(d) == 11
	case strings.IndexByte("16789", d[2]) >= 0:
		ok = len(d) == 10 || len(d) == 11
	}
	if !ok {
		return "", fmt.Errorf("%q: %w", s, ErrNotMobile)
	}
	return d, nil
}

// Phones returns the numbers of the child's guardians who want texts, each
// once, in the directory's order.
func (s *Source) Phones(child string) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, g := range s.Guardians[child] {
		if g.Texts && g.Phone != "" && !slices.Contains(out, g.Phone) {
			out = append(out, g.Phone)
		}
	}
	return out
}
